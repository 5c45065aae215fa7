"""`inpaint --adapt`: teach the inpainter this photo's own content, with no clean image of the hole.

The photo's known pixels (outside the user's mask) are their own ground truth: new holes are cut
into them and the network learns to fill those back. The pairs are made the way training makes
them (tasks/inpaint.py `with_holes`): the holes pre-filled classically from the remaining known
pixels (`Inpaint.prefill`), the mask as the condition, the photo as the target.

    1. per sample, the user's stroke widths: twice the hole's distance to the nearest known pixel
       on its ridge (the local maxima of the distance map), 20th to 80th percentile. The new holes
       are free-form brush strokes (vitrestore/ops/masks.py Strokes, the training masks' thin and
       thick generator) of those widths: the fills to learn are as wide as the ones to make
    2. held out for the check: fixed seeded strokes (seed 1 + sample index) in the known pixels
       within NEAR_WIDTHS stroke widths of the user's hole (the surroundings its fill draws on);
       the training pairs treat them as unknown (never a target, never seen)
    3. a pair per step: a crop (side about four stroke widths, at least the 128 px training crop)
       holding part of the user's hole (NEAR_SHARE of the steps; else anywhere), mirrored half
       the time, 1-3 new strokes; its hole is the user's, the held-out strokes and the new
       strokes together, pre-filled; the loss only where a new stroke covers a known pixel
    4. the loop's loss is L1; the shipped model was trained on the squared error (and PSNR
       measures it), and an L1 step trades squared error away (a fill nearer the median). So the
       loss weight is the base model's own error on the pair (+ WEIGHT_FLOOR): L1 weighted by the
       residual is the squared error's gradient while the copy stays near the base
    5. the whole generator is fine-tuned at a small step size (`TRAINS`): a fill draws on every
       level, the coarse ones carry the photo's layout

The check (`score`): mean squared error of the network inside the held-out strokes, each sample
whole, the held-out strokes and the user's hole pre-filled as at inference: lower = a better fill
of this photo's holes (squared, like PSNR: the L1 check kept copies that lost PSNR).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np
import torch

from vitrestore.ops.masks import Strokes
from vitrestore.task import Batch, CannotAdapt

MIN_CROP = 128  # the training crop: the smallest pair
MAX_CROP = 256  # the largest (the step time grows with its area)
CROP_WIDTHS = 4  # crop side in stroke widths (the stroke needs context on both sides)
MIN_KNOWN = 64 * 64  # fewer known pixels than this in all samples: nothing to learn from
MIN_KNOWN_SHARE = 0.05  # nor when under this share of the pixels is known
DEFAULT_WIDTH = (4.0, 12.0)  # stroke widths (px) when the user's hole has no measurable width
HELD_OUT_SHARE = 0.06  # about this share of each sample's known pixels is held out for the check
TRIES = 8  # draws of new strokes until they cover enough known pixels
NEAR_SHARE = 0.75  # share of the crops that hold part of the user's hole
NEAR_WIDTHS = 3  # held-out strokes count within this many stroke widths of the user's hole
WEIGHT_FLOOR = 1 / 255  # the smallest error weight (no pixel drops out of the loss)
TRAINS = "all"  # which generator parameters: "all" or "full-resolution" (nn/generator.py)


@dataclass
class Prepared:
    images: list[torch.Tensor]  # (1, 3, h, w) each, the user's hole as given
    unknown: list[torch.Tensor]  # (1, 1, h, w): the user's hole and the held-out strokes, 1 = unknown
    held: list[torch.Tensor]  # (1, 1, h, w): the held-out strokes in known pixels
    held_input: list[torch.Tensor]  # (1, 3, h, w): the image pre-filled in `unknown` (the check's input)
    widths: list[tuple[float, float]]  # stroke width range (px) per sample
    crops: list[int]  # crop side per sample
    edges: list  # (n, 2) long: the user's hole pixels per sample (None: no hole)
    base: Any = None  # the base model's finished output, base(image, mask=..., texture=False)


def stroke_widths(hole: np.ndarray) -> tuple[float, float]:
    """(H, W) bool hole -> (low, high) stroke width in px: twice the distance to the nearest
    known pixel on the hole's ridge (where the distance map has a local maximum), its 20th and
    80th percentile. A brush stroke of width w has w / 2 there."""
    if not hole.any():
        return DEFAULT_WIDTH
    depth = cv2.distanceTransform(hole.astype(np.uint8), cv2.DIST_L2, 3)
    ridge = (depth > 0) & (depth >= cv2.dilate(depth, np.ones((3, 3), np.uint8)))
    d = 2 * depth[ridge] - 1  # an edge pixel is at distance 1: a 1 px line has width 1
    if d.size == 0:
        return DEFAULT_WIDTH
    lo, hi = np.percentile(d, [20, 80])
    return max(1.0, float(lo)), max(1.0, float(hi))


def _strokes(lo: float, hi: float, side: int, count: tuple[int, int], vertices: int) -> Strokes:
    """The training masks' brush strokes, `lo`-`hi` px wide on an image whose shorter side is `side`."""
    return Strokes(count[0], count[1], lo / side, hi / side, vertices)


def prepare(task, samples: list, base: Any = None) -> Prepared:
    images, unknown, held, held_input, widths, crops, edges = [], [], [], [], [], [], []
    known_total, pixels = 0, 0
    for s in samples:
        mask = s.request.get("mask")
        if mask is None:
            raise CannotAdapt("no mask: inpainting adapts on the known pixels around a hole")
        image = s.image.float()
        _, _, h, w = image.shape
        hole = (mask.float().reshape(1, 1, h, w) > 0.5).float()
        known = 1 - hole
        pixels += h * w
        known_total += int(known.sum())
        if not known.any():
            continue  # nothing to learn from this one
        lo, hi = stroke_widths(hole[0, 0].numpy() > 0.5)
        side = min(h, w)
        hi = min(hi, side / 4)  # a crop must hold the stroke and its surroundings
        lo = min(lo, hi)
        crop = int(min(side, max(MIN_CROP, min(MAX_CROP, round(CROP_WIDTHS * hi)))))
        # held-out strokes: seeded per sample, about HELD_OUT_SHARE of the known pixels
        g = torch.Generator().manual_seed(1 + len(images))
        gen_held = _strokes(lo, hi, side, (1, 1), 4)
        region = known  # where held-out strokes count: known pixels near the user's hole
        if hole.any():  # the check measures fills in the surroundings a fill of the hole draws on
            far = cv2.distanceTransform((hole[0, 0].numpy() < 0.5).astype(np.uint8), cv2.DIST_L2, 3)
            region = known * torch.from_numpy(far <= NEAR_WIDTHS * hi).float()[None, None]
        out = torch.zeros(1, 1, h, w)
        for _ in range(64):  # one stroke at a time until the share is reached
            if float((out * region).sum()) >= HELD_OUT_SHARE * float(region.sum()):
                break
            out = torch.maximum(out, torch.from_numpy(gen_held(h, w, g))[None, None])
        out = out * region
        unk = torch.maximum(hole, out)
        images.append(image)
        unknown.append(unk)
        held.append(out)
        held_input.append(task.prefill(image, unk))
        widths.append((lo, hi))
        crops.append(crop)
        edges.append(torch.nonzero(hole[0, 0] > 0.5) if hole.any() else None)
    if known_total == 0:
        raise CannotAdapt("the mask covers the whole image: no known pixel to learn from")
    if known_total < MIN_KNOWN or known_total < MIN_KNOWN_SHARE * pixels:
        raise CannotAdapt(f"too few known pixels to adapt on ({known_total} of {pixels}, "
                          f"{100 * known_total / max(1, pixels):.1f}%)")
    return Prepared(images, unknown, held, held_input, widths, crops, edges, base)


def batch(task, p: Prepared, gen: torch.Generator) -> Batch:
    k = int(torch.randint(len(p.images), (1,), generator=gen))
    image, unknown = p.images[k], p.unknown[k]
    _, _, h, w = image.shape
    c = p.crops[k]
    lo, hi = p.widths[k]
    make = _strokes(lo, hi, c, (1, 3), 8)
    flip = float(torch.rand(1, generator=gen)) < 0.5
    best = None
    near = p.edges[k] is not None and float(torch.rand(1, generator=gen)) < NEAR_SHARE
    for _ in range(TRIES):  # a crop whose new strokes cover known pixels
        if near:  # around a random pixel of the user's hole: its surroundings are what a fill draws on
            e = p.edges[k]
            y, x = (int(v) for v in e[int(torch.randint(len(e), (1,), generator=gen))])
            i = min(max(0, y - int(torch.randint(c, (1,), generator=gen))), h - c)
            j = min(max(0, x - int(torch.randint(c, (1,), generator=gen))), w - c)
        else:
            i = int(torch.randint(0, h - c + 1, (1,), generator=gen))
            j = int(torch.randint(0, w - c + 1, (1,), generator=gen))
        unk = unknown[..., i:i + c, j:j + c]
        new = torch.from_numpy(make(c, c, gen))[None, None]
        weight = new * (1 - unk)
        covered = float(weight.sum())
        if best is None or covered > best[0]:
            best = (covered, i, j, new, weight)
        if covered >= 0.5 * float(new.sum()) and covered > 0:
            break
    _, i, j, new, weight = best
    img = image[..., i:i + c, j:j + c]
    mask = torch.maximum(unknown[..., i:i + c, j:j + c], new)
    if flip:
        img, mask, weight = img.flip(-1), mask.flip(-1), weight.flip(-1)
    holed = task.prefill(img, mask)
    if p.base is not None:  # L1 weighted by the base's own error: the squared error's gradient
        fill = p.base(img, mask=mask, texture=False)
        weight = weight * ((fill - img).abs() + WEIGHT_FLOOR)
    return Batch(input=holed, target=img, cond=task.condition(holed, mask=mask), loss_weight=weight)


def score(task, p: Prepared, net) -> float:
    """Mean squared error of net to the photo over the held-out stroke pixels of all samples (each
    sample whole): squared like the shipped model's training loss and PSNR, which an L1 step can
    trade away (a fill nearer the median, further in the mean square)."""
    total, n = 0.0, 0.0
    for image, unk, held, x in zip(p.images, p.unknown, p.held, p.held_input):
        if not held.any():
            continue
        out = net(x, task.condition(x, mask=unk)).clamp(0, 1)
        total += float(((out - image).square() * held).sum())
        n += float(held.sum()) * image.shape[1]
    return total / max(n, 1.0)


def trains(name: str) -> bool:
    if TRAINS == "all":
        return True
    from vitrestore.nn.generator import is_full_resolution

    return is_full_resolution(name)
