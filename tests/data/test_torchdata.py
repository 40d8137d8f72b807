from pathlib import Path

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

import echojepa.io as eio
from echojepa.data.clipcache import ClipCache
from echojepa.data.clips import ClipSpec, sample_clip_indices
from echojepa.data.datamodules import ResumableDataLoader, VideoDataModule
from echojepa.data.degrade import DepthAttenuation
from echojepa.data.index import DatasetIndex, Record
from echojepa.data.torchdata import EpochShuffleSampler, VideoClipDataset, collate_clips
from echojepa.data.transforms import Compose, Normalize, build_transform
from echojepa.io.types import DecodedVideo, VideoInfo, VideoReadError

FPS = 25.0
STEP = 8  # grey level per frame index: survives MJPG within a couple of levels


def write_ramp_avi(path: Path, n_frames: int, size: int = 16) -> Path:
    """Frame k is flat grey STEP * k (uniform frames encode almost losslessly)."""
    frames = np.stack([np.full((size, size, 3), STEP * k, dtype=np.uint8) for k in range(n_frames)])
    eio.write_video(path, frames, FPS)
    return path


def record(path: Path, i: int, split: str = "train", **labels: float | str) -> Record:
    return Record(path=path, split=split, patient=f"p{i}", study=f"s{i}", view="A4C", labels=dict(labels))


def decoded_index(video: torch.Tensor) -> torch.Tensor:
    """Source frame index of each clip frame, read back from its brightness. video [S, C, T, H, W]."""
    return torch.round(video.mean(dim=(1, 3, 4)) * 255 / STEP).long()  # [S, T]


@pytest.fixture
def ramp(tmp_path: Path) -> Path:
    return write_ramp_avi(tmp_path / "ramp.avi", 30)


def test_dataset_returns_the_sampled_frames(ramp: Path):
    spec = ClipSpec(frames=4, frame_step=3, segments=2)
    ds = VideoClipDataset([record(ramp, 0, ef=55.0)], spec, None, ["ef"], mode="center")
    item = ds[0]
    expected = sample_clip_indices(30, FPS, spec, mode="center")
    assert item["video"].shape == (2, 3, 4, 16, 16)
    np.testing.assert_array_equal(item["frame_indices"].numpy(), expected)
    np.testing.assert_array_equal(decoded_index(item["video"]).numpy(), expected)
    assert item["labels"]["ef"].item() == pytest.approx(55.0)
    assert (item["patient"], item["study"], item["view"], item["index"]) == ("p0", "s0", "A4C", 0)


def test_dataset_decodes_only_the_unique_needed_frames(ramp: Path, monkeypatch):
    calls: list[list[int]] = []
    real = eio.read_video

    def spy(path, frame_indices=None, **kwargs):
        calls.append(list(frame_indices))
        return real(path, frame_indices, **kwargs)

    monkeypatch.setattr(eio, "read_video", spy)
    ds = VideoClipDataset([record(ramp, 0)], ClipSpec(frames=8, frame_step=2), None, mode="random")
    item = ds[0]
    assert len(calls) == 1
    assert calls[0] == sorted(set(item["frame_indices"].ravel().tolist()))
    np.testing.assert_array_equal(decoded_index(item["video"]).numpy(), item["frame_indices"].numpy())


def test_short_video_is_padded_with_its_last_frame(tmp_path: Path):
    path = write_ramp_avi(tmp_path / "short.avi", 5)
    item = VideoClipDataset([record(path, 0)], ClipSpec(frames=6, frame_step=2), None, mode="center")[0]
    assert decoded_index(item["video"]).tolist() == [[0, 2, 4, 4, 4, 4]]


def test_all_clips_mode_and_collate_pad_variable_clip_counts(tmp_path: Path):
    paths = [write_ramp_avi(tmp_path / "a.avi", 8), write_ramp_avi(tmp_path / "b.avi", 20)]
    spec = ClipSpec(frames=4, frame_step=1)
    ds = VideoClipDataset([record(p, i) for i, p in enumerate(paths)], spec, None, mode="all")
    batch = collate_clips([ds[0], ds[1]])
    assert batch["video"].shape == (2, 5, 3, 4, 16, 16)
    assert batch["num_clips"].tolist() == [2, 5]
    assert batch["clip_mask"].tolist() == [[True, True, False, False, False], [True] * 5]
    assert (batch["video"][0, 2:] == 0).all()
    covered = set(decoded_index(batch["video"][1]).ravel().tolist())
    assert covered == set(range(20))


def test_item_randomness_depends_only_on_seed_epoch_index(ramp: Path):
    spec = ClipSpec(frames=4, frame_step=1)
    t = build_transform(True, 12, (0.5,) * 3, (0.5,) * 3)
    a = VideoClipDataset([record(ramp, 0)] * 3, spec, t, mode="random", seed=1)
    b = VideoClipDataset([record(ramp, 0)] * 3, spec, t, mode="random", seed=1)
    _ = b[0], b[1]  # a different history must not matter
    torch.testing.assert_close(a[2]["video"], b[2]["video"])
    b.set_epoch(3)
    torch.testing.assert_close(a[(2, 3)]["video"], b[2]["video"])
    starts = {int(a[(2, e)]["frame_indices"][0, 0]) for e in range(8)}
    assert len(starts) > 1  # a new epoch draws new clips


def test_same_batches_for_any_worker_count(ramp: Path):
    records = [record(ramp, i) for i in range(6)]
    spec = ClipSpec(frames=4, frame_step=2)
    t = build_transform(True, 12, (0.5,) * 3, (0.5,) * 3)
    ds = VideoClipDataset(records, spec, t, mode="random", seed=7)

    def batches(workers: int) -> list[dict]:
        sampler = EpochShuffleSampler(ds, shuffle=True, seed=7)
        sampler.set_epoch(2)
        loader = DataLoader(ds, batch_size=3, sampler=sampler, num_workers=workers, collate_fn=collate_clips)
        return list(loader)

    serial, parallel = batches(0), batches(2)
    assert len(serial) == len(parallel) == 2
    for x, y in zip(serial, parallel):
        assert x["index"].tolist() == y["index"].tolist()
        torch.testing.assert_close(x["video"], y["video"])


def test_sampler_order_seeded_by_seed_and_epoch_and_shards_replicas():
    data = list(range(10))
    s = EpochShuffleSampler(data, seed=3)
    s.set_epoch(1)
    first = list(s)
    assert all(e == 1 for _, e in first) and sorted(i for i, _ in first) == data
    s2 = EpochShuffleSampler(data, seed=3)
    s2.set_epoch(1)
    assert list(s2) == first
    s2.set_epoch(2)
    assert [i for i, _ in s2] != [i for i, _ in first]
    shards = [
        list(EpochShuffleSampler(data, num_replicas=3, rank=r, seed=3, drop_last=True)) for r in range(3)
    ]
    flat = [i for shard in shards for i, _ in shard]
    assert all(len(sh) == 3 for sh in shards) and len(set(flat)) == 9


def test_resume_survives_the_iterator_being_started_before_set_epoch():
    # Lightning's resume order: load the loader state, create the iterator (a worker-backed loader
    # draws from the sampler right then), and only then call set_epoch for the resumed epoch.
    data = list(range(10))
    reference = EpochShuffleSampler(data, seed=3)
    reference.set_epoch(2)
    expected = list(reference)[4:]
    resumed = EpochShuffleSampler(data, seed=3)  # a fresh process: the sampler starts at epoch 0
    resumed.resume_at(epoch=2, consumed_items=4)
    it = iter(resumed)
    first = next(it)
    resumed.set_epoch(2)
    assert [first, *it] == expected
    resumed.set_epoch(3)  # the resume applied once; the next epoch starts at its beginning
    assert len(list(resumed)) == len(data)


def test_decode_failure_raises_naming_the_file(tmp_path: Path):
    bad = tmp_path / "broken.avi"
    bad.write_bytes(b"not a video at all")
    ds = VideoClipDataset([record(bad, 0)], ClipSpec(frames=2), None, mode="center")
    with pytest.raises(VideoReadError, match="broken.avi"):
        ds[0]


def fake_video(n: int = 10, h: int = 8, w: int = 8, value: int = 200):
    """video_info/read_video stand-ins returning flat frames and a left-half sector mask."""
    mask = np.zeros((h, w), dtype=bool)
    mask[:, : w // 2] = True
    info = VideoInfo(path="fake.avi", format="avi", kind="cine", frames=n, fps=FPS, height=h, width=w)

    def video_info(path):
        return info

    def read_video(path, frame_indices=None, **kwargs):
        frames = np.full((len(frame_indices), h, w, 3), value, dtype=np.uint8)
        return DecodedVideo(frames=frames, info=info, frame_indices=np.asarray(frame_indices), mask=mask)

    return video_info, read_video, mask


def test_decoder_returning_too_few_frames_raises(monkeypatch):
    video_info, read_video, _ = fake_video()
    monkeypatch.setattr(eio, "video_info", video_info)
    monkeypatch.setattr(
        eio, "read_video", lambda p, frame_indices=None, **k: read_video(p, frame_indices[:1])
    )
    ds = VideoClipDataset(
        [record(Path("fake.avi"), 0)], ClipSpec(frames=3, frame_step=1), None, mode="center"
    )
    with pytest.raises(VideoReadError, match="fake.avi.*expected 3"):
        ds[0]


def test_degradation_runs_inside_the_mask_before_normalize(monkeypatch):
    video_info, read_video, mask = fake_video(value=200)
    asked_for_mask = []

    def read_with_mask(path, frame_indices=None, **kwargs):
        asked_for_mask.append(kwargs.get("estimate_mask"))
        return read_video(path, frame_indices)

    monkeypatch.setattr(eio, "video_info", video_info)
    monkeypatch.setattr(eio, "read_video", read_with_mask)
    deg = DepthAttenuation(a=2.0)
    t = Compose([Normalize((0.5,) * 3, (0.25,) * 3)])
    ds = VideoClipDataset(
        [record(Path("fake.avi"), 0)], ClipSpec(frames=2), t, mode="center", degradation=deg
    )
    video = ds[0]["video"][0]  # [C, T, H, W]
    clean = torch.full((3, 2, 8, 8), 200 / 255)
    expected = (deg.apply(clean, torch.from_numpy(mask)) - 0.5) / 0.25
    torch.testing.assert_close(video, expected)
    assert not torch.allclose(video[..., :4], (clean[..., :4] - 0.5) / 0.25)
    assert asked_for_mask == [True]  # degradations need the sector mask from the reader


def test_labels_numeric_categorical_and_missing():
    ds = VideoClipDataset(
        [record(Path("x.avi"), 0, ef=40, view="PSAX")],
        ClipSpec(),
        None,
        ["ef", "view"],
        mode="center",
        label_classes={"view": ["A4C", "PSAX"]},
    )
    labels = ds._labels(ds.records[0])
    assert labels["ef"].dtype == torch.float32 and labels["view"].item() == 1
    ds.label_keys = ["rvsp"]
    with pytest.raises(ValueError, match="x.avi.*rvsp"):
        ds._labels(ds.records[0])


def test_datamodule_yields_pretraining_batches(tmp_path: Path):
    paths = [write_ramp_avi(tmp_path / f"v{i}.avi", 12 + i) for i in range(5)]
    index = DatasetIndex(
        format="test",
        root=tmp_path,
        records=[record(p, i, split="val" if i == 4 else "train") for i, p in enumerate(paths)],
    )
    dm = VideoDataModule(index, spec=ClipSpec(frames=4, frame_step=2), size=16, batch_size=2, seed=5)
    dm.setup("fit")
    loader = dm.train_dataloader()
    batches = list(loader)
    assert len(batches) == 2  # 4 train videos, batch 2, last incomplete batch dropped
    assert batches[0]["video"].shape == (2, 3, 4, 16, 16)
    assert batches[0]["video"].dtype == torch.float32
    again = list(dm.train_dataloader())
    assert [b["index"].tolist() for b in again] == [b["index"].tolist() for b in batches]
    val = list(dm.val_dataloader())
    assert len(val) == 1 and val[0]["video"].shape == (1, 3, 4, 16, 16)


def test_datamodule_refuses_a_train_split_smaller_than_a_batch(tmp_path: Path):
    index = DatasetIndex(format="test", root=tmp_path, records=[record(tmp_path / "a.avi", 0)])
    dm = VideoDataModule(index, batch_size=2)
    with pytest.raises(ValueError, match="cannot fill one batch"):
        dm.train_dataloader()


class ClockedItems(torch.utils.data.Dataset):
    """Items that each advance a fake clock by one second: the time a loader spends making them."""

    def __init__(self, clock: list[float], n: int) -> None:
        self.clock, self.n = clock, n

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int) -> torch.Tensor:
        self.clock[0] += 1.0
        return torch.tensor([float(i)])


def test_loader_counts_only_the_seconds_its_consumer_waits_for_batches():
    clock = [0.0]
    loader = ResumableDataLoader(ClockedItems(clock, 6), batch_size=2, clock=lambda: clock[0])
    it = iter(loader)
    assert len(it) == 3
    next(it)
    assert loader.wait_s == 2.0  # two items made while the consumer waited
    clock[0] += 10.0  # the consumer's own work between batches is not waiting
    next(it)
    assert loader.wait_s == 4.0
    assert [b.flatten().tolist() for b in it] == [[4.0, 5.0]]
    assert loader.wait_s == 6.0


def test_cached_datamodule_batches_do_not_depend_on_workers_or_warming(tmp_path: Path):
    paths = [write_ramp_avi(tmp_path / f"v{i}.avi", 12 + i) for i in range(4)]
    index = DatasetIndex(format="test", root=tmp_path, records=[record(p, i) for i, p in enumerate(paths)])

    def batches(cache: str, workers: int, warm: bool, built_before_loading: int) -> list[dict]:
        dm = VideoDataModule(
            index,
            spec=ClipSpec(frames=4, frame_step=2),
            size=8,
            batch_size=2,
            seed=5,
            num_workers=workers,
            clip_cache=ClipCache(tmp_path / cache, 12),
            warm_cache=warm,
            mean=(0.0,) * 3,
            std=(1.0,) * 3,
        )
        dm.setup("fit")
        assert len(list((tmp_path / cache).rglob("*.json"))) == built_before_loading
        return list(dm.train_dataloader())

    reference = batches("a", 0, warm=False, built_before_loading=0)  # entries built while loading
    warmed = batches("b", 2, warm=True, built_before_loading=4)
    reread = batches("a", 2, warm=False, built_before_loading=4)
    for other in (warmed, reread):
        assert [b["index"].tolist() for b in other] == [b["index"].tolist() for b in reference]
        for x, y in zip(reference, other):
            assert torch.equal(x["video"], y["video"])
    # the ramp's brightness still names each clip frame's source index: the right frames were cached
    for b in reference:
        np.testing.assert_array_equal(decoded_index(b["video"]).numpy(), b["frame_indices"].numpy())
