import hashlib
import json
import logging
import os
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from echojepa.data.clips import ClipSpec
from echojepa.data.degrade import load_degradation
from echojepa.data.index import Record
from echojepa.data.torchdata import VideoClipDataset
from echojepa.data.transforms import build_transform
from echojepa.io.video import write_video
from echojepa.probe import feature_keys
from echojepa.probe.backbone_base import Backbone
from echojepa.probe.backbones import build_backbone, load_backbone_config
from echojepa.probe.feature_cache import CacheEntryError, FeatureCache, aug_view_for_epoch, estimate_bytes
from echojepa.probe.feature_extraction import FeatureStream, extract_features, stream_features
from echojepa.probe.feature_keys import code_modules, dataset_identity, feature_key_parts

SIZE = 32
ZERO, ONE = (0.0, 0.0, 0.0), (1.0, 1.0, 1.0)


def write_clip(path: Path, frames: int, seed: int) -> Path:
    """A textured square that moves one pixel per frame (survives MJPG, differs per seed)."""
    rng = np.random.default_rng(seed)
    base = rng.integers(40, 200, size=(SIZE, SIZE), dtype=np.uint8)
    video = np.stack([np.roll(base, t, axis=1) for t in range(frames)])  # [T, H, W]
    write_video(path, np.repeat(video[..., None], 3, axis=-1), 25.0)
    return path


@pytest.fixture
def records(tmp_path) -> list[Record]:
    lengths = (12, 20, 16)
    return [
        Record(
            path=write_clip(tmp_path / "videos" / f"v{i}.avi", n, seed=i),
            split="train",
            patient=f"p{i}",
            study=f"s{i}",
            view="A4C",
            labels={"ef": 40.0 + 10 * i},
        )
        for i, n in enumerate(lengths)
    ]


def make_dataset(
    records, mode="center", train=False, segments=2, degradation=None, seed=0
) -> VideoClipDataset:
    spec = ClipSpec(frames=4, frame_step=1, segments=segments)
    transform = build_transform(train, SIZE, ZERO, ONE, scale=(0.3, 0.6))
    return VideoClipDataset(records, spec, transform, mode=mode, degradation=degradation, seed=seed)


class Counting(torch.nn.Module):
    """A backbone wrapper counting forward calls (a cache hit must not run the backbone)."""

    def __init__(self, inner: Backbone) -> None:
        super().__init__()
        self.inner, self.name, self.calls = inner, inner.name, 0

    def identity(self) -> str:
        return self.inner.identity()

    def forward(self, video):
        self.calls += 1
        return self.inner(video)


@pytest.fixture
def backbone() -> Counting:
    return Counting(build_backbone({**load_backbone_config("pixel_stats"), "grid": 2, "layout": "cells"}))


# ----- extraction ----------
def test_extract_features_stores_what_the_backbone_gives_per_clip(records, backbone):
    dataset = make_dataset(records)
    feats, rows = extract_features(backbone, dataset, batch_size=2, progress=False)
    assert feats.dtype == np.float16 and feats.shape == (3, 2, 4, 8)  # [items, segments, cells, features]
    assert [r["record"] for r in rows] == [0, 1, 2] and [r["num_clips"] for r in rows] == [2, 2, 2]
    assert rows[1] | {"path": None} == {
        "record": 1,
        "path": None,
        "patient": "p1",
        "study": "s1",
        "view": "A4C",
        "labels": {"ef": 50.0},
        "num_clips": 2,
    }
    direct = backbone.inner(dataset[1]["video"]).numpy()  # [S, N, D]
    np.testing.assert_allclose(feats[1].astype(np.float32), direct, rtol=1e-3, atol=1e-4)
    assert backbone.calls == 2  # two batches


def test_mode_all_pads_items_to_the_longest_video_and_counts_clips(records, backbone):
    feats, rows = extract_features(backbone, make_dataset(records, mode="all"), batch_size=3, progress=False)
    assert [r["num_clips"] for r in rows] == [3, 5, 4] and feats.shape[1] == 5
    assert not feats[0, 3:].any() and feats[0, :3].any() and feats[1].all(axis=(1, 2)).any()


def test_mean_pooling_keeps_one_token_per_clip(records, backbone):
    dataset = make_dataset(records)
    tokens, _ = extract_features(backbone, dataset, batch_size=3, progress=False)
    pooled, _ = extract_features(backbone, dataset, batch_size=3, progress=False, pool="mean")
    assert pooled.shape == (3, 2, 1, 8)
    np.testing.assert_allclose(pooled[:, :, 0], tokens.astype(np.float32).mean(axis=2), rtol=2e-3, atol=1e-3)


def test_non_finite_features_are_refused_not_stored(records, tmp_path):
    class Overflowing(torch.nn.Module):
        name = "overflow"

        def forward(self, video):
            return torch.full((video.shape[0], 2, 3), 1e6)  # beyond float16 range

    with pytest.raises(ValueError, match="not finite in float16"):
        extract_features(Overflowing(), make_dataset(records), batch_size=3, progress=False)


def test_each_aug_view_is_a_different_but_reproducible_training_view(records, backbone):
    dataset = make_dataset(records, mode="random", train=True)
    v0, _ = extract_features(backbone, dataset, batch_size=3, progress=False, aug_view=0)
    v0_again, _ = extract_features(backbone, dataset, batch_size=3, progress=False, aug_view=0)
    v1, _ = extract_features(backbone, dataset, batch_size=3, progress=False, aug_view=1)
    assert np.array_equal(v0, v0_again) and not np.array_equal(v0, v1)


def test_aug_view_for_epoch_visits_every_view_once_per_round():
    views = [aug_view_for_epoch(e, 4, seed=7) for e in range(12)]
    assert all(sorted(views[i : i + 4]) == [0, 1, 2, 3] for i in (0, 4, 8))
    assert views == [aug_view_for_epoch(e, 4, seed=7) for e in range(12)]
    assert views != [aug_view_for_epoch(e, 4, seed=8) for e in range(12)]


# ----- the cache ----------
def random_source(n=3, s=2, tokens=5, dim=4, seed=0):
    feats = np.random.default_rng(seed).normal(size=(n, s, tokens, dim)).astype(np.float32) * 10
    rows = [{"record": i, "patient": f"p{i}", "num_clips": s} for i in range(n)]
    return feats, rows


def test_memmap_read_back_equals_what_was_written_within_float16(tmp_path):
    cache = FeatureCache(tmp_path / "cache")
    feats, rows = random_source()
    entry = cache.get_or_compute({"part": 1}, lambda: (feats, rows))
    assert isinstance(entry.features, np.memmap) and entry.features.dtype == np.float16
    np.testing.assert_allclose(entry.features.astype(np.float32), feats, rtol=1e-3, atol=1e-3)
    assert entry.rows == rows and entry.num_clips.tolist() == [2, 2, 2]
    assert not entry.features.flags.writeable  # cached features are never modified in place


def test_second_call_is_a_hit_that_computes_nothing(records, backbone, tmp_path):
    cache = FeatureCache(tmp_path / "cache")
    dataset = make_dataset(records)
    parts = feature_key_parts(backbone, dataset, format="test", root=tmp_path, split="train")
    first = cache.get_or_compute(parts, lambda: stream_features(backbone, dataset, 2, progress=False))
    calls = backbone.calls
    second = cache.get_or_compute(parts, lambda: pytest.fail("a hit must not compute"))
    assert backbone.calls == calls and (cache.hits, cache.misses) == (1, 1)
    assert first.key == second.key and np.array_equal(first.features, second.features)
    direct, _ = extract_features(backbone, dataset, batch_size=3, progress=False)
    assert np.array_equal(second.features, direct)  # streamed and in-memory extraction agree


def variants(records, backbone, tmp_path):
    """The base key parts and, per key part, a changed version of them."""
    dataset = make_dataset(records)
    base = dict(backbone=backbone, dataset=dataset, format="test", root=tmp_path, split="val")
    other_weights = Counting(
        build_backbone({**load_backbone_config("pixel_stats"), "grid": 3, "layout": "cells"})
    )
    changed_clip = make_dataset(records)
    changed_clip.spec = ClipSpec(frames=4, frame_step=2, segments=2)
    return base, {
        "backbone": dict(base, backbone=other_weights),
        "dataset": dict(base, dataset=make_dataset(records[:2])),
        "root": dict(base, root=tmp_path / "elsewhere"),
        "clip": dict(base, dataset=changed_clip),
        "transform": dict(base, dataset=make_dataset(records, train=True)),
        "degradation": dict(base, dataset=make_dataset(records, degradation=load_degradation("depth_low"))),
        "degradation_seed": dict(base, dataset=make_dataset(records, seed=1)),
        "split": dict(base, split="test"),
        "mode": dict(base, dataset=make_dataset(records, mode="all")),
        "aug_view": dict(base, aug_view=1),
        "pool": dict(base, pool="mean"),
    }


def test_any_key_part_change_is_a_miss_with_a_new_entry(records, backbone, tmp_path):
    cache = FeatureCache(tmp_path / "cache")
    feats, rows = random_source()
    base, changed = variants(records, backbone, tmp_path)
    base_parts = feature_key_parts(**base)
    cache.get_or_compute(base_parts, lambda: (feats, rows))
    keys = {cache.key(**base_parts)}
    for what, kwargs in changed.items():
        parts = feature_key_parts(**kwargs)
        entry = cache.get_or_compute(parts, lambda: (feats, rows))
        assert entry.key not in keys, what
        keys.add(entry.key)
    assert cache.misses == 1 + len(changed) and cache.hits == 0
    assert len(cache.entries()) == len(keys)
    cache.get_or_compute(feature_key_parts(**base), lambda: pytest.fail("unchanged parts must hit"))
    assert cache.hits == 1


def test_a_replaced_video_file_changes_the_dataset_identity(records, tmp_path):
    before = dataset_identity(records, "test", tmp_path)
    assert before == dataset_identity(list(records), "test", tmp_path)
    write_clip(records[0].path, 12, seed=99)
    stat = records[0].path.stat()
    os.utime(records[0].path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))
    assert dataset_identity(records, "test", tmp_path) != before


def test_entry_folder_and_files_follow_the_umask(tmp_path):
    old = os.umask(0o022)
    try:
        entry = FeatureCache(tmp_path / "cache").get_or_compute({"x": 1}, lambda: random_source())
    finally:
        os.umask(old)
    assert entry.path.stat().st_mode & 0o777 == 0o755
    assert {f.stat().st_mode & 0o777 for f in entry.path.iterdir()} == {0o644}


def test_size_is_reported_per_entry_and_for_the_whole_cache(tmp_path):
    cache = FeatureCache(tmp_path / "cache")
    feats, rows = random_source(n=4, s=3, tokens=6, dim=8)
    entry = cache.get_or_compute({"x": 1}, lambda: (feats, rows))
    assert entry.nbytes == (entry.path / "features.npy").stat().st_size
    assert entry.nbytes >= estimate_bytes(4, 3, 6, 8) == 4 * 3 * 6 * 8 * 2
    stats = cache.stats()
    assert stats["bytes_written"] == entry.nbytes and stats["entries"] == 1
    assert stats["size_bytes"] == sum(f.stat().st_size for f in entry.path.iterdir())
    meta = json.loads((entry.path / "meta.json").read_text())
    assert meta["shape"] == [4, 3, 6, 8] and meta["key_parts"] == {"x": 1} and meta["created"]


def test_a_compute_that_raises_leaves_no_entry(tmp_path):
    cache = FeatureCache(tmp_path / "cache")
    feats, rows = random_source()

    def chunks():
        yield feats[:2], rows[:2]
        raise RuntimeError("killed mid-extraction")

    with pytest.raises(RuntimeError, match="killed"):
        cache.get_or_compute({"x": 1}, lambda: FeatureStream(3, 2, chunks()))
    assert not cache.contains(cache.key(x=1)) and list(cache.root.iterdir()) == []
    entry = cache.get_or_compute({"x": 1}, lambda: (feats, rows))  # the next run computes afresh
    assert cache.misses == 2 and entry.features.shape == (3, 2, 5, 4)


def test_a_source_that_breaks_its_promise_is_refused(tmp_path):
    cache = FeatureCache(tmp_path / "cache")
    feats, rows = random_source()
    with pytest.raises(ValueError, match="yielded 2 items, announced 3"):
        cache.get_or_compute({"x": 1}, lambda: FeatureStream(3, 2, iter([(feats[:2], rows[:2])])))
    with pytest.raises(ValueError, match="one index row per item"):
        cache.get_or_compute({"x": 1}, lambda: (feats, rows[:1]))
    assert cache.entries() == [] and list(cache.root.iterdir()) == []


def test_leftovers_of_a_killed_write_are_never_loaded(tmp_path):
    cache = FeatureCache(tmp_path / "cache")
    key = cache.key(x=1)
    half = cache.root / f".tmp-{key[:16]}-dead"
    half.mkdir(parents=True)
    np.save(half / "features.npy", np.zeros((1, 1, 1, 1), np.float16))
    assert not cache.contains(key) and cache.entries() == []
    with pytest.raises(ValueError, match="no feature cache entry"):
        cache.load(key)
    os.utime(half, (0, 0))
    assert cache.remove_stale(older_than_s=60) == 1 and not half.exists()


def test_a_tampered_entry_is_refused_on_load(tmp_path):
    cache = FeatureCache(tmp_path / "cache")
    feats, rows = random_source()
    entry = cache.get_or_compute({"x": 1}, lambda: (feats, rows))
    (entry.path / "index.json").write_text(json.dumps(rows[:2]))
    with pytest.raises(CacheEntryError, match="index.json does not match its sha256"):
        cache.load(entry.key)
    with pytest.raises(CacheEntryError, match="inconsistent entry"):  # what the checksum guards against
        cache.load(entry.key, verify=False)


# ----- a cache that cannot mislabel ----------
def cached(cache, backbone, dataset, tmp_path):
    """The entry of `dataset` through the protocol's path: key parts, streamed compute, row check."""
    parts = feature_key_parts(backbone, dataset, format="test", root=tmp_path, split="train")
    return cache.get_or_compute(
        parts,
        lambda: stream_features(backbone, dataset, 2, progress=False),
        expect_paths=[str(r.path) for r in dataset.records],
    )


def test_a_reordered_file_list_gets_rows_in_its_own_order(records, backbone, tmp_path):
    # issue 13: the key sorted the records, the entry kept the first order, targets followed the new one
    cache = FeatureCache(tmp_path / "cache")
    forward = cached(cache, backbone, make_dataset(records), tmp_path)
    backward = cached(cache, backbone, make_dataset(list(reversed(records))), tmp_path)
    assert forward.key != backward.key and cache.misses == 2
    assert [r["path"] for r in backward.rows] == [str(r.path) for r in reversed(records)]
    np.testing.assert_array_equal(backward.features, forward.features[::-1])


def test_rows_that_do_not_match_the_records_are_refused(records, backbone, tmp_path):
    cache = FeatureCache(tmp_path / "cache")
    entry = cached(cache, backbone, make_dataset(records), tmp_path)
    with pytest.raises(CacheEntryError, match="row 0 holds .*v0.avi, the records give .*v2.avi"):
        cache.load(entry.key, expect_paths=[str(r.path) for r in reversed(records)])
    feats, rows = extract_features(backbone, make_dataset(records), batch_size=3, progress=False)
    with pytest.raises(ValueError, match="does not follow the records"):  # never published
        cache.get_or_compute({"x": 1}, lambda: (feats, rows), expect_paths=[rows[1]["path"]] * 3)
    assert not cache.contains(cache.key(x=1))


def _zero_features(entry: Path) -> None:
    data = np.load(
        entry / "features.npy", mmap_mode="r+"
    )  # same size, valid header: only the checksum sees it
    data[:] = 0
    data.flush()


def _reorder_rows(entry: Path) -> None:
    """Rows in another order, with checksums made to match: what an entry keyed on sorted records held."""
    rows = json.loads((entry / "index.json").read_text())
    text = json.dumps(rows[::-1], indent=1)
    (entry / "index.json").write_text(text)
    meta = json.loads((entry / "meta.json").read_text())
    meta["sha256"]["index.json"] = hashlib.sha256(text.encode()).hexdigest()
    (entry / "meta.json").write_text(json.dumps(meta))


DAMAGE = {
    "zeroed": (_zero_features, "features.npy does not match its sha256"),
    "empty": (lambda e: (e / "features.npy").write_bytes(b""), "features.npy does not match"),
    "truncated": (lambda e: os.truncate(e / "features.npy", 200), "features.npy does not match"),
    "no_meta": (lambda e: (e / "meta.json").unlink(), "meta.json is missing"),
    "bad_meta": (lambda e: (e / "meta.json").write_text("{"), "meta.json is unreadable"),
    "rows_reordered": (_reorder_rows, "row 0 holds"),
}


@pytest.mark.parametrize("damage", list(DAMAGE))
def test_a_damaged_entry_is_reported_by_path_and_rebuilt(damage, records, backbone, tmp_path, caplog):
    cache = FeatureCache(tmp_path / "cache")
    dataset = make_dataset(records)
    good = np.array(cached(cache, backbone, dataset, tmp_path).features)
    entry = cache.path(
        cache.key(**feature_key_parts(backbone, dataset, format="test", root=tmp_path, split="train"))
    )
    spoil, reason = DAMAGE[damage]
    spoil(entry)
    calls = backbone.calls
    with caplog.at_level(logging.WARNING, logger="echojepa.probe.feature_cache"):
        again = cached(cache, backbone, dataset, tmp_path)
    warning = next(r.getMessage() for r in caplog.records if r.levelno == logging.WARNING)
    assert str(entry) in warning and reason in warning and "rebuilding" in warning
    assert backbone.calls > calls and cache.rebuilt == 1 and cache.hits == 0
    np.testing.assert_array_equal(again.features, good)
    assert [p.name for p in cache.root.iterdir()] == [entry.name]  # the damaged copy is gone
    cached(cache, backbone, dataset, tmp_path)
    assert cache.hits == 1  # the rebuilt entry is sound


def test_meta_carries_the_checksums_of_the_entry_files(tmp_path):
    cache = FeatureCache(tmp_path / "cache")
    feats, rows = random_source()
    entry = cache.get_or_compute({"x": 1}, lambda: (feats, rows))
    for name in ("features.npy", "index.json"):
        assert entry.meta["sha256"][name] == hashlib.sha256((entry.path / name).read_bytes()).hexdigest()


def test_the_key_carries_the_source_of_the_code_that_makes_the_features(
    records, backbone, tmp_path, monkeypatch
):
    dataset = make_dataset(records)
    mods = code_modules(backbone, dataset, dataset.transform)
    for name in (
        "probe.backbone_base",
        "probe.feature_keys",
        "probe.feature_extraction",
        "data.transforms",
        "data.torchdata",
        "data.clips",
        "io.video",
    ):
        assert f"echojepa.{name}" in mods
    assert not any(m.startswith("echojepa.pretrain") or m.startswith("echojepa.report") for m in mods)
    parts = feature_key_parts(backbone, dataset, format="test", root=tmp_path, split="train")
    transforms = sys.modules["echojepa.data.transforms"].__file__
    real = feature_keys._source_sha256
    monkeypatch.setattr(feature_keys, "_source_sha256", lambda p: "edited" if p == transforms else real(p))
    edited = feature_key_parts(backbone, dataset, format="test", root=tmp_path, split="train")
    assert edited["code"] != parts["code"] and FeatureCache.key(**edited) != FeatureCache.key(**parts)
    assert {k: v for k, v in edited.items() if k != "code"} == {k: v for k, v in parts.items() if k != "code"}
