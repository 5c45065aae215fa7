"""Old photos and their damage, synthetic, seeded and replayable: what the `repair` detector
learns from (issue: find and mend the damage on old photos without a mask).

    scene(photo, g)   details that are NOT damage, drawn into the photo itself: hair and
                      eyelash-like curves, thin wires, text strokes, bright highlights, straight
                      structure (frame edges, stripes, glints along an edge)
    age(photo, g)     the photo made to look old: faded (lifted blacks, less contrast), sepia,
                      grey or colour-cast, film grain, paper texture (the damage is added after
                      this, then the whole is scanned: JPEG in `old_photo`)
    damage(aged, g)   (damaged, mask): each kind drawn with its probability, on top of the aged
                      photo; mask 1 = damaged, the pixels repair must fill
        cracks        branching random walks, 1-3 px, paper-coloured (light)
        scratches     long, thin (1-2 px), nearly straight, white or dark
        dust          specks and hairs of dust, 1-5 px, bright or dark
        creases       a fold line across the photo: a light band with a dark edge beside it
        tears         a torn or bent corner: an irregular region at the border, paper or backing
    old_photo(photo, g) -> (clean, damaged, mask): scene, age, damage, scan (JPEG); `clean` is
                      the aged photo without damage, scanned alike (the repair's target)

Arrays are (H, W, 3) float32 in [0, 1]; masks (H, W) float32 {0, 1}. Every random number comes
from the torch.Generator `g`, in a fixed order, so an image's damage replays from its seed. Only
mask pixels differ between `clean` and `damaged` before the scan.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np
import torch

from vitrestore.fields import bounded
from vitrestore.ops.masks import _i, _u  # a uniform float / an integer in [lo, hi] from the generator


def _chance(g: torch.Generator, p: float) -> bool:
    return float(torch.rand(1, generator=g)) < p


def _noise(g: torch.Generator, h: int, w: int, c: int = 1) -> np.ndarray:
    """(h, w, c) standard normal noise from the generator."""
    return torch.randn((h, w, c), generator=g).numpy()


def _curve(g: torch.Generator, h: int, w: int, length: float, bend: float) -> np.ndarray:
    """A smooth random curve: (N, 2) int32 (x, y) points, about `length` px long."""
    x, y, angle = _u(g, 0, w), _u(g, 0, h), _u(g, 0, 2 * math.pi)
    turn = _u(g, -bend, bend)
    pts = []
    steps = max(4, int(length / 4))
    for _ in range(steps):
        pts.append((x, y))
        angle += turn + _u(g, -bend, bend) * 0.3
        x, y = x + 4 * math.cos(angle), y + 4 * math.sin(angle)
    return np.array(pts, np.float32).round().astype(np.int32)


# --- what is not damage --------------------------------------------------------------------
@dataclass(frozen=True)
class Scene:
    """Fine details drawn into the photo before it ages (part of the picture, never in the
    mask): the detector must learn to leave them alone."""

    hairs_max: int = bounded(6, 0, 100)  # curved, tapering dark or light strands (hair, eyelashes)
    wires_prob: float = bounded(0.3, 0, 1)  # a long thin straight wire across the scene, dark
    text_prob: float = bounded(0.2, 0, 1)  # a few characters of printed text
    highlights_max: int = bounded(3, 0, 50)  # small bright specular spots
    lines_max: int = bounded(3, 0, 50)  # straight structure: frame edges, stripes, glints along an edge

    def __call__(self, photo: np.ndarray, g: torch.Generator) -> np.ndarray:
        out = photo.copy()
        h, w = out.shape[:2]
        for _ in range(_i(g, 0, self.lines_max)):
            out = self._structure(out, g)
        for _ in range(_i(g, 0, self.hairs_max)):
            pts = _curve(g, h, w, _u(g, 8, 0.25 * max(h, w)), 0.05)
            tone = _u(g, 0.0, 0.25) if _chance(g, 0.7) else _u(g, 0.7, 0.95)
            layer = np.zeros((h, w), np.float32)
            cv2.polylines(layer, [pts], False, 1.0, 1, cv2.LINE_AA)
            alpha = layer * _u(g, 0.4, 0.9)
            out = out * (1 - alpha[..., None]) + tone * alpha[..., None]
        if _chance(g, self.wires_prob):
            p0 = (int(_u(g, 0, w)), 0)
            p1 = (int(_u(g, 0, w)), h - 1)
            layer = np.zeros((h, w), np.float32)
            cv2.line(layer, p0, p1, 1.0, 1, cv2.LINE_AA)
            out = out * (1 - 0.8 * layer[..., None]) + 0.1 * 0.8 * layer[..., None]
        if _chance(g, self.text_prob):
            text = "".join(chr(_i(g, 65, 90)) for _ in range(_i(g, 3, 8)))
            scale = _u(g, 0.3, 0.8)
            org = (int(_u(g, 0, max(1, w - 60))), int(_u(g, 12, h)))
            tone = 0.05 if _chance(g, 0.5) else 0.95
            layer = np.zeros((h, w), np.uint8)  # OpenCV draws text on 8-bit images only
            cv2.putText(layer, text, org, cv2.FONT_HERSHEY_SIMPLEX, scale, 255, 1, cv2.LINE_AA)
            alpha = layer.astype(np.float32)[..., None] / 255
            out = out * (1 - alpha) + tone * alpha
        for _ in range(_i(g, 0, self.highlights_max)):
            cx, cy, r = _u(g, 0, w), _u(g, 0, h), _u(g, 1.0, 3.0)
            yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
            spot = np.exp(-((xx - cx) ** 2 + (yy - cy) ** 2) / (2 * r * r))[..., None]
            out = out + (1 - out) * spot * _u(g, 0.5, 0.9)
        return np.clip(out, 0, 1).astype(np.float32)

    @staticmethod
    def _structure(out: np.ndarray, g: torch.Generator) -> np.ndarray:
        """A straight line of the scene, at any angle, light or dark, 1-3 px, as soft as the
        photo's own edges: alone (a wire, a stripe), beside a parallel one (a frame's two edges,
        2-12 px apart) or along a step to a darker band (a glint on a door frame, a collar's
        edge). Damage looks alike but lies on top of the print: the detector must tell them apart."""
        h, w = out.shape[:2]
        angle, cx, cy = _u(g, 0, math.pi), _u(g, 0, w), _u(g, 0, h)
        length = _u(g, 0.3, 1.5) * max(h, w)
        dx, dy = math.cos(angle), math.sin(angle)
        nx, ny = -dy, dx  # the normal: where a parallel edge or a band lies
        width, gap = _i(g, 1, 3), _u(g, 2, 12)
        tone = _u(g, 0.75, 1.0) if _chance(g, 0.6) else _u(g, 0.0, 0.25)
        kind = _i(g, 0, 2)  # 0 alone, 1 a parallel pair, 2 a glint along a band

        def line(offset: float) -> np.ndarray:
            layer = np.zeros((h, w), np.float32)
            ox, oy = cx + nx * offset, cy + ny * offset
            p0 = (int(ox - dx * length / 2), int(oy - dy * length / 2))
            p1 = (int(ox + dx * length / 2), int(oy + dy * length / 2))
            cv2.line(layer, p0, p1, 1.0, width, cv2.LINE_AA)
            return layer

        layer = line(0.0)
        if kind == 1:
            layer = np.maximum(layer, line(gap))
        blur = _u(g, 0.3, 1.0)
        alpha = cv2.GaussianBlur(layer, (0, 0), blur) * _u(g, 0.5, 0.95)
        if kind == 2:  # the band beside the glint: a darker (or lighter) strip, `gap` wide
            band = np.zeros((h, w), np.float32)
            for k in range(1, int(gap) + 1):
                band = np.maximum(band, line(k * (width + 0.5) * 0.7))
            band = cv2.GaussianBlur(band, (0, 0), blur) * _u(g, 0.2, 0.6)
            out = out * (1 - band[..., None]) + (1 - tone) * band[..., None]
        return out * (1 - alpha[..., None]) + tone * alpha[..., None]


# --- age ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Age:
    """A print as it looks after decades, before its damage."""

    fade_max: float = bounded(0.35, 0, 1)  # blacks lifted and contrast lost by up to this much
    sepia_prob: float = bounded(0.4, 0, 1)
    grey_prob: float = bounded(0.3, 0, 1)  # else a colour cast (yellowed, magenta, cyan shift)
    grain_max: float = bounded(0.04, 0, 0.5)  # film grain std at most
    paper_max: float = bounded(0.03, 0, 0.5)  # paper texture (low-frequency blotches) at most

    def __call__(self, photo: np.ndarray, g: torch.Generator) -> np.ndarray:
        h, w = photo.shape[:2]
        x = photo.astype(np.float32)
        kind = _u(g, 0, 1)
        grey = x @ np.array([0.299, 0.587, 0.114], np.float32)
        if kind < self.sepia_prob:
            tone = np.array([1.0, 0.85, 0.62], np.float32) * _u(g, 0.9, 1.05)
            x = grey[..., None] * tone + (1 - tone) * 0.15 * grey[..., None]
        elif kind < self.sepia_prob + self.grey_prob:
            x = np.repeat(grey[..., None], 3, axis=2)
        else:
            cast = np.array([_u(g, 0.9, 1.1), _u(g, 0.9, 1.05), _u(g, 0.75, 1.0)], np.float32)
            x = x * cast
        fade = _u(g, 0, self.fade_max)
        x = fade * _u(g, 0.5, 0.8) + (1 - fade) * x  # towards a warm paper grey
        grain = _noise(g, h, w) * _u(g, 0, self.grain_max)
        blotch = cv2.resize(_noise(g, max(2, h // 32), max(2, w // 32))[..., 0], (w, h),
                            interpolation=cv2.INTER_CUBIC)[..., None] * _u(g, 0, self.paper_max)
        return np.clip(x + grain + blotch, 0, 1).astype(np.float32)


# --- damage ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class Damage:
    """The damage on an aged print; each kind with its probability (at least one is drawn)."""

    cracks_prob: float = bounded(0.5, 0, 1)
    scratches_prob: float = bounded(0.6, 0, 1)
    dust_prob: float = bounded(0.6, 0, 1)
    creases_prob: float = bounded(0.2, 0, 1)
    tears_prob: float = bounded(0.15, 0, 1)

    def __call__(self, aged: np.ndarray, g: torch.Generator) -> tuple[np.ndarray, np.ndarray]:
        h, w = aged.shape[:2]
        out, mask = aged.copy(), np.zeros((h, w), np.float32)
        kinds = [(self.cracks_prob, self._cracks), (self.scratches_prob, self._scratches),
                 (self.dust_prob, self._dust), (self.creases_prob, self._creases), (self.tears_prob, self._tears)]
        drawn = [make for p, make in kinds if _chance(g, p)]
        if not drawn:
            drawn = [kinds[_i(g, 0, 2)][1]]  # cracks, scratches or dust
        for make in drawn:
            make(out, mask, g)
        return out, mask

    @staticmethod
    def _paint(out: np.ndarray, mask: np.ndarray, layer: np.ndarray, tone: np.ndarray | float) -> None:
        """Blend `tone` where `layer` (H, W) in [0, 1] is set; the touched pixels join the mask."""
        a = layer[..., None]
        out[:] = out * (1 - a) + np.asarray(tone, np.float32) * a
        mask[layer > 0.05] = 1.0

    def _cracks(self, out, mask, g) -> None:
        """Emulsion cracks: branching walks, paper-coloured, 1-3 px."""
        h, w = mask.shape
        layer = np.zeros((h, w), np.float32)
        for _ in range(_i(g, 1, 3)):
            stack = [(_u(g, 0, w), _u(g, 0, h), _u(g, 0, 2 * math.pi), _i(g, 20, 60))]
            while stack:
                x, y, angle, steps = stack.pop()
                width = _i(g, 1, 2)
                for _ in range(steps):
                    angle += _u(g, -0.6, 0.6)
                    nx, ny = x + 3 * math.cos(angle), y + 3 * math.sin(angle)
                    cv2.line(layer, (int(x), int(y)), (int(nx), int(ny)), 1.0, width)
                    x, y = nx, ny
                    if _chance(g, 0.04) and len(stack) < 6:  # a branch
                        stack.append((x, y, angle + _u(g, -1.2, 1.2), _i(g, 5, 25)))
        paper = np.array([_u(g, 0.8, 0.98), _u(g, 0.75, 0.95), _u(g, 0.65, 0.9)], np.float32)
        self._paint(out, mask, layer * _u(g, 0.6, 1.0), paper)

    def _scratches(self, out, mask, g) -> None:
        """Long thin, nearly straight lines, white or dark."""
        h, w = mask.shape
        for _ in range(_i(g, 1, 5)):
            layer = np.zeros((h, w), np.float32)
            x0, y0, angle = _u(g, 0, w), _u(g, 0, h), _u(g, 0, math.pi)
            length = _u(g, 0.3, 1.0) * math.hypot(h, w)
            pts = []
            for t in np.linspace(-0.5, 0.5, 8):
                bend = _u(g, -0.01, 0.01) * length
                pts.append((x0 + t * length * math.cos(angle) - bend * math.sin(angle),
                            y0 + t * length * math.sin(angle) + bend * math.cos(angle)))
            cv2.polylines(layer, [np.array(pts, np.float32).round().astype(np.int32)], False, 1.0, _i(g, 1, 2))
            tone = _u(g, 0.85, 1.0) if _chance(g, 0.6) else _u(g, 0.0, 0.15)
            self._paint(out, mask, layer * _u(g, 0.5, 1.0), tone)

    def _dust(self, out, mask, g) -> None:
        """Specks (1-5 px) and short curled fibres, bright or dark."""
        h, w = mask.shape
        layer_light, layer_dark = np.zeros((h, w), np.float32), np.zeros((h, w), np.float32)
        for _ in range(max(1, round(_i(g, 3, 40) * h * w / 256**2))):  # as many per area at any size
            layer = layer_light if _chance(g, 0.5) else layer_dark
            if _chance(g, 0.8):
                cv2.circle(layer, (int(_u(g, 0, w)), int(_u(g, 0, h))), _i(g, 0, 2), 1.0, -1)
            else:
                cv2.polylines(layer, [_curve(g, h, w, _u(g, 6, 24), 0.5)], False, 1.0, 1)
        self._paint(out, mask, layer_light * _u(g, 0.6, 1.0), _u(g, 0.85, 1.0))
        self._paint(out, mask, layer_dark * _u(g, 0.6, 1.0), _u(g, 0.0, 0.2))

    def _creases(self, out, mask, g) -> None:
        """A fold line: a light band (2-5 px) with a darker edge along one side."""
        h, w = mask.shape
        light, dark = np.zeros((h, w), np.float32), np.zeros((h, w), np.float32)
        if _chance(g, 0.5):  # across the photo, roughly horizontal or vertical
            y0, y1 = _u(g, 0.1, 0.9) * h, _u(g, 0.1, 0.9) * h
            p0, p1, side = (0, int(y0)), (w - 1, int(y1)), (0, 1)
        else:
            x0, x1 = _u(g, 0.1, 0.9) * w, _u(g, 0.1, 0.9) * w
            p0, p1, side = (int(x0), 0), (int(x1), h - 1), (1, 0)
        width = _i(g, 2, 5)
        cv2.line(light, p0, p1, 1.0, width)
        shift = width // 2 + 1
        cv2.line(dark, (p0[0] + side[0] * shift, p0[1] + side[1] * shift),
                 (p1[0] + side[0] * shift, p1[1] + side[1] * shift), 1.0, 1)
        self._paint(out, mask, light * _u(g, 0.5, 0.9), _u(g, 0.85, 0.98))
        self._paint(out, mask, dark * _u(g, 0.3, 0.6), _u(g, 0.1, 0.3))

    def _tears(self, out, mask, g) -> None:
        """A torn or bent corner: an irregular polygon at a corner, paper white or backing dark."""
        h, w = mask.shape
        corner = _i(g, 0, 3)
        size = _u(g, 0.08, 0.25) * min(h, w)
        cx, cy = (0 if corner in (0, 3) else w - 1), (0 if corner in (0, 1) else h - 1)
        sx, sy = (1 if cx == 0 else -1), (1 if cy == 0 else -1)
        pts = [(cx, cy), (cx + sx * size * _u(g, 0.8, 1.6), cy)]
        for t in np.linspace(0.2, 0.8, 5):  # a jagged edge from one side to the other
            r = size * _u(g, 0.7, 1.3)
            pts.append((cx + sx * r * (1 - t), cy + sy * r * t))
        pts.append((cx, cy + sy * size * _u(g, 0.8, 1.6)))
        layer = np.zeros((h, w), np.float32)
        cv2.fillPoly(layer, [np.array(pts, np.float32).round().astype(np.int32)], 1.0)
        tone = _u(g, 0.85, 1.0) if _chance(g, 0.6) else _u(g, 0.05, 0.25)
        self._paint(out, mask, layer, tone)


@dataclass(frozen=True)
class OldPhoto:
    """A clean photo to (clean aged scan, damaged scan, mask), all from one generator."""

    scene: Scene = Scene()
    age: Age = Age()
    damage: Damage = Damage()
    jpeg_prob: float = bounded(0.7, 0, 1)  # the scan saved as JPEG, quality 60-95
    dilate: int = bounded(1, 0, 8)  # px the mask grows by: the damage's soft edge is repaired too

    def __call__(self, photo: np.ndarray, g: torch.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        aged = self.age(self.scene(photo, g), g)
        damaged, mask = self.damage(aged, g)
        if self.dilate:
            k = 2 * self.dilate + 1
            mask = cv2.dilate(mask, np.ones((k, k), np.uint8))
        quality = _i(g, 60, 95) if _chance(g, self.jpeg_prob) else 0
        return _scan(aged, quality), _scan(damaged, quality), mask


def _scan(x: np.ndarray, quality: int) -> np.ndarray:
    """The 8-bit file a scanner writes: rounded, and JPEG'd at `quality` (0: PNG)."""
    u8 = np.clip(x * 255 + 0.5, 0, 255).astype(np.uint8)
    if quality:
        ok, buf = cv2.imencode(".jpg", u8[:, :, ::-1], [cv2.IMWRITE_JPEG_QUALITY, quality])
        u8 = cv2.imdecode(buf, cv2.IMREAD_COLOR)[:, :, ::-1]
    return u8.astype(np.float32) / 255
