"""Style transfer: repaint a photo in the style of one painting, keeping its structure.

One model per painting. Coarse to fine, as inpainting: each photo is first matched to the
painting's colour histogram (per channel, over the whole image; the painting's quantiles are
saved in the weights file, so inference needs no painting), and the generator refines that:
it adds the texture, and it may undo what the matching did to the photo's structure. Training
pairs nothing with nothing: a batch is content crops (photos, matched, the generator's input;
the photos themselves as `source`) and, as the discriminator's `real`, crops of the painting taken at several
sizes with flips and quarter turns (one painting is little data). The losses:

- adversarial: the PatchGAN ViT discriminator sees only candidates (no condition) and judges
  each patch of a stylised photo against patches of the painting; this is what draws strokes;
- content: L1 between the luminance edge maps (Sobel of the luminance blurred by content_sigma,
  each normalised by its mean) of the output and the photo (before matching): objects keep their
  outlines while tone and colour are free to change (a larger blur leaves strokes finer than it free);
- statistics: sliced Wasserstein distances between the output's and the painting's colours and
  small patches at three scales (no pretrained network anywhere): RGB patches, or, with
  `texture_bands` (the recipe's choice), patches of each scale's band-pass detail, which carry
  strokes rather than colour (3 x 3 RGB patches of a colour-matched photo are already nearer the
  painting's than the painting's own crops are: they taught no strokes).

With `noise`, the generator also reads a seeded noise channel, and with `stroke_length` that
noise is smeared along the photo's edge flow (vitrestore.flow): streaks that follow outlines and
swirl in flat areas, which the network paints as strokes.

The generator is residual (it starts as the colour matching). `strength` in [0, 1] blends the photo
and the stylised output at inference; tiles are feathered by the shared tiler and the network
has no global normalisation, so a style cannot drift from tile to tile.
"""
from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import torch
import torch.nn.functional as F

from vitrestore.config import ConfigError, check_options
from vitrestore.fields import bounded
from vitrestore.flow import stroke_noise
from vitrestore.metrics import edge_map, edge_ssim, patch_swd, random_patches, sliced_wasserstein
from vitrestore.task import Batch, Pass, Passes, Task, as_unit

from .style_transfer_command import COMMAND


QUANTILES = 256  # the painting's colour quantiles per channel kept for histogram matching
MATCH_BINS = 4096  # histogram bins of a photo's channel when it is matched
POOL = 65536  # samples of the painting's colours and patches kept for the statistics losses
SAMPLES = 4096  # samples per batch and statistic


class StylePool(NamedTuple):
    """Fixed samples of the painting's statistics (see StyleTransfer.style_pool)."""
    colours: torch.Tensor  # (N, 3)
    textures: tuple[torch.Tensor, ...]  # per texture level (N, 3 * p * p), divided by its scale
    scales: tuple[float, ...]  # per texture level: 1, or the band patches' standard deviation


@dataclass(frozen=True)
class StyleOptions:
    style_image: str = ""  # the painting (needed to train; recorded in the model card)
    style_name: str = ""  # output file suffix, e.g. starry-night (default: the image's stem)
    style_sides: tuple[int, int] = bounded((256, 512), 16, 16384)  # the painting's short side when crops are taken
    content_weight: float = bounded(1.0, 0, 1e6)
    # edges compared after this blur: larger leaves room for strokes finer than it
    content_sigma: float = bounded(1.5, 0.01, 100)
    color_weight: float = bounded(1.0, 0, 1e6)
    texture_weight: float = bounded(1.0, 0, 1e6)
    strength: float = bounded(1.0, 0, 1)  # default blend at inference
    match_colors: bool = True  # match each photo to the painting's colour histogram before the network
    texture_levels: tuple[int, ...] = bounded((1, 2, 4), 1, 64)  # patch statistics at these downscales (1 = full size)
    noise: bool = False  # a seeded noise channel as conditioning: where strokes in flat skies start
    stroke_length: int = bounded(0, 0, 1024)  # > 0: the noise smeared this many pixels each way along the photo's edges
    stroke_width: int = bounded(1, 1, 256)  # grain of the noise in pixels
    texture_patch: int = bounded(3, 1, 64)  # side of the texture patches
    texture_bands: bool = False  # texture from band-pass detail (Laplacian pyramid), not raw RGB


def read_style_image(path: str | Path) -> torch.Tensor:
    """The painting as (1, 3, H, W) floats in [0, 1]; a clear error when it cannot be used."""
    from vitrestore.io.images import ImageReadError, read_image

    p = Path(path).expanduser()
    if not str(path):
        raise ValueError("task_options.style_image is not set: name the painting to learn")
    if not p.is_file():
        raise ValueError(f"{p}: style image not found")
    try:
        img = read_image(p, min_side=64)
    except ImageReadError as exc:
        raise ValueError(f"{p}: cannot use as a style image: {exc}") from None
    x = as_unit(torch.from_numpy(img.pixels).permute(2, 0, 1)[None])
    if x.shape[1] == 1:
        x = x.expand(-1, 3, -1, -1)
    return x[:, :3].contiguous()


def channel_quantiles(x: torch.Tensor, n: int = QUANTILES) -> torch.Tensor:
    """x (1, C, H, W) -> (C, n): each channel's values at probabilities 0, 1/(n-1), ..., 1."""
    flat = x[0].flatten(1)  # (C, HW)
    if flat.shape[1] > 2**24:  # torch.quantile's input limit: a seeded subsample
        flat = flat[:, torch.randperm(flat.shape[1], generator=torch.Generator().manual_seed(0))[: 2**24]]
    return torch.quantile(flat, torch.linspace(0, 1, n, dtype=flat.dtype), dim=1).T.contiguous()


def match_histograms(x: torch.Tensor, quantiles: torch.Tensor) -> torch.Tensor:
    """x (B, C, H, W) in [0, 1] -> each image's channels mapped so their histograms follow
    `quantiles` (C, n): a value at rank p of its channel becomes the reference's p-quantile
    (ranks from a MATCH_BINS histogram, mid-bin, so equal values stay equal). A new tensor."""
    b, c, h, w = x.shape
    q = quantiles.to(x)
    n = q.shape[1]
    out = torch.empty_like(x)
    for ch in range(c):  # one channel at a time: a large photo's (B, HW) index tensors stay small
        flat = x[:, ch].reshape(b, h * w).clamp(0, 1)
        idx = (flat * (MATCH_BINS - 1)).round().long()  # (B, HW) bin of each value
        hist = torch.zeros(b, MATCH_BINS, dtype=x.dtype, device=x.device).scatter_add_(1, idx, torch.ones_like(flat))
        cdf = (hist.cumsum(1) - hist / 2) / (h * w)  # (B, bins) mid-rank of each bin in [0, 1]
        pos = cdf.gather(1, idx) * (n - 1)  # (B, HW) fractional index into the quantiles
        lo = pos.floor().long().clamp(0, n - 2)
        frac = pos - lo
        out[:, ch] = (q[ch][lo] * (1 - frac) + q[ch][lo + 1] * frac).reshape(b, h, w)
    return out


def texture_view(x: torch.Tensor, k: int, bands: bool) -> torch.Tensor:
    """x (B, 3, H, W) at 1/k size; with `bands`, only its detail at that size (the level minus
    its own 2x blur, a Laplacian pyramid band): patches of it are strokes and edges, not colour,
    which dominates raw RGB patches and the colour loss already matches."""
    a = F.avg_pool2d(x, k) if k > 1 else x
    if not bands or min(a.shape[-2:]) < 2:
        return a
    return a - F.interpolate(F.avg_pool2d(a, 2), size=a.shape[-2:], mode="bilinear", align_corners=False)


def normalised_edges(x: torch.Tensor, sigma: float = 1.5) -> torch.Tensor:
    """Edge map at blur `sigma` scaled by its per-image mean, so a global contrast change costs
    nothing."""
    e = edge_map(x, sigma=sigma)
    return e / (e.mean(dim=(1, 2, 3), keepdim=True) + 1e-4)


class StyleTransfer(Task):
    name = COMMAND.task
    steady_judge = "input"  # clips (vitrestore/steady.py): its outputs differ on the same content, so the inputs judge
    Options = StyleOptions
    output_suffix = "stylized"
    Request = COMMAND.request
    contract = ("image: the photo colour-matched to the painting (StyleTransfer.prepare); cond (when "
                "cond_channels is 1): a seeded noise map smeared along the photo's edge flow (noise_map); the "
                "output is blended with the photo by strength.")

    def __init__(self, options: Any = None, source: str = "<options>"):
        super().__init__(options, source)
        o: StyleOptions = self.options
        check_options(o, source)
        if o.style_sides[0] > o.style_sides[1]:
            raise ConfigError(f"{source}: task_options.style_sides: the smaller side comes first, "
                              f"got {list(o.style_sides)}")

    @property
    def suffix(self) -> str:
        o = self.options
        return o.style_name or (Path(o.style_image).stem.replace("_", "-") if o.style_image else self.output_suffix)

    @property
    def cond_channels(self) -> int:
        return 1 if self.options.noise else 0

    def condition(self, image: torch.Tensor, noise: torch.Tensor | None = None, **request: Any) -> torch.Tensor | None:
        """With the `noise` option, a noise map (B, 1, H, W): the one `passes` drew for the whole
        image (sliced per tile by the caller), or a fresh seeded one."""
        if not self.options.noise:
            return None
        return self.noise_map(image) if noise is None else noise

    @property
    def tracks_pixels(self) -> bool:  # a clip's strokes start from noise fixed to the picture
        return bool(self.options.noise)

    def clip_request(self, image: Any, coords: Any) -> dict[str, Any]:
        """A clip's frame (H, W, 3) uint8: its noise map drawn on the picture, not the screen
        (vitrestore/motion.py's anchored_noise at where each pixel was in the first frame, then
        smeared along this frame's edges), so strokes move with what they paint instead of the
        picture panning under them (measured: docs/video.md)."""
        if not self.options.noise:
            return {}
        from vitrestore.motion import anchored_noise  # noqa: PLC0415

        o = self.options
        base = torch.from_numpy(anchored_noise(coords, o.stroke_width))[None, None]  # (1, 1, H, W)
        photo = torch.from_numpy(np.ascontiguousarray(image[..., :3])).permute(2, 0, 1)[None].float() / 255  # (1, 3, H, W)
        return {"noise": stroke_noise(photo, o.stroke_length, o.stroke_width, base=base)}

    def noise_map(self, photo: torch.Tensor, gen: torch.Generator | None = None) -> torch.Tensor:
        """The noise channel (B, 1, H, W) for photo (B, 3, H, W): Gaussian noise (seeded, 0 unless
        `gen` is given, so a photo is stylised the same way every time), with `stroke_length`
        smeared along the photo's edge flow into streaks the network paints as brush strokes.
        Without noise a flat sky gives the network nothing to paint from but the attention-window
        grid, and strokes come out as rectangles."""
        o = self.options
        return stroke_noise(as_unit(photo), o.stroke_length, o.stroke_width, gen)

    # --- the painting, at several sizes ---------------------------------------------------------
    @functools.cached_property
    def style_pyramid(self) -> list[torch.Tensor]:
        """The painting resized so its short side spans style_sides (4 sizes), each (1, 3, h, w)."""
        img = read_style_image(self.options.style_image)
        lo, hi = self.options.style_sides
        short = min(img.shape[-2:])
        out = []
        for i in range(4):
            side = lo + (hi - lo) * i / 3
            s = side / short
            size = (max(1, round(img.shape[-2] * s)), max(1, round(img.shape[-1] * s)))
            out.append(F.interpolate(img, size=size, mode="area" if s < 1 else "bicubic", align_corners=None
                                     if s < 1 else False).clamp(0, 1))
        return out

    def style_crops(self, n: int, crop: int, gen: torch.Generator) -> torch.Tensor:
        """n random crop x crop pieces of the painting (B, 3, crop, crop): random size from the
        pyramid, random place, random flip and quarter turn."""
        out = []
        for _ in range(n):
            level = self.style_pyramid[int(torch.randint(0, 4, (1,), generator=gen))]
            h, w = level.shape[-2:]
            if min(h, w) < crop:  # a small painting: enlarge this level to fit the crop
                s = crop / min(h, w)
                level = F.interpolate(level, size=(max(crop, round(h * s)), max(crop, round(w * s))),
                                      mode="bicubic", align_corners=False).clamp(0, 1)
                h, w = level.shape[-2:]
            top = int(torch.randint(0, h - crop + 1, (1,), generator=gen))
            left = int(torch.randint(0, w - crop + 1, (1,), generator=gen))
            piece = level[0, :, top : top + crop, left : left + crop]
            piece = torch.rot90(piece, int(torch.randint(0, 4, (1,), generator=gen)), dims=(1, 2))
            if bool(torch.randint(0, 2, (1,), generator=gen)):
                piece = piece.flip(-1)
            out.append(piece)
        return torch.stack(out)

    # --- training -------------------------------------------------------------------------------
    def check_training(self, source: str) -> None:
        """The painting must be readable before any work starts (the options' ranges are checked
        when the task is built)."""
        try:
            self.style_pyramid
        except ValueError as exc:
            raise ConfigError(f"{source}: {exc}") from None

    def degrade(self, clean: torch.Tensor, gen: torch.Generator) -> Batch:
        """Content crops (B, 3, c, c), matched to the painting's colours, in; painting crops of the
        same size as the 'real' side; the photos as `source` (the content loss's reference)."""
        cond = self.noise_map(clean, gen) if self.options.noise else None
        return Batch(input=self.prepare(clean), target=None, real=self.style_crops(clean.shape[0], clean.shape[-1], gen),
                     source=clean, cond=cond)

    # --- the painting's colours: computed for training, saved in the weights ------------------
    @functools.cached_property
    def palette(self) -> torch.Tensor:
        """(3, QUANTILES) colour quantiles of the painting (its largest pyramid level)."""
        return channel_quantiles(self.style_pyramid[-1])

    def state(self) -> dict[str, torch.Tensor]:
        return {"palette": self.palette} if self.options.match_colors else {}

    def load_state(self, state: dict[str, torch.Tensor]) -> None:
        if self.options.match_colors:
            if "palette" not in state:
                raise ValueError("these style weights carry no colour palette (trained before match_colors)")
            self.palette = state["palette"].float()
        elif state:
            super().load_state(state)

    def prepare(self, photo: torch.Tensor) -> torch.Tensor:
        """What the generator sees: the photo (B, 3, H, W) in [0, 1] matched to the painting's
        colour histogram (or as it is, with match_colors off)."""
        return match_histograms(photo, self.palette) if self.options.match_colors else photo

    def disc_condition(self, batch: Batch) -> torch.Tensor:
        """Nothing: the discriminator judges patches of paint, not a translation of a photo."""
        return batch.input[:, :0]

    def disc_in_channels(self, gcfg) -> int:
        return gcfg.out_channels

    @functools.cached_property
    def style_pool(self) -> StylePool:
        """The painting's statistics as fixed samples (seeded): colours (N, 3), then texture_patch
        square patches (N, 3 * p * p) of each texture level, drawn from every level of the pyramid.
        The losses compare each batch with these, not with the batch's few crops (a crop of sky
        and a crop of a face have very different colours: that target would be noise). Band
        patches are divided by their level's standard deviation, so every level weighs alike."""
        o = self.options
        gen = torch.Generator().manual_seed(1234)
        per = POOL // len(self.style_pyramid)
        colours, patches = [], [[] for _ in o.texture_levels]
        for level in self.style_pyramid:
            colours.append(random_patches(level, 1, per, gen))
            for i, k in enumerate(o.texture_levels):
                patches[i].append(random_patches(texture_view(level, k, o.texture_bands), o.texture_patch, per, gen))
        textures = [torch.cat(p) for p in patches]
        scales = tuple(float(t.std()) if o.texture_bands else 1.0 for t in textures)
        return StylePool(torch.cat(colours), tuple(t / sc for t, sc in zip(textures, scales)), scales)

    def pool_on(self, device: torch.device) -> StylePool:
        """style_pool on the training device, moved there once (not every step)."""
        pool = self.style_pool
        if pool.colours.device != device:
            self.style_pool = pool = StylePool(pool.colours.to(device), tuple(t.to(device) for t in pool.textures),
                                               pool.scales)
        return pool

    def generator_losses(self, output: torch.Tensor, batch: Batch, gen: torch.Generator | None = None):
        o = self.options
        photo = batch.input if batch.source is None else batch.source
        content = F.l1_loss(normalised_edges(output, o.content_sigma), normalised_edges(photo, o.content_sigma))
        pool = self.pool_on(output.device)

        def from_pool(t: torch.Tensor) -> torch.Tensor:
            return t[torch.randint(0, t.shape[0], (SAMPLES,), generator=gen).to(t.device)]

        color = sliced_wasserstein(random_patches(output, 1, SAMPLES, gen), from_pool(pool.colours), 32, gen)
        texture = sum(sliced_wasserstein(random_patches(texture_view(output, k, o.texture_bands), o.texture_patch,
                                                        SAMPLES, gen) / pool.scales[i],
                                         from_pool(pool.textures[i]), 64, gen)
                      for i, k in enumerate(o.texture_levels)) / len(o.texture_levels)
        loss = o.content_weight * content + o.color_weight * color + o.texture_weight * texture
        logs = {"content": content, "color_swd": color, "texture_swd": texture}
        return loss, {k: float(v.detach()) for k, v in logs.items()}

    def metrics(self, output: torch.Tensor, batch: Batch) -> dict[str, float]:
        """Content kept (edge SSIM with the photo) and style distance (patch SWD to the painting
        crops), with the photo's own style distance for reference."""
        photo = batch.input if batch.source is None else batch.source
        return {"content_edge_ssim": edge_ssim(output, photo),
                "style_swd": patch_swd(output, batch.real),
                "style_swd_input": patch_swd(photo, batch.real),
                "style_swd_matched": patch_swd(batch.input, batch.real)}

    # --- inference ------------------------------------------------------------------------------
    def passes(self, image: torch.Tensor, tile: int, **request: Any) -> Passes:
        """The colour matching and the noise map see the whole image (tiles matched or drawn one
        by one would differ); then one pass of the network in tiles."""
        photo = as_unit(image)  # (B, 3, H, W) float in [0, 1], converted once for both
        if self.options.noise and request.get("noise") is None:  # a map the caller gives is used as it is
            request = {**request, "noise": self.noise_map(photo)}
        return (yield Pass(self.prepare(photo), tile, request))

    def postprocess(self, output: torch.Tensor, image: torch.Tensor, strength: float | None = None,
                    **request: Any) -> torch.Tensor:
        """strength 0 = the photo, 1 = the stylised output, linear in between."""
        s = self.options.strength if strength is None else float(strength)
        self.check_request(strength=s)
        output = output.clamp_(0, 1)
        return output if s == 1.0 else torch.lerp(as_unit(image).to(output), output, s)
