import numpy as np
import pytest

from echojepa.data.clips import ClipSpec, sample_clip_indices


def rng(seed: int = 0) -> np.random.Generator:
    return np.random.default_rng(seed)


def test_center_clip_is_evenly_spaced_and_centred():
    clips = sample_clip_indices(100, 50.0, ClipSpec(frames=4, frame_step=3), mode="center")
    # span = 10, valid starts 0..90, centre start 45
    np.testing.assert_array_equal(clips, [[45, 48, 51, 54]])


def test_short_video_pads_with_last_frame():
    clips = sample_clip_indices(5, 30.0, ClipSpec(frames=6, frame_step=2), rng(), mode="random")
    np.testing.assert_array_equal(clips, [[0, 2, 4, 4, 4, 4]])


def test_single_frame_video_repeats_it():
    clips = sample_clip_indices(1, 30.0, ClipSpec(frames=3, frame_step=1, segments=2), mode="center")
    np.testing.assert_array_equal(clips, np.zeros((2, 3), dtype=np.int64))


@pytest.mark.parametrize("n_frames", [0, -3])
def test_empty_video_raises(n_frames):
    with pytest.raises(ValueError, match="frames"):
        sample_clip_indices(n_frames, 30.0, ClipSpec(), rng())


def test_target_fps_sets_the_step():
    spec = ClipSpec(frames=3, frame_step=7, target_fps=12.5)
    assert spec.step(50.0) == 4
    assert spec.step(10.0) == 1  # never below 1
    clips = sample_clip_indices(200, 50.0, spec, mode="center")
    np.testing.assert_array_equal(np.diff(clips[0]), [4, 4])


def test_target_fps_without_fps_raises():
    with pytest.raises(ValueError, match="fps"):
        sample_clip_indices(100, None, ClipSpec(target_fps=8.0), mode="center")


def test_random_mode_needs_a_generator():
    with pytest.raises(ValueError, match="Generator"):
        sample_clip_indices(100, 30.0, ClipSpec(), None, mode="random")


def test_random_clips_are_deterministic_given_the_generator_and_vary_with_it():
    spec = ClipSpec(frames=4, frame_step=2, segments=3)
    a = sample_clip_indices(300, 30.0, spec, rng(1))
    b = sample_clip_indices(300, 30.0, spec, rng(1))
    np.testing.assert_array_equal(a, b)
    others = [sample_clip_indices(300, 30.0, spec, rng(s)) for s in range(2, 8)]
    assert any(not np.array_equal(a, o) for o in others)


def test_segments_spread_over_the_video_in_order():
    spec = ClipSpec(frames=4, frame_step=1, segments=4)
    n = 400  # valid starts 0..396, bins of width 99.25
    for seed in range(20):
        clips = sample_clip_indices(n, 30.0, spec, rng(seed))
        starts = clips[:, 0]
        for k, s in enumerate(starts):
            assert k * 99.25 <= s < (k + 1) * 99.25
        assert clips.max() < n
    centre = sample_clip_indices(n, 30.0, spec, mode="center")
    assert centre.shape == (4, 4)
    assert list(centre[:, 0]) == sorted(centre[:, 0]) and centre[0, 0] > 0 and centre[-1, -1] < n - 1


def test_all_mode_non_overlapping_windows_cover_the_video():
    spec = ClipSpec(frames=4, frame_step=1)
    clips = sample_clip_indices(10, 30.0, spec, mode="all")
    np.testing.assert_array_equal(clips[:, 0], [0, 4, 6])  # last window flush with the end
    assert set(clips.ravel()) == set(range(10))


def test_all_mode_with_step_covers_the_span_of_the_video():
    spec = ClipSpec(frames=3, frame_step=2)
    clips = sample_clip_indices(23, 30.0, spec, mode="all")  # span 5
    covered = set()
    for c in clips:
        covered.update(range(c[0], c[-1] + 1))
    assert covered == set(range(23))
    assert (clips[:, -1] - clips[:, 0] == 4).all()


def test_all_mode_stride_is_configurable():
    clips = sample_clip_indices(8, 30.0, ClipSpec(frames=4, frame_step=1, all_stride=1), mode="all")
    np.testing.assert_array_equal(clips[:, 0], [0, 1, 2, 3, 4])


def test_all_mode_short_video_gives_one_padded_clip():
    clips = sample_clip_indices(2, 30.0, ClipSpec(frames=4, frame_step=1), mode="all")
    np.testing.assert_array_equal(clips, [[0, 1, 1, 1]])


@pytest.mark.parametrize(
    "kwargs", [{"frames": 0}, {"segments": 0}, {"frame_step": 0}, {"frame_step": None}, {"all_stride": 0}]
)
def test_invalid_spec_raises(kwargs):
    with pytest.raises(ValueError):
        ClipSpec(**kwargs)


def test_unknown_mode_raises():
    with pytest.raises(ValueError, match="mode"):
        sample_clip_indices(10, 30.0, ClipSpec(), mode="middle")  # type: ignore[arg-type]
