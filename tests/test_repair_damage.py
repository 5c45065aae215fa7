"""The synthetic damage the repair detector will learn from (tasks/repair_damage.py): it
replays from its seed, touches only the pixels its mask marks, draws thin lines thin, dust of
both polarities, and covers a sensible share of the photo."""
import numpy as np
import torch

from conftest import smooth_image
from vitrestore.tasks.repair_damage import Age, Damage, OldPhoto, Scene

PHOTO = smooth_image(np.random.default_rng(0), 192, 256).astype(np.float32) / 255
ONLY = {k: 0.0 for k in ("cracks_prob", "scratches_prob", "dust_prob", "creases_prob", "tears_prob")}


def g(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def test_damage_replays_from_its_seed():
    a, b, c = OldPhoto()(PHOTO, g(5)), OldPhoto()(PHOTO, g(5)), OldPhoto()(PHOTO, g(6))
    assert all(np.array_equal(x, y) for x, y in zip(a, b))
    assert not np.array_equal(a[2], c[2]) or not np.array_equal(a[1], c[1])


def test_only_masked_pixels_are_damaged():
    for seed in range(12):
        clean, damaged, mask = OldPhoto(jpeg_prob=0.0, dilate=0)(PHOTO, g(seed))
        changed = np.abs(clean - damaged).max(-1) > 0
        assert mask.any() and not (changed & (mask == 0)).any(), seed
        assert set(np.unique(mask)) <= {0.0, 1.0}


def test_thin_damage_is_thin():
    """Cracks and scratches are at most 3 px wide: 90% of their pixels lie within 2 px of the
    mask's edge (crossings and branch points may be wider)."""
    import cv2

    for kind in ("cracks_prob", "scratches_prob"):
        for seed in range(8):
            aged = Age()(PHOTO, g(seed))
            _, mask = Damage(**{**ONLY, kind: 1.0})(aged, g(100 + seed))
            inside = cv2.distanceTransform(mask.astype(np.uint8), cv2.DIST_L2, 3)
            assert np.percentile(inside[mask > 0], 90) <= 2, (kind, seed)


def test_dust_has_both_polarities_and_coverage_is_sensible():
    brighter = darker = 0
    for seed in range(10):
        aged = Age()(PHOTO, g(seed))
        damaged, mask = Damage(**{**ONLY, "dust_prob": 1.0})(aged, g(50 + seed))
        diff = (damaged - aged).mean(-1)[mask > 0]
        brighter += int((diff > 0.05).sum())
        darker += int((diff < -0.05).sum())
    assert brighter > 0 and darker > 0
    shares = [OldPhoto()(PHOTO, g(seed))[2].mean() for seed in range(20)]
    assert min(shares) > 0.0005 and max(shares) < 0.3 and 0.005 < np.median(shares) < 0.08, shares


def test_scene_details_are_part_of_the_picture():
    """Hair, wires, text and highlights change the photo but are never damage: they are drawn
    before the damage, and the damage's mask does not see them."""
    detailed = Scene(hairs_max=10, wires_prob=1.0, text_prob=1.0, highlights_max=5)(PHOTO, g(3))
    assert np.abs(detailed - PHOTO).max() > 0.3
    clean, damaged, mask = OldPhoto(scene=Scene(hairs_max=10, wires_prob=1.0, text_prob=1.0), jpeg_prob=0.0,
                                    dilate=0)(PHOTO, g(3))
    assert not ((np.abs(clean - damaged).max(-1) > 0) & (mask == 0)).any()
