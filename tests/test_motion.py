"""vitrestore/motion.py: pixel tracks follow the picture through a clip, new content gets fresh
coordinates, and noise drawn at the coordinates is fixed to the picture."""
from __future__ import annotations

import cv2
import numpy as np

from vitrestore.motion import PixelTrack, anchored_noise


def scene(shift: float, h: int = 64, w: int = 96) -> np.ndarray:
    """A smooth random texture (H, W, 3) uint8 moved `shift` pixels to the right."""
    rng = np.random.default_rng(3)
    big = cv2.GaussianBlur(rng.uniform(0, 255, (h, w + 40, 3)).astype(np.float32), (0, 0), 3)
    big = cv2.normalize(big, None, 0, 255, cv2.NORM_MINMAX)
    m = np.float32([[1, 0, shift], [0, 1, 0]])
    return cv2.warpAffine(big, m, (w + 40, h), flags=cv2.INTER_LINEAR)[:, 20:20 + w].round().astype(np.uint8)


def test_coordinates_follow_a_pan_and_noise_moves_with_the_picture():
    track = PixelTrack()
    for t in range(6):
        coords = track(scene(1.5 * t))
    inner = (slice(10, -10), slice(20, -20))
    # a pixel now at x was at x - 7.5 in the first frame
    assert np.abs(coords[inner][..., 0] - (np.arange(96)[20:-20] - 7.5)).mean() < 0.3
    assert np.abs(coords[inner][..., 1] - np.arange(64)[10:-10, None]).mean() < 0.3
    first = anchored_noise(np.stack(np.meshgrid(np.arange(96.0), np.arange(64.0)), -1), 3)
    now = anchored_noise(coords, 3)
    # the noise at a picture point is what it was there in the first frame
    back = np.interp(np.arange(96)[20:-20] - 7.5, np.arange(96), first[32])
    assert np.corrcoef(now[32, 20:-20], back)[0, 1] > 0.9


def test_a_cut_gets_fresh_coordinates_and_tracks_are_repeatable():
    runs = []
    for _ in range(2):
        track = PixelTrack()
        track(scene(0))
        cut = np.full_like(scene(0), 200)  # another picture altogether
        runs.append(track(cut).copy())
        assert (runs[-1][..., 1] > 1e5).mean() > 0.9  # new content: a part of the plane not used before
        track.start()
        assert np.array_equal(track(scene(0))[..., 0], np.meshgrid(np.arange(96.0), np.arange(64.0))[0])
    assert np.array_equal(runs[0], runs[1])  # the same frames, the same coordinates


def test_anchored_noise_is_unit_gaussian_and_fixed_to_its_coordinates():
    grid = np.stack(np.meshgrid(np.arange(300.0), np.arange(200.0)), -1)
    a = anchored_noise(grid, 1)
    assert abs(a.mean()) < 0.02 and abs(a.std() - 1) < 0.02
    assert np.array_equal(anchored_noise(grid + [5, 0], 1)[:, :-5], a[:, 5:])  # the same cells, the same values
    assert not np.allclose(anchored_noise(grid, 1, seed=1), a)
    g3 = anchored_noise(grid, 3)
    step = np.abs(np.diff(g3, axis=1)).mean()
    assert step < np.abs(np.diff(a, axis=1)).mean() / 2  # a coarser grain changes more slowly


def _flowing(monkeypatch, flow_of):
    """PixelTrack with the optical flow replaced by `flow_of(h, w)` (where each pixel was)."""
    import vitrestore.motion as motion

    monkeypatch.setattr(motion, "input_flow", lambda cur, prev: flow_of(*cur.shape[:2]))
    monkeypatch.setattr(motion, "remap", lambda img, flow: img)  # every moved frame matches: no mismatch


def test_a_slow_pan_does_not_drift_over_many_frames(monkeypatch):
    _flowing(monkeypatch, lambda h, w: np.tile(np.float32([-0.3, 0.1]), (h, w, 1)))  # 0.3 px/frame right, 0.1 up
    track, frame = PixelTrack(), np.zeros((48, 64, 3), np.uint8)
    for _ in range(241):
        coords = track(frame)
    inner = coords[10:-10, 10:-10]
    xs, ys = np.meshgrid(np.arange(64.0), np.arange(48.0))
    assert np.abs(inner[..., 0] - (xs[10:-10, 10:-10] - 72)).max() < 0.01  # 240 frames x 0.3 px (it drifted 1.2 px)
    assert np.abs(inner[..., 1] - (ys[10:-10, 10:-10] + 24)).max() < 0.01


def test_a_long_zoom_gets_fresh_coordinates_before_the_grain_aliases(monkeypatch):
    def zoom_out(h, w):  # each pixel was 1 % nearer the centre in the frame before
        xs, ys = np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32))
        return np.stack([(xs - w / 2) * 0.01, (ys - h / 2) * 0.01], -1)
    _flowing(monkeypatch, zoom_out)
    track, frame = PixelTrack(), np.zeros((48, 64, 3), np.uint8)
    areas = []
    for _ in range(200):
        track(frame)
        areas.append(float(np.median(track.area)))
    assert max(areas) <= 4.0 and min(areas) >= 1.0  # one pixel never covers more than 4 first-frame pixels
    assert any(b < a for a, b in zip(areas, areas[1:]))  # fresh coordinates were given on the way


def test_a_cut_to_a_like_texture_is_new_everywhere():
    rng = np.random.default_rng(9)
    other = cv2.GaussianBlur(rng.uniform(0, 255, (64, 96, 3)).astype(np.float32), (0, 0), 3)
    other = cv2.normalize(other, None, 0, 255, cv2.NORM_MINMAX).round().astype(np.uint8)  # alike, but another
    track = PixelTrack()
    track(scene(0))
    assert (track(other)[..., 1] > 1e5).all()
