"""vitrestore/steady.py: where the input scene is unchanged, what the model did differently to
the same content (its own noise, a stroke) is evened out towards the previous output; moving
content is carried by the input's flow, never smeared; a cut is left alone; an upscale's output
gets the flow scaled up."""
from __future__ import annotations

import numpy as np

from conftest import smooth_image
from vitrestore.steady import Steady

CHANGE = lambda fs: np.mean([np.abs(b.astype(float) - a).mean() for a, b in zip(fs, fs[1:])])  # noqa: E731


def run(steady, inputs, outputs):
    previous, shown = [], []
    for i, o in zip(inputs, outputs):
        shown.append(steady(previous, (i, o)))
        previous.append((i, o))
    return shown


def test_a_still_scene_flickers_less_and_moving_content_stays_sharp():
    rng = np.random.default_rng(0)
    scene = smooth_image(rng, 96, 128)
    wobbly = [np.clip(scene + rng.normal(0, 6, scene.shape), 0, 255).round().astype(np.uint8) for _ in range(6)]
    shown = run(Steady(), [scene] * 6, wobbly)  # the same input, outputs that differ (a model's flicker)
    assert CHANGE(shown) < 0.8 * CHANGE(wobbly)
    longer = run(Steady(window=4), [scene] * 6, wobbly)
    assert CHANGE(longer) < CHANGE(shown)
    moved = np.roll(scene, 6, axis=1)  # the scene pans 6 px: the flow carries it
    out = Steady()([(scene, scene)], (moved, moved))
    assert np.abs(out.astype(float) - moved)[:, 12:-12].mean() < 1.5
    cut = 255 - scene  # another shot: nothing of the previous one comes in
    assert np.abs(Steady()([(scene, scene)], (cut, cut)).astype(float) - cut).mean() < 1.0


def test_an_upscaled_output_is_steadied_at_its_size():
    rng = np.random.default_rng(1)
    scene = smooth_image(rng, 48, 64)
    big = [np.repeat(np.repeat(np.clip(scene + rng.normal(0, 6, scene.shape), 0, 255).astype(np.uint8), 2, 0), 2, 1)
           for _ in range(4)]
    shown = run(Steady(), [scene] * 4, big)
    assert shown[0].shape == (96, 128, 3) and CHANGE(shown) < 0.8 * CHANGE(big)
