"""Inpainting task: seeded mask generators cover their area ranges, known pixels are kept
exactly, a few training steps lower the loss inside the hole."""
import numpy as np
import pytest
import torch

from vitrestore.data import ImageBank, list_images
from vitrestore.engine.runtime import Model
from vitrestore.engine.train import Trainer
from vitrestore.ops.masks import Boxes, Large, MaskMix, Scratches, Strokes
from vitrestore.tasks import get_task


@pytest.mark.parametrize("make, lo, hi", [
    (Strokes(1, 5, 0.01, 0.03), 0.002, 0.25),
    (Strokes(1, 4, 0.04, 0.1), 0.01, 0.6),
    (Large(), 0.15, 0.75),
    (Boxes(), 0.005, 0.5),
    (Scratches(), 0.0005, 0.1),
])
def test_mask_generators_are_seeded_and_cover_their_range(make, lo, hi):
    covers = []
    for seed in range(20):
        a = make(96, 128, torch.Generator().manual_seed(seed))
        b = make(96, 128, torch.Generator().manual_seed(seed))
        assert a.shape == (96, 128) and set(np.unique(a)) <= {0.0, 1.0} and np.array_equal(a, b)
        covers.append(a.mean())
    assert lo <= np.mean(covers) <= hi and max(covers) > 0


def test_large_masks_reach_about_forty_percent():
    covers = [Large(0.35, 0.45)(128, 128, torch.Generator().manual_seed(s)).mean() for s in range(20)]
    assert 0.3 < np.mean(covers) < 0.6


def test_mixture_never_returns_an_empty_mask():
    mix = MaskMix(scratches=1.0, thin=0, thick=0, large=0, boxes=0)
    assert all(mix(16, 16, torch.Generator().manual_seed(s)).max() == 1 for s in range(30))


def test_known_pixels_are_kept_exactly(tiny_cfg):
    cfg = tiny_cfg("task=inpaint")
    task = get_task("inpaint").from_config(cfg)
    t = Trainer(cfg, task, quiet=True)
    model = Model(task, t.G, {}, torch.device("cpu"), tile=32, overlap=8)
    img = (torch.rand(1, 3, 40, 52) * 255).round().to(torch.uint8)
    mask = torch.zeros(1, 1, 40, 52)
    mask[..., 10:25, 5:30] = 1
    out = model.run_tensor(img, mask=mask)
    keep = mask.expand_as(out) == 0
    assert torch.equal((out * 255).round()[keep], img.float()[keep])
    with pytest.raises(ValueError, match="mask"):
        model.run_tensor(img)


def test_prefill_is_opencv_in_the_hole_and_exact_outside():
    import cv2

    img = torch.rand(2, 3, 40, 52)
    mask = torch.zeros(2, 1, 40, 52)
    mask[0, :, 10:25, 5:30] = 1
    mask[1, :, 3:9, 40:50] = 1
    task = get_task("inpaint")({"prefill": "telea"})
    out = task.prefill(img, mask)
    keep = mask.expand_as(out) == 0
    assert torch.equal(out[keep], img[keep]) and not torch.equal(out, img)
    u8 = (img[0] * 255).round().to(torch.uint8).permute(1, 2, 0).numpy().copy()
    ref = cv2.inpaint(u8, mask[0, 0].to(torch.uint8).numpy() * 255, 3.0, cv2.INPAINT_TELEA)
    hole = mask[0, 0].bool()
    assert torch.equal((out[0].permute(1, 2, 0)[hole] * 255).round().to(torch.uint8), torch.from_numpy(ref)[hole])
    assert torch.equal(get_task("inpaint")({"prefill": "zero"}).prefill(img, mask)[~keep], torch.zeros(int((~keep).sum())))
    with pytest.raises(Exception, match="prefill"):
        get_task("inpaint")({"prefill": "lama"})


def test_prefill_of_both_methods_is_their_mean():
    import cv2

    img = torch.rand(1, 3, 36, 44)
    mask = torch.zeros(1, 1, 36, 44)
    mask[0, :, 8:20, 6:30] = 1
    out = get_task("inpaint")({"prefill": "telea+navier-stokes"}).prefill(img, mask)
    u8 = (img[0] * 255).round().to(torch.uint8).permute(1, 2, 0).numpy().copy()
    u8[mask[0, 0].bool().numpy()] = 0
    holes = mask[0, 0].to(torch.uint8).numpy() * 255
    ref = ((cv2.inpaint(u8, holes, 3.0, cv2.INPAINT_TELEA).astype(np.float64)
            + cv2.inpaint(u8, holes, 3.0, cv2.INPAINT_NS)) / 2).round() / 255  # (H, W, 3), on 8-bit levels
    hole = mask[0, 0].bool()
    assert torch.allclose(out[0].permute(1, 2, 0)[hole].double(), torch.from_numpy(ref)[hole], atol=1e-6)
    keep = ~hole.expand(3, -1, -1)
    assert torch.equal(out[0][keep], img[0][keep])


@pytest.mark.slow
def test_training_lowers_the_hole_loss(tiny_cfg, image_dir):
    """The learning itself, on holes set to 0 (from a Telea pre-fill there is less to learn)."""
    cfg = tiny_cfg("task=inpaint", "train.lr=3e-3", "train.warmup=1", "task_options.prefill=zero")
    t = Trainer(cfg, get_task("inpaint").from_config(cfg), quiet=True)
    bank = ImageBank(list_images(image_dir), min_size=32)

    def hole_loss():
        total = 0.0
        for s in range(3):
            b = t.stream(bank)[1000 + s]
            with torch.no_grad():
                out = t.G(b.input, b.cond)
            total += float(((out - b.target).abs() * b.cond).sum() / b.cond.sum().clamp_min(1))
        return total

    before = hole_loss()
    for _ in range(60):
        t.train_step(bank)
    assert hole_loss() < 0.8 * before


def _nonzero_head(tiny_cfg, *overrides: str):
    """A tiny inpaint task and its trainer, the generator's head drawn at random: a residual head
    at zero would return the pre-fill unchanged, and these tests need a non-trivial fill."""
    cfg = tiny_cfg("task=inpaint", *overrides)
    task = get_task("inpaint").from_config(cfg)
    t = Trainer(cfg, task, quiet=True)
    for p in t.G.head.parameters():
        torch.nn.init.normal_(p, std=0.05)
    return task, t


def test_discriminator_judges_the_composite(tiny_cfg, image_dir, monkeypatch):
    """In the adversarial stage both the discriminator step and the generator's adversarial term
    see the composite: the network's fill in the hole, the known pixels exactly elsewhere."""
    task, t = _nonzero_head(tiny_cfg, "train.steps=0", "train.adversarial_steps=2", "loss.adversarial=nonsaturating",
                            "loss.feature_matching_weight=1")
    bank = ImageBank(list_images(image_dir), min_size=32)
    seen = []
    real = task.disc_candidate
    monkeypatch.setattr(task, "disc_candidate", lambda out, b: seen.append((out, b, real(out, b))) or seen[-1][2])
    t.train_step(bank)
    assert len(seen) == 2  # the discriminator step, then the generator's
    for out, b, cand in seen:
        m = b.cond.expand_as(out) > 0.5
        assert m.any() and (~m).any()
        assert torch.equal(cand[~m], b.input[~m]) and torch.equal(cand[m], out[m])
        assert not torch.equal(out[~m], b.input[~m])  # the raw output differs outside the hole


# --- masks from the user, through the CLI ------------------------------------------------------
import cv2  # noqa: E402
from click.testing import CliRunner  # noqa: E402

from conftest import smooth_image, stripes  # noqa: E402
from vitrestore.cli import main  # noqa: E402
from vitrestore.io.images import read_image  # noqa: E402
from vitrestore.tasks.inpaint_masks import color_key_mask, dilate, mask_from_pixels, parse_color  # noqa: E402
from vitrestore.weights import shipped_models  # noqa: E402


def run(*args):
    res = CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)
    return res.exit_code, res.output


def test_mask_conventions():
    soft = np.zeros((4, 4, 1), np.uint8)
    soft[0, 0], soft[0, 1] = 200, 100  # soft mask: thresholded at 50%
    assert mask_from_pixels(soft).tolist()[0][:2] == [True, False]
    rgba = np.zeros((4, 4, 4), np.uint8)
    rgba[1, 1, 3] = 255  # opaque pixel on a transparent mask = fill (colour ignored)
    assert mask_from_pixels(rgba).sum() == 1 and mask_from_pixels(rgba)[1, 1]
    deep = np.full((4, 4, 3), 65535, np.uint16)
    assert mask_from_pixels(deep).all()
    img = np.zeros((4, 4, 3), np.uint8)
    img[2, 3] = (255, 0, 255)
    img[0, 0] = (250, 5, 250)
    assert color_key_mask(img, parse_color("#ff00ff")).sum() == 1
    assert color_key_mask(img, parse_color("255,0,255"), tolerance=5).sum() == 2
    assert dilate(color_key_mask(img, (255, 0, 255)), 1).sum() > 1
    with pytest.raises(ValueError, match="R,G,B"):
        parse_color("red")


def test_cli_keeps_known_pixels_and_reports_bad_masks(tmp_path, tiny_inpaint_weights):
    img = smooth_image(np.random.default_rng(4), 40, 48)
    d, masks = tmp_path / "damaged", tmp_path / "masks"
    d.mkdir()
    masks.mkdir()
    for name in ("a", "b", "c", "d"):
        cv2.imwrite(str(d / f"{name}.png"), img[:, :, ::-1])
    hole = np.zeros((40, 48), np.uint8)
    hole[10:20, 12:30] = 255
    cv2.imwrite(str(masks / "a.png"), hole)
    cv2.imwrite(str(masks / "b.png"), np.zeros((40, 48), np.uint8))  # all black: nothing to fill
    cv2.imwrite(str(masks / "c.png"), hole[:30])  # wrong size
    code, out = run("inpaint", d, "--mask", masks, "-o", tmp_path / "out", "--model", tiny_inpaint_weights, "-q")
    assert code == 1
    assert "b.png: mask" in out and "empty" in out
    assert "c.png: mask" in out and "48x30 but the image is 48x40" in out
    assert "d.png: no mask named d.* in" in out
    res = read_image(tmp_path / "out" / "a.png").pixels
    keep = hole == 0
    assert np.array_equal(res[keep], img[keep])  # outside the hole: the input, exactly
    assert not (tmp_path / "out" / "b.png").exists()


def test_cli_colour_key_and_argument_errors(tmp_path, tiny_inpaint_weights):
    img = smooth_image(np.random.default_rng(5), 32, 32)
    img[5:15, 5:15] = (255, 0, 255)
    cv2.imwrite(str(tmp_path / "scan.png"), img[:, :, ::-1])
    code, out = run("inpaint", tmp_path / "scan.png", "--mask-color", "255,0,255", "--model", tiny_inpaint_weights,
                    "-q")
    assert code == 0, out
    res = read_image(tmp_path / "scan_inpainted.png").pixels
    assert not (res[5:15, 5:15] == (255, 0, 255)).all(-1).any()  # the key colour is gone
    assert np.array_equal(res[20:], img[20:])
    code, out = run("inpaint", tmp_path / "scan.png", "--model", tiny_inpaint_weights)
    assert code != 0 and "exactly one of --mask" in out
    code, out = run("inpaint", tmp_path / "scan.png", "--mask-color", "1,2", "--model", tiny_inpaint_weights)
    assert code != 0 and "R,G,B" in out


def test_large_image_large_hole_runs_coarse_to_fine(tiny_cfg, monkeypatch):
    """Above WHOLE_SIDE the hole's interior comes from a whole-image pass at reduced size, its
    edge from full-resolution tiles; known pixels stay exact."""
    import vitrestore.tasks.inpaint as ip

    monkeypatch.setattr(ip, "WHOLE_SIDE", 64)
    task, t = _nonzero_head(tiny_cfg)
    model = Model(task, t.G, {}, torch.device("cpu"), tile=48, overlap=8)
    calls = []
    real = model._tiled
    monkeypatch.setattr(model, "_tiled", lambda x, tile, **r: calls.append((tuple(x.shape[-2:]), tile)) or real(x, tile, **r))
    img = torch.rand(1, 3, 150, 200)
    mask = torch.zeros(1, 1, 150, 200)
    mask[..., 30:120, 40:170] = 1  # a hole far larger than a tile's reach
    out = model.run_tensor(img, mask=mask)
    assert calls == [((48, 64), 0), ((150, 200), 48)]  # coarse whole pass, then full-size tiles
    assert out.shape == img.shape and torch.isfinite(out).all()
    keep = mask.expand_as(out) == 0
    assert torch.equal(out[keep], img[keep])


def test_deep_hole_gets_a_reduced_size_layout_pass(tiny_cfg, monkeypatch):
    """A hole reaching deeper than LAYOUT_DEPTH / 2 is first filled whole at LAYOUT_SIDE; that
    fill, scaled up, replaces the classical pre-fill deep in the hole before the full-size pass.
    A shallow hole skips it. Known pixels stay exact either way."""
    import vitrestore.tasks.inpaint as ip

    monkeypatch.setattr(ip, "LAYOUT_SIDE", 64)
    monkeypatch.setattr(ip, "LAYOUT_DEPTH", 12.0)
    task, t = _nonzero_head(tiny_cfg)
    model = Model(task, t.G, {}, torch.device("cpu"), tile=0)
    seen = []
    real = model._tiled
    monkeypatch.setattr(model, "_tiled", lambda x, tile, **r: seen.append(x.clone()) or real(x, tile, **r))
    img = torch.rand(1, 3, 96, 128)
    deep = torch.zeros(1, 1, 96, 128)
    deep[..., 20:76, 30:100] = 1  # 28 px deep
    out = model.run_tensor(img, mask=deep, texture=False)
    assert [tuple(x.shape[-2:]) for x in seen] == [(48, 64), (96, 128)]
    hole = deep.expand(1, 3, -1, -1) > 0
    classical = task.prefill(img, deep)
    assert not torch.allclose(seen[1][hole], classical[hole], atol=1e-3)  # the layout, not the classical fill
    assert torch.equal(seen[1][~hole], img[~hole])
    assert torch.equal(out[~hole], img[~hole])
    seen.clear()
    shallow = torch.zeros(1, 1, 96, 128)
    shallow[..., 40:50, 10:120] = 1  # 5 px deep
    model.run_tensor(img, mask=shallow, texture=False)
    assert [tuple(x.shape[-2:]) for x in seen] == [(96, 128)]
    assert torch.equal(seen[0], task.prefill(img, shallow))


def test_hole_content_never_reaches_the_network(tiny_cfg):
    """Whatever the image holds under the mask (damage, an object, a key colour) never reaches
    the network: it sees the hole pre-filled from the known pixels, as in training; a float
    input is not changed in place."""
    task, t = _nonzero_head(tiny_cfg)
    model = Model(task, t.G, {}, torch.device("cpu"), tile=0)
    img = torch.rand(1, 3, 40, 48)
    mask = torch.zeros(1, 1, 40, 48)
    mask[..., 8:30, 10:20] = 1
    holed = img * (1 - mask)
    before = img.clone()
    out = model.run_tensor(img, mask=mask)
    assert torch.equal(img, before)
    assert torch.equal(out, model.run_tensor(holed, mask=mask))
    junk = (torch.rand(1, 3, 40, 48) * 255).round().to(torch.uint8)
    u8 = (img * 255).round().to(torch.uint8)
    a = model.run_tensor(torch.where(mask.bool(), junk, u8), mask=mask)
    assert torch.equal(a, model.run_tensor(u8 * (1 - mask).to(torch.uint8), mask=mask))


def test_cli_missing_mask_file(tmp_path, tiny_inpaint_weights):
    cv2.imwrite(str(tmp_path / "a.png"), smooth_image(np.random.default_rng(6), 32, 32)[:, :, ::-1])
    code, out = run("inpaint", tmp_path / "a.png", "--mask", tmp_path / "nope.png", "--model", tiny_inpaint_weights)
    assert code != 0 and "mask not found" in out


def _psnr_in(a: np.ndarray, b: np.ndarray, hole: np.ndarray) -> float:
    d = a[hole].astype(np.float64) - b[hole].astype(np.float64)
    return float(10 * np.log10(255.0**2 / max((d * d).mean(), 1e-10)))


@pytest.mark.slow
@pytest.mark.skipif("inpaint" not in shipped_models(),
                    reason="no shipped inpaint model")
def test_cli_shipped_model_beats_telea(tmp_path):
    """End to end with the shipped weights (no --model): a generated image, thick brush strokes
    (13% of it, across blob edges: on thin strokes over smooth gradients Telea is near-exact,
    50-60 dB); the fill must be closer to the original than OpenCV Telea's (PSNR, whole image).
    Navier-Stokes is not asserted here: on these synthetic smooth blobs it is the stronger
    method (34.75 vs the shipped model's 34.34 dB); on photos the benchmark has it beaten."""
    img = smooth_image(np.random.default_rng(11), 128, 160)
    hole = Strokes(1, 4, 0.04, 0.1)(128, 160, torch.Generator().manual_seed(1)) > 0.5
    damaged = img.copy()
    damaged[hole] = (255, 0, 255)
    cv2.imwrite(str(tmp_path / "photo.png"), damaged[:, :, ::-1])
    cv2.imwrite(str(tmp_path / "mask.png"), hole.astype(np.uint8) * 255)
    code, out = run("inpaint", tmp_path / "photo.png", "--mask", tmp_path / "mask.png", "-q")
    assert code == 0, out
    ours = read_image(tmp_path / "photo_inpainted.png").pixels
    telea = cv2.inpaint(np.ascontiguousarray(damaged[:, :, ::-1]), hole.astype(np.uint8) * 255, 3,
                        cv2.INPAINT_TELEA)[:, :, ::-1]
    assert np.array_equal(ours[~hole], img[~hole])
    assert _psnr_in(ours, img, np.ones_like(hole)) > _psnr_in(telea, img, np.ones_like(hole))


def _detail(x: torch.Tensor, hole: torch.Tensor) -> float:
    """mean |horizontal + vertical difference| over the hole of (1, 3, H, W)."""
    d = (x[..., 1:, 1:] - x[..., :-1, 1:]).abs() + (x[..., 1:, 1:] - x[..., 1:, :-1]).abs()
    return float(d[0][:, hole[1:, 1:]].mean())


def _striped_wide_hole(tiny_cfg) -> tuple[Model, torch.Tensor, torch.Tensor]:
    """An untrained tiny inpaint model, a (1, 3, 80, 112) striped image, a 32 x 40 px hole."""
    cfg = tiny_cfg("task=inpaint")
    task = get_task("inpaint").from_config(cfg)
    model = Model(task, Trainer(cfg, task, quiet=True).G, {}, torch.device("cpu"), tile=0)
    img = torch.from_numpy(stripes()).permute(2, 0, 1)[None]
    wide = torch.zeros(1, 1, 80, 112)
    wide[..., 24:56, 36:76] = 1
    return model, img, wide


def test_texture_fills_wide_holes_and_spares_thin_strokes(tiny_cfg):
    """A wide hole in a striped image gets the stripes back from the exemplar step: more detail
    and closer to the truth than the network's own fill (request texture=False); a stroke
    narrower than 2 x texture_depth keeps the network's fill; known pixels stay exact."""
    model, img, wide = _striped_wide_hole(tiny_cfg)
    tex, flat = model.run_tensor(img, mask=wide), model.run_tensor(img, mask=wide, texture=False)
    hole = wide[0, 0] > 0
    assert torch.equal(tex[..., ~hole], img[..., ~hole])
    assert _detail(tex, hole) > 2 * _detail(flat, hole)
    assert (tex - img)[..., hole].square().mean() < (flat - img)[..., hole].square().mean()
    thin = torch.zeros(1, 1, 80, 112)
    thin[..., 36:46, 10:100] = 1  # 10 px wide: deepest pixel 5 px from the known ones
    assert torch.equal(model.run_tensor(img, mask=thin), model.run_tensor(img, mask=thin, texture=False))


def test_texture_options_are_checked():
    from vitrestore.config import ConfigError

    with pytest.raises(ConfigError, match="texture_patch"):
        get_task("inpaint")({"texture_patch": 4})
    with pytest.raises(ConfigError, match="texture_depth"):
        get_task("inpaint")({"texture_depth": -1})


def test_cli_no_texture(tmp_path, tiny_inpaint_weights):
    img = (stripes(64, 64) * 255).round().astype(np.uint8)
    cv2.imwrite(str(tmp_path / "a.png"), img[:, :, ::-1])
    hole = np.zeros((64, 64), np.uint8)
    hole[16:48, 16:48] = 255
    cv2.imwrite(str(tmp_path / "m.png"), hole)
    outs = {}
    for flag in ("--texture", "--no-texture"):
        code, out = run("inpaint", tmp_path / "a.png", "--mask", tmp_path / "m.png", flag, "-o", tmp_path / flag[2:],
                        "--model", tiny_inpaint_weights, "-q")
        assert code == 0, out
        outs[flag] = read_image(tmp_path / flag[2:] / "a.png").pixels
        assert np.array_equal(outs[flag][hole == 0], img[hole == 0])
    assert not np.array_equal(outs["--texture"], outs["--no-texture"])


def test_texture_above_the_pixel_cap_runs_at_reduced_size(tiny_cfg, monkeypatch):
    """Above TEXTURE_PIXELS the exemplar runs on a smaller copy and its change is scaled up:
    the hole still gets the stripes' detail, known pixels stay exact."""
    import vitrestore.tasks.inpaint as ip

    monkeypatch.setattr(ip, "TEXTURE_PIXELS", 80 * 112 // 4)  # half size on each side
    seen = []
    real = ip.exemplar_fill
    monkeypatch.setattr(ip, "exemplar_fill", lambda img, hole, **kw: seen.append(tuple(hole.shape)) or real(img, hole, **kw))
    model, img, wide = _striped_wide_hole(tiny_cfg)
    tex, flat = model.run_tensor(img, mask=wide), model.run_tensor(img, mask=wide, texture=False)
    hole = wide[0, 0] > 0
    assert seen == [(40, 56)]
    assert torch.equal(tex[..., ~hole], img[..., ~hole]) and torch.isfinite(tex).all()
    assert _detail(tex, hole) > 1.5 * _detail(flat, hole)
