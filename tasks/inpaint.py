"""Inpainting: fill the holes of an image plausibly.

Coarse to fine: the hole is first filled classically from the known pixels only (by default
the mean of OpenCV's Telea and Navier-Stokes fills: their errors differ, so the mean is nearer),
and the generator refines that fill: it sees the pre-filled image and the hole mask as one
conditioning channel (1 = fill), and, being residual with a zero-initialised head, starts out
as the classical fill and learns what to change. Deep inside a hole far larger than the
128 px training crops, the generator first fills the whole image at reduced size (`layout`),
and that fill replaces the classical one there before the full-size pass. The discriminator
sees the same plus the candidate, composited (`disc_candidate`). Training masks come from
`vitrestore.ops.masks.MaskMix` (thin and thick brush strokes, LaMa-style large masks, boxes,
scratches). The pixel loss weighs hole pixels `hole_weight` times more than the rest; the
output outside the hole is the input's, exactly (composited back in `postprocess`).

A squared-error network fills a large hole with the smooth mean of what could be there, which
looks blurred. So at inference `postprocess` adds texture (option `texture`, on by default; a
request `texture=False` turns it off): an exemplar fill (`vitrestore.exemplar`, patches copied
from the known part of the image, laid out by the network's fill) supplies the detail, and
within `texture_depth` px of the known pixels the network's local colour (Gaussian, sigma 2 px)
replaces the exemplar's, fading out over the next `texture_depth` px: seams follow the network,
the depth of the hole gets real texture. Strokes narrower than twice `texture_depth` keep the
network's fill (nothing deep enough to need texture), wider ones take the texture gradually.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from vitrestore.config import ConfigError, check_options
from vitrestore.fields import among, bounded
from vitrestore.exemplar import exemplar_fill
from vitrestore.ops.masks import MaskMix, batch_masks
from vitrestore.task import Batch, Pass, Passes, Task, as_unit

from . import inpaint_adapt
from .inpaint_command import COMMAND


WHOLE_SIDE = 1024  # images up to this side are inpainted in one pass (the whole hole in context)
LAYOUT_SIDE = 384  # deep holes are first filled whole at this long side (near the training crops' scale)
LAYOUT_DEPTH = 32.0  # px from the nearest known pixel: the layout takes over from depth 16 to 48
TEXTURE_PIXELS = 4_000_000  # larger images synthesise texture at reduced size (memory grows with the hole)
# the coarse fill: one OpenCV method, or the mean of both (their errors differ: the mean is closer)
PREFILLS = {"telea": (cv2.INPAINT_TELEA,), "navier-stokes": (cv2.INPAINT_NS,),
            "telea+navier-stokes": (cv2.INPAINT_TELEA, cv2.INPAINT_NS), "zero": ()}


@dataclass(frozen=True)
class InpaintOptions:
    hole_weight: float = bounded(6.0, 0, 1e6)  # pixel-loss weight inside the hole (1 outside)
    thin: float = bounded(0.25, 0, 1)  # mask mixture probabilities
    thick: float = bounded(0.25, 0, 1)
    large: float = bounded(0.3, 0, 1)
    boxes: float = bounded(0.1, 0, 1)
    scratches: float = bounded(0.1, 0, 1)
    # the coarse fill the generator refines: one of PREFILLS
    prefill: str = among("telea+navier-stokes", tuple(PREFILLS))
    prefill_radius: float = bounded(3.0, 0, 100)  # cv2.inpaint's inpaintRadius, px
    texture: bool = True  # at inference, copy real texture into the hole over the network's fill
    # px from the known pixels within which the network's local colour leads
    texture_depth: float = bounded(8.0, 0, 4096)
    texture_patch: int = bounded(5, 3, 63)  # exemplar patch side, px (odd)


class Inpaint(Task):
    name = COMMAND.task
    Options = InpaintOptions
    output_suffix = "inpainted"
    Request = COMMAND.request
    contract = ("cond (B, 1, H, W): the mask, 1 = fill. Before the network, the hole is pre-filled from the "
                "known pixels (OpenCV Telea on the 8-bit image, Inpaint.prefill); after it, known pixels are "
                "copied back from the input; images above 1024 px run coarse-to-fine (Inpaint.passes).")

    def __init__(self, options: Any = None, source: str = "<options>"):
        super().__init__(options, source)
        o: InpaintOptions = self.options
        check_options(o, source)
        if o.texture_patch % 2 == 0:
            raise ConfigError(f"{source}: task_options.texture_patch: must be odd, got {o.texture_patch}")
        if not o.thin + o.thick + o.large + o.boxes + o.scratches > 0:
            raise ConfigError(f"{source}: task_options.thin: the mask shares thin, thick, large, boxes and scratches "
                              f"are all 0: give at least one a share above 0")

    @property
    def cond_channels(self) -> int:
        return 1

    # --adapt (tasks/inpaint_adapt.py)
    adapt_objective = "self-inpainting: strokes as wide as the user's, cut into the photo's known pixels"
    adapt_lr = 2e-5
    adapt_with = inpaint_adapt

    def masks(self) -> MaskMix:
        o = self.options
        return MaskMix(o.thin, o.thick, o.large, o.boxes, o.scratches)

    def prefill(self, image: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """image (B, 3, H, W) in [0, 1], mask (B, 1, H, W) 1 = fill -> the image with each hole
        filled classically from the known pixels only (8-bit; cv2.inpaint takes 3-channel 8-bit);
        known pixels are the input's exactly. A new tensor: the caller's image is not touched."""
        hole = mask > 0.5  # (B, 1, H, W)
        out = image.masked_fill(hole, 0)
        flags = PREFILLS[self.options.prefill]
        if not flags:
            return out
        u8 = (out.detach().float().clamp(0, 1) * 255).round().to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy()
        holes = hole[:, 0].to(torch.uint8).mul(255).cpu().numpy()  # (B, H, W)
        for b in range(out.shape[0]):
            if not holes[b].any():
                continue
            known = np.ascontiguousarray(u8[b])  # (H, W, 3)
            filled = np.mean([cv2.inpaint(known, holes[b], self.options.prefill_radius, f) for f in flags], axis=0)
            filled = filled.round()  # 8-bit levels: the pre-filled picture is a file's
            fill = torch.from_numpy(filled).to(out.device).permute(2, 0, 1).to(out.dtype) / 255  # (3, H, W)
            out[b] = torch.where(hole[b], fill, out[b])
        return out

    def with_holes(self, clean: torch.Tensor, mask: torch.Tensor) -> Batch:
        holed = self.prefill(clean, mask)
        weight = 1 + (self.options.hole_weight - 1) * mask
        return Batch(input=holed, target=clean, cond=mask, loss_weight=weight)

    def degrade(self, clean: torch.Tensor, gen: torch.Generator) -> Batch:
        b, _, h, w = clean.shape
        return self.with_holes(clean, batch_masks(self.masks(), b, h, w, gen).to(clean))

    def disc_candidate(self, output: torch.Tensor, batch: Batch) -> torch.Tensor:
        """The composite (the network's fill in the hole, the known pixels elsewhere), as LaMa's
        discriminator sees it: outside the hole real and fake are then the same pixels, so the
        discriminator can only judge the fill, and the adversarial gradient reaches only it."""
        return output * batch.cond + batch.input * (1 - batch.cond)

    def finish_batch(self, output: torch.Tensor, batch: Batch) -> torch.Tensor:
        return self.composite(output, batch.input, mask=batch.cond)  # the network's own fill

    def passes(self, image: torch.Tensor, tile: int, mask: torch.Tensor | None = None, **request: Any) -> Passes:
        """Every hole pixel must see enough context. An image up to WHOLE_SIDE px runs in one
        pass. A larger one runs twice: whole at reduced resolution (the coarse fill sees all of
        every hole), and in tiles at full resolution; pixels near the hole's edge (within a
        quarter tile of known pixels, where a tile sees enough) take the full-resolution result,
        deeper ones blend to the coarse fill, smoothly.

        The network sees the hole as it was trained to, pre-filled from the known pixels:
        whatever the image holds there (damage, an object, a key colour) never reaches it."""
        image = self.prefill(as_unit(image), mask.to(image.device))  # a new float tensor
        depth = hole_depth(mask)  # (B, H, W), for the layout and the coarse-to-fine blend
        image = yield from self.layout(image, mask, depth, **request)
        h, w = image.shape[-2:]
        if max(h, w) <= WHOLE_SIDE or tile <= 0:
            return (yield Pass(image, 0, {**request, "mask": mask}))
        s = WHOLE_SIDE / max(h, w)
        small = F.interpolate(image, scale_factor=s, mode="area")  # (B, 3, h', w')
        small_mask = (F.interpolate(mask.float(), size=small.shape[-2:], mode="area") > 0).float()
        coarse = yield Pass(small, 0, {**request, "mask": small_mask})
        coarse = self.composite(coarse, small, mask=small_mask)
        fine = yield Pass(image, tile, {**request, "mask": mask})  # (B, 3, H, W)
        reach = max(8.0, tile / 4)
        for b in range(fine.shape[0]):
            keep_fine = torch.from_numpy(np.clip(1.5 - depth[b] / reach, 0.0, 1.0)).to(fine)  # 1 near the edge
            up = F.interpolate(coarse[b : b + 1], size=(h, w), mode="bicubic", align_corners=False)[0]
            fine[b] = fine[b] * keep_fine + up.to(fine) * (1 - keep_fine)
        return fine

    def layout(self, image: torch.Tensor, mask: torch.Tensor, depth: np.ndarray, **request: Any) -> Passes:
        """image (B, 3, H, W) pre-filled, mask (B, 1, H, W) and its `hole_depth` (B, H, W) -> the
        image with the deep part of each hole refilled by the network at LAYOUT_SIDE px (long
        side), scaled back up (a pass of `passes`, or none). The network was trained on 128 px crops: deep in a far larger hole
        it has only the classical fill's wedges to refine, while at reduced size the same hole is
        within its reach. The classical fill stays within LAYOUT_DEPTH / 2 px of the known
        pixels (where the full-size pass does well) and hands over to the layout by
        1.5 LAYOUT_DEPTH px; the full-size pass then refines the result. Known pixels are
        untouched."""
        h, w = image.shape[-2:]
        s = LAYOUT_SIDE / max(h, w)
        if s >= 1:
            return image
        if depth.max() <= LAYOUT_DEPTH / 2:
            return image
        mask = mask.to(image.device)  # the pre-fill below masks the image with it
        small = F.interpolate(image, scale_factor=s, mode="area")  # (B, 3, h', w')
        small_mask = (F.interpolate(mask.float(), size=small.shape[-2:], mode="area") > 0).float()
        small = self.prefill(small, small_mask)  # pixels that mixed hole and known are refilled
        coarse = self.composite((yield Pass(small, 0, {**request, "mask": small_mask})), small, mask=small_mask)
        up = F.interpolate(coarse, size=(h, w), mode="bicubic", align_corners=False).clamp_(0, 1)
        lead = torch.from_numpy(np.clip(depth / LAYOUT_DEPTH - 0.5, 0, 1))[:, None].to(image)  # (B, 1, H, W)
        return image + lead * (up.to(image) - image)  # lead is 0 on known pixels

    def check_request(self, mask: torch.Tensor | None = None, **request: Any) -> None:
        super().check_request(mask=mask, **request)
        if mask is None:
            raise ValueError("inpainting needs a mask (--mask or --mask-color)")

    def condition(self, image: torch.Tensor, mask: torch.Tensor | None = None, **request: Any) -> torch.Tensor:
        """The mask (B, 1, H, W), 1 = fill, as given by the user (sliced per tile by the caller)."""
        return mask

    def composite(self, output: torch.Tensor, image: torch.Tensor, mask: torch.Tensor | None = None,
                  **request: Any) -> torch.Tensor:
        """Known pixels are the input's, exactly; the network's output only fills the hole."""
        output = output.clamp_(0, 1)
        if mask is None:
            return output
        m = mask.to(output)
        return output.mul_(m).add_(as_unit(image).to(output).mul(1 - m))  # not in place: image may be the caller's

    def postprocess(self, output: torch.Tensor, image: torch.Tensor, mask: torch.Tensor | None = None,
                    texture: bool | None = None, check_cancel: Any = None, **request: Any) -> torch.Tensor:
        """The composite, with texture added in wide holes when `texture` (default: the option) is on.
        `check_cancel()`, if given, is called between the texture step's rounds (it raises to stop)."""
        known = as_unit(image).to(output)  # converted once: composite takes it as it is
        output = self.composite(output, known, mask)
        if mask is None or not (self.options.texture if texture is None else texture):
            return output
        m = mask.to(output)
        return self.add_texture(output, known, m, check_cancel).mul_(m).add_(known.mul(1 - m))

    def add_texture(self, fill: torch.Tensor, image: torch.Tensor, mask: torch.Tensor,
                    check_cancel: Any = None) -> torch.Tensor:
        """fill, image (B, 3, H, W) in [0, 1], mask (B, 1, H, W) 1 = hole -> a new tensor: the
        exemplar fill laid out by `fill`, with `fill`'s local colour near the known pixels."""
        out = fill.clone()
        d = self.options.texture_depth
        depths = hole_depth(mask)  # (B, H, W)
        for b in range(fill.shape[0]):
            hole = mask[b, 0] > 0.5  # (H, W)
            if not hole.any():
                continue
            depth = depths[b]
            if d > 0 and depth.max() <= d:
                continue  # thin strokes only: the network's fill stands
            net = fill[b].detach().float().cpu()  # (3, H, W)
            ex = self.exemplar(image[b].detach().float().cpu(), hole.cpu(), net, check_cancel)
            if d > 0:
                lead = np.clip(2 - depth / d, 0, 1)  # 1 near the known pixels: the network's colour
                disk = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * round(d) + 1, 2 * round(d) + 1))
                thickness = cv2.dilate(depth, disk)  # the deepest hole pixel within d px
                amount = np.clip(thickness / d - 1, 0, 1)  # 0 in strokes under 2d wide: no texture
            else:
                lead, amount = np.zeros_like(depth), np.ones_like(depth)
            local = _smooth(net) - _smooth(ex)  # (3, H, W) the colours' difference, without detail
            textured = ex + torch.from_numpy(lead) * local
            out[b] = (net + torch.from_numpy(amount) * (textured - net)).clamp_(0, 1).to(out)
        return out

    def exemplar(self, image: torch.Tensor, hole: torch.Tensor, fill: torch.Tensor,
                 check_cancel: Any = None) -> torch.Tensor:
        """(3, H, W), (H, W) bool, (3, H, W) -> (3, H, W) exemplar fill (seeded: repeatable). Above
        TEXTURE_PIXELS it runs at reduced size and adds its change to `fill`, scaled back up."""
        h, w = hole.shape
        patch = self.options.texture_patch
        if h * w <= TEXTURE_PIXELS:
            return exemplar_fill(image, hole, init=fill, patch=patch, check=check_cancel)
        size = (round(h * (TEXTURE_PIXELS / (h * w)) ** 0.5), round(w * (TEXTURE_PIXELS / (h * w)) ** 0.5))
        small_img, small_fill = (F.interpolate(t[None], size=size, mode="area")[0] for t in (image, fill))
        small_hole = F.interpolate(hole[None, None].float(), size=size, mode="area")[0, 0] > 0
        change = exemplar_fill(small_img, small_hole, init=small_fill, patch=patch,
                               check=check_cancel) - small_fill  # (3, h', w')
        return fill + F.interpolate(change[None], size=(h, w), mode="bilinear", align_corners=False)[0]


def hole_depth(mask: torch.Tensor) -> np.ndarray:
    """mask (B, 1, H, W), 1 = hole -> (B, H, W) float32: each hole pixel's distance in px to the
    nearest known pixel (0 on known pixels)."""
    hole = (mask[:, 0] > 0.5).cpu().numpy().astype(np.uint8)  # (B, H, W)
    return np.stack([cv2.distanceTransform(m, cv2.DIST_L2, 3) for m in hole])


def _smooth(x: torch.Tensor) -> torch.Tensor:
    """(3, H, W) -> Gaussian blur, sigma 2 px (reflect at the border)."""
    from kornia.filters import gaussian_blur2d  # noqa: PLC0415  (kornia takes ~0.3 s to import: only when used)

    return gaussian_blur2d(x[None], (13, 13), (2.0, 2.0), border_type="reflect")[0]
