"""vitrestore/steady.py: on a still scene each frame's own noise is halved towards the previous
frame's; moving content is carried by the flow, never smeared; a cut is left alone."""
from __future__ import annotations

import numpy as np

from conftest import smooth_image
from vitrestore.steady import Steady


def test_a_still_scene_flickers_less_and_moving_content_stays_sharp():
    rng = np.random.default_rng(0)
    scene = smooth_image(rng, 96, 128).astype(np.float32)
    noisy = [np.clip(scene + rng.normal(0, 4, scene.shape), 0, 255).round().astype(np.uint8) for _ in range(6)]
    steady, previous, shown = Steady(), None, []
    for frame in noisy:
        shown.append(steady(previous, frame))
        previous = frame
    change = lambda fs: np.mean([np.abs(b.astype(float) - a).mean() for a, b in zip(fs, fs[1:])])  # noqa: E731
    assert change(shown) < 0.8 * change(noisy)
    moved = np.roll(scene, 6, axis=1).astype(np.uint8)  # the scene pans 6 px: the flow carries it
    out = Steady()(scene.astype(np.uint8), moved)
    assert np.abs(out.astype(float) - moved)[:, 12:-12].mean() < 1.5
    cut = (255 - scene).astype(np.uint8)  # another shot: nothing of the previous one comes in
    assert np.abs(Steady()(scene.astype(np.uint8), cut).astype(float) - cut).mean() < 1.0
