import math

import numpy as np
import pytest
import torch

from echojepa.data.transforms import (
    CenterCrop,
    Compose,
    Normalize,
    RandomResizedCrop,
    Resize,
    build_transform,
    split_normalize,
    to_tensor_video,
)


def lateral_video(t: int = 4, h: int = 32, w: int = 40) -> torch.Tensor:
    """Bright left third, dark elsewhere: a lateralised pattern (like the RV on screen left)."""
    v = torch.zeros(3, t, h, w)
    v[..., : w // 3] = 1.0
    return v


def test_to_tensor_video_layout_and_scale():
    frames = np.zeros((2, 4, 5, 3), dtype=np.uint8)
    frames[1, 2, 3] = [255, 0, 51]
    v = to_tensor_video(frames)
    assert v.shape == (3, 2, 4, 5) and v.dtype == torch.float32
    assert v[:, 1, 2, 3].tolist() == pytest.approx([1.0, 0.0, 0.2])
    assert v.sum().item() == pytest.approx(1.2)


@pytest.mark.parametrize(
    "bad", [np.zeros((2, 4, 5, 3), dtype=np.float32), np.zeros((4, 5, 3), dtype=np.uint8)]
)
def test_to_tensor_video_rejects_bad_input(bad):
    with pytest.raises(ValueError):
        to_tensor_video(bad)


def test_resize_short_side_keeps_aspect_and_mask_follows():
    v = lateral_video(h=32, w=48)
    mask = torch.zeros(32, 48, dtype=torch.bool)
    mask[:, :16] = True
    out, m = Resize(16)(v, mask)
    assert out.shape == (3, 4, 16, 24) and m.shape == (16, 24) and m.dtype == torch.bool
    assert m[:, :8].all() and not m[:, 8:].any()


def test_center_crop_takes_the_middle_and_crops_the_mask():
    v = torch.arange(10 * 12, dtype=torch.float32).view(1, 1, 10, 12).expand(3, 2, 10, 12)
    mask = torch.ones(10, 12, dtype=torch.bool)
    out, m = CenterCrop(4)(v, mask)
    assert out.shape == (3, 2, 4, 4) and m.shape == (4, 4)
    assert out[0, 0, 0, 0].item() == 3 * 12 + 4


def test_center_crop_larger_than_frame_raises():
    with pytest.raises(ValueError, match="larger"):
        CenterCrop(64)(lateral_video())


@pytest.mark.parametrize("train", [True, False])
def test_built_transforms_keep_shape_and_never_flip(train):
    h, w = 48, 60
    ramp = torch.linspace(1.0, 0.0, w)  # bright on screen left, fading to the right
    v = ramp.expand(3, 4, h, w).clone()
    t = build_transform(train, 32, mean=(0.0,) * 3, std=(1.0,) * 3, scale=(0.5, 1.0), ratio=(0.9, 1.1))
    for seed in range(25):
        out, _ = t(v, None, torch.Generator().manual_seed(seed))
        assert out.shape == (3, 4, 32, 32)
        columns = out.mean(dim=(0, 1, 2))  # [W]
        assert (columns[1:] <= columns[:-1] + 1e-6).all()  # still decreasing: never mirrored
        assert columns[0] > columns[-1]


def test_random_resized_crop_params_in_range():
    rrc = RandomResizedCrop(16, scale=(0.5, 1.0), ratio=(0.9, 1.1))
    g = torch.Generator().manual_seed(0)
    h, w = 200, 240
    for _ in range(200):
        top, left, ch, cw = rrc.get_params(h, w, g)
        assert 0 <= top <= h - ch and 0 <= left <= w - cw
        # rounding to whole pixels moves area/ratio by at most about one pixel per side
        assert 0.5 - 0.02 <= ch * cw / (h * w) <= 1.0
        assert math.log(0.9) - 0.02 <= math.log(cw / ch) <= math.log(1.1) + 0.02


def test_random_resized_crop_same_crop_for_all_frames_and_mask():
    t = 5
    base = torch.rand(1, 1, 24, 24)
    v = base.expand(3, t, 24, 24).clone()
    mask = base[0, 0] > 0.5
    out, m = RandomResizedCrop(12)(v, mask, torch.Generator().manual_seed(3))
    for k in range(1, t):
        torch.testing.assert_close(out[:, k], out[:, 0])
    assert m.shape == (12, 12) and m.dtype == torch.bool


def test_random_resized_crop_is_deterministic_given_generator():
    v = torch.rand(3, 2, 30, 30)
    rrc = RandomResizedCrop(16)
    a, _ = rrc(v, None, torch.Generator().manual_seed(7))
    b, _ = rrc(v, None, torch.Generator().manual_seed(7))
    torch.testing.assert_close(a, b)


def test_random_transform_without_generator_raises():
    with pytest.raises(ValueError, match="Generator"):
        RandomResizedCrop(8)(torch.rand(3, 1, 16, 16))


def test_random_resized_crop_fallback_respects_ratio():
    rrc = RandomResizedCrop(8, scale=(1.0, 1.0), ratio=(0.9, 1.1), attempts=0)
    top, left, h, w = rrc.get_params(50, 200, torch.Generator().manual_seed(0))
    assert h == 50 and w == 55 and left == (200 - 55) // 2 and top == 0


def test_normalize_per_channel():
    v = torch.full((3, 1, 2, 2), 0.5)
    out, _ = Normalize((0.5, 0.25, 0.0), (1.0, 0.5, 0.25))(v)
    assert out[:, 0, 0, 0].tolist() == pytest.approx([0.0, 0.5, 2.0])


def test_compose_threads_mask_and_split_normalize():
    norm = Normalize((0.1,) * 3, (0.2,) * 3)
    t = Compose([Resize((8, 8)), norm])
    head, tail = split_normalize(t)
    assert tail is norm and isinstance(head, Compose) and len(head.transforms) == 1
    with pytest.raises(ValueError, match="last"):
        split_normalize(Compose([norm, Resize(8)]))
    out, m = t(torch.rand(3, 2, 16, 16), torch.ones(16, 16, dtype=torch.bool))
    assert out.shape == (3, 2, 8, 8) and m.shape == (8, 8)
