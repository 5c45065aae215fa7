"""Style transfer: shapes and dtypes kept, strength 0 returns the photo, tiles agree with the
whole image, the discriminator learns the painting, the statistics losses move patch
statistics toward it, and bad styles are clear errors before any work."""
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from click.testing import CliRunner

from vitrestore.cli import main
from vitrestore.config import ConfigError
from vitrestore.data import ImageBank, list_images
from vitrestore.engine.train import Trainer
from vitrestore.metrics import patch_swd
from vitrestore.tasks import get_task, load_model
from vitrestore.engine.runtime import Model

from conftest import smooth_image


def painting(path: Path) -> Path:
    """A generated 'painting': saturated diagonal stripes with a blue-orange palette."""
    yy, xx = np.mgrid[0:96, 0:128]
    stripes = ((xx + yy) // 6) % 2
    img = np.where(stripes[..., None] == 1, [30, 60, 200], [240, 150, 20]).astype(np.uint8)  # RGB
    cv2.imwrite(str(path), img[:, :, ::-1].copy())
    return path


STYLE = ["task=stylize", "generator.patch_stride=4", "discriminator.patch=8", "loss.adversarial=nonsaturating",
         "loss.feature_matching_weight=0", "loss.diffaugment=crop", "train.steps=0", "train.adversarial_steps=10",
         "task_options.style_sides=[32,64]"]


@pytest.fixture
def style_cfg(tiny_cfg, tmp_path):
    def make(*more):
        return tiny_cfg(*STYLE, f"task_options.style_image={painting(tmp_path / 'stripes.png')}", *more)
    return make


def test_trainer_and_model_keep_shape_dtype_and_strength_zero_is_the_photo(style_cfg):
    cfg = style_cfg()
    task = get_task("stylize").from_config(cfg)
    t = Trainer(cfg, task, quiet=True)
    for _ in range(3):  # move the weights off the identity
        t.train_step(ImageBank([Path(cfg.task_options["style_image"])], min_size=32))
    model = Model(task, t.G, {}, torch.device("cpu"), tile=0)
    rgb = smooth_image(np.random.default_rng(1), 45, 61)
    out = model.run_arrays([rgb])[0]
    assert out.shape == rgb.shape and out.dtype == np.uint8
    assert not np.array_equal(out, rgb)
    assert np.array_equal(model.run_arrays([rgb], strength=0.0)[0], rgb)
    half = model.run_arrays([rgb], strength=0.5)[0].astype(int)
    assert np.abs(half - (rgb.astype(int) + out.astype(int)) / 2).max() <= 1.0
    deep = (rgb.astype(np.uint16) * 257)
    out16 = model.run_arrays([deep])[0]
    assert out16.dtype == np.uint16 and out16.shape == deep.shape
    with pytest.raises(ValueError, match="strength"):
        model.run_arrays([rgb], strength=1.5)


@pytest.mark.parametrize("noise,strokes", [(False, 0), (True, 0), (True, 6)])
def test_tiles_agree_with_the_whole_image(style_cfg, noise, strokes):
    """Tiles and the whole image agree, also with the noise channel (drawn once for the whole
    image, so each tile sees its own part of the same map), plain or smeared into strokes."""
    cfg = style_cfg(f"task_options.noise={str(noise).lower()}", f"task_options.stroke_length={strokes}")
    task = get_task("stylize").from_config(cfg)
    t = Trainer(cfg, task, quiet=True)
    for _ in range(3):
        t.train_step(ImageBank([Path(cfg.task_options["style_image"])], min_size=32))
    if noise:  # make the few-step network lean on its noise channel, so a wrong map would show
        with torch.no_grad():
            t.G.encoder.stem[0].weight[:, 3] *= 50
    rgb = smooth_image(np.random.default_rng(2), 150, 170)
    whole = Model(task, t.G, {}, torch.device("cpu"), tile=0).run_arrays([rgb])[0].astype(int)
    tiled = Model(task, t.G, {}, torch.device("cpu"), tile=96, overlap=32).run_arrays([rgb])[0].astype(int)
    assert np.abs(whole - tiled).mean() < 1.5
    if noise:  # the same photo twice: the same picture (seeded noise)
        again = Model(task, t.G, {}, torch.device("cpu"), tile=0).run_arrays([rgb])[0].astype(int)
        assert np.array_equal(whole, again)
        assert t.G.cond_channels == 1
        # the noise map is a declared map of the request: given, it is cut per tile like a mask
        photo = torch.from_numpy(rgb).permute(2, 0, 1)[None].float() / 255
        given = Model(task, t.G, {}, torch.device("cpu"), tile=96, overlap=32).run_arrays(
            [rgb], noise=task.noise_map(photo))[0].astype(int)
        assert np.array_equal(given, tiled)


def _trained(style_cfg, image_dir, *overrides):
    cfg = style_cfg("train.adversarial_steps=60", "train.lr=4e-3", "train.lr_d=5e-4", "train.warmup=1",
                    "data.crop=32", *overrides)
    task = get_task("stylize").from_config(cfg)
    t = Trainer(cfg, task, quiet=True)
    bank = ImageBank(list_images(image_dir), min_size=32)
    for _ in range(60):
        t.train_step(bank)
    gen = torch.Generator().manual_seed(5)
    photos, style = bank.sample(gen, 8, 32), task.style_crops(8, 32, gen)
    with torch.no_grad():
        out = t.G(task.prepare(photos)).clamp(0, 1)  # the network's input: colour-matched photos
    return t, photos, style, out, task


@pytest.mark.slow
def test_discriminator_learns_the_painting_from_photos(style_cfg, image_dir):
    """GAN and content losses alone: after 60 tiny steps the discriminator scores painting
    crops above photos. (It still scores the stylised photos below the photos at this size:
    the generator's side of the game needs far more steps; see the issue notes.)"""
    t, photos, style, out, _ = _trained(style_cfg, image_dir, "loss.adversarial_weight=1.0",
                                     "task_options.color_weight=0", "task_options.texture_weight=0")
    with torch.no_grad():
        score = {name: float(t.D(x[:, :0], x)[0].mean()) for name, x in
                 (("style", style), ("photo", photos), ("out", out))}
    assert score["style"] > score["photo"] + 0.2
    assert not torch.equal(out, photos.clamp(0, 1))  # the generator moved off the identity


@pytest.mark.slow
@pytest.mark.parametrize("texture", [[], ["task_options.texture_bands=true", "task_options.texture_patch=5"]])
def test_statistics_losses_move_patch_statistics_toward_the_painting(style_cfg, image_dir, texture):
    _, photos, style, out, task = _trained(style_cfg, image_dir, "loss.adversarial_weight=0", *texture)
    matched = task.prepare(photos)  # the network's input: the photos matched to the painting's colours
    assert patch_swd(out, style, size=3, scales=2) < 0.9 * patch_swd(matched, style, size=3, scales=2)
    assert patch_swd(out, style, size=3, scales=2) < patch_swd(photos, style, size=3, scales=2)


def test_band_texture_sees_strokes_not_colour(style_cfg):
    """Band-pass texture patches carry no flat colour (a uniform image is all zeros), so the
    texture loss tells a colour-matched smooth photo from a piece of the painting (as painted:
    the pool is not turned, unlike the discriminator's crops)."""
    from vitrestore.tasks.style_transfer import texture_view

    flat = torch.full((1, 3, 32, 32), 0.4)
    assert texture_view(flat, 2, bands=True).abs().max() < 1e-6
    assert torch.equal(texture_view(flat, 1, bands=False), flat)
    cfg = style_cfg("task_options.texture_bands=true", "task_options.texture_patch=5", "task_options.style_sides=[96,96]")
    task = get_task("stylize").from_config(cfg)
    gen = torch.Generator().manual_seed(0)
    photos = torch.from_numpy(smooth_image(np.random.default_rng(6), 64, 64)).permute(2, 0, 1)[None].float() / 255
    batch = task.degrade(photos.repeat(4, 1, 1, 1), gen)
    logs = {name: task.generator_losses(x, batch, gen)[1]["texture_swd"]
            for name, x in (("matched", batch.input), ("painting", task.style_pyramid[0][..., :64, :64].repeat(4, 1, 1, 1)))}
    assert logs["painting"] < 0.5 * logs["matched"]


def test_colour_matching_follows_the_painting_and_travels_in_the_weights(style_cfg, tmp_path):
    """The photo is matched to the painting's colour quantiles before the network; the
    quantiles are saved in the weights file, so a model runs without the painting."""
    from vitrestore.tasks.style_transfer import channel_quantiles, match_histograms

    rgb = torch.from_numpy(smooth_image(np.random.default_rng(4), 64, 80)).permute(2, 0, 1)[None].float() / 255
    q = torch.linspace(0.2, 0.6, 256).repeat(3, 1)  # a reference spread evenly over [0.2, 0.6]
    got = channel_quantiles(match_histograms(rgb, q))
    assert (got - q).abs().max() < 0.03
    order = rgb.flatten(2).argsort(-1)  # matching keeps each channel's order of values
    assert (match_histograms(rgb, q).flatten(2).gather(-1, order).diff(dim=-1) >= 0).all()
    cfg = style_cfg("train.adversarial_steps=1", f"train.out={tmp_path / 'run'}")
    t = Trainer(cfg, get_task("stylize").from_config(cfg), quiet=True)
    t.save()
    Path(cfg.task_options["style_image"]).unlink()  # the painting is gone
    model = load_model(tmp_path / "run" / "weights.safetensors", device="cpu")
    assert torch.allclose(model.task.palette, t.task.palette)


def test_missing_or_unreadable_style_image_fails_before_training(tiny_cfg, tmp_path):
    cfg = tiny_cfg(*STYLE, f"task_options.style_image={tmp_path / 'nope.jpg'}")
    with pytest.raises(ConfigError, match="style image not found"):
        Trainer(cfg, get_task("stylize").from_config(cfg), quiet=True)
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(b"not a jpeg at all")
    cfg = tiny_cfg(*STYLE, f"task_options.style_image={bad}")
    with pytest.raises(ConfigError, match="bad.jpg"):
        Trainer(cfg, get_task("stylize").from_config(cfg), quiet=True)
    cfg = tiny_cfg(*STYLE)
    with pytest.raises(ConfigError, match="style_image is not set"):
        Trainer(cfg, get_task("stylize").from_config(cfg), quiet=True)


@pytest.mark.parametrize("bad,message", [("task_options.content_sigma=0", "content_sigma"),
                                         ("task_options.stroke_length=-1", "stroke_length"),
                                         ("task_options.stroke_width=0", "stroke_width")])
def test_bad_stroke_and_content_options_fail_before_training(style_cfg, bad, message):
    cfg = style_cfg(bad)
    with pytest.raises(ConfigError, match=message):
        Trainer(cfg, get_task("stylize").from_config(cfg), quiet=True)


@pytest.mark.slow
def test_cli_trains_a_style_and_applies_it_with_strength(style_cfg, image_dir, tmp_path, tiny_weights):
    cfg_file = tmp_path / "style.yaml"
    import yaml

    from vitrestore.config import config_to_dict
    cfg = style_cfg("train.adversarial_steps=4", f"train.out={tmp_path / 'run'}")
    cfg_file.write_text(yaml.safe_dump(config_to_dict(cfg)))
    runner = CliRunner()
    res = runner.invoke(main, ["train", str(cfg_file), "-q"], catch_exceptions=False)
    assert res.exit_code == 0, res.output
    weights = tmp_path / "run" / "weights.safetensors"
    photo = tmp_path / "photo.png"
    cv2.imwrite(str(photo), smooth_image(np.random.default_rng(3), 40, 56)[:, :, ::-1].copy())
    res = runner.invoke(main, ["stylize", str(photo), "--style", str(weights), "--strength", "0", "-q"])
    assert res.exit_code == 0, res.output
    out = tmp_path / "photo_stripes.png"  # suffix: the painting's name
    assert np.array_equal(cv2.imread(str(out)), cv2.imread(str(photo)))
    # bad styles: an image instead of a model, an unknown name, a model of another task
    res = runner.invoke(main, ["stylize", str(photo), "--style", str(tmp_path / "stripes.png")])
    assert res.exit_code == 2 and "is an image, not a style model" in res.output
    res = runner.invoke(main, ["stylize", str(photo), "--style", "no-such-style"])
    assert res.exit_code == 2 and "unknown model 'style-no-such-style'" in res.output
    res = runner.invoke(main, ["stylize", str(photo), "--style", str(tiny_weights)])
    assert res.exit_code == 2 and "not a style model" in res.output
    res = runner.invoke(main, ["stylize", str(photo), "--style", str(weights), "--strength", "2"])
    assert res.exit_code == 2


@pytest.mark.slow  # shipped models
@pytest.mark.parametrize("style", ["starry-night", "the-scream", "kandinsky"])
def test_cli_shipped_styles_by_name(style, tmp_path):
    """`--style NAME` finds the shipped style-NAME model: photo_NAME.jpg, same size, restyled
    (nearer the painting's palette than the photo: the mean colour moves), strength 0 = photo."""
    from vitrestore.weights import shipped_models

    if f"style-{style}" not in shipped_models():
        pytest.skip(f"style-{style} not shipped")
    rgb = smooth_image(np.random.default_rng(4), 96, 128)
    cv2.imwrite(str(tmp_path / "photo.png"), rgb[:, :, ::-1].copy())
    res = CliRunner().invoke(main, ["stylize", str(tmp_path / "photo.png"), "--style", style, "-q"])
    assert res.exit_code == 0, res.output
    out = cv2.imread(str(tmp_path / f"photo_{style}.png"))[:, :, ::-1]
    assert out.shape == rgb.shape
    assert np.abs(out.astype(float).mean((0, 1)) - rgb.astype(float).mean((0, 1))).max() > 5
    res = CliRunner().invoke(main, ["stylize", str(tmp_path / "photo.png"), "--style", style, "--strength", "0",
                                    "-o", str(tmp_path / "same.png"), "-q"])
    assert res.exit_code == 0, res.output
    assert np.array_equal(cv2.imread(str(tmp_path / "same.png"))[:, :, ::-1], rgb)


def test_a_clips_stroke_noise_moves_with_the_picture(style_cfg):
    """On a clip (Task.clip_request with vitrestore/motion.py's track) the stroke noise is fixed to
    the picture: a frame panned 4 px gets the first frame's noise panned 4 px, where a photo's
    seeded map would stay put on the screen."""
    import cv2

    from vitrestore.motion import PixelTrack

    task = get_task("stylize").from_config(style_cfg("task_options.noise=true", "task_options.stroke_length=6"))
    assert task.tracks_pixels
    big = smooth_image(np.random.default_rng(3), 80, 140)
    frames = [np.ascontiguousarray(cv2.warpAffine(big, np.float32([[1, 0, s], [0, 1, 0]]), (140, 80))[:, 20:120])
              for s in (0, 4)]
    track = PixelTrack()
    maps = [task.clip_request(f, track(f))["noise"][0, 0].numpy() for f in frames]  # (H, W) each
    inner = (slice(10, -10), slice(15, -15))
    moved = np.roll(maps[0], 4, axis=1)  # the first frame's noise where the picture went
    assert np.corrcoef(maps[1][inner].ravel(), moved[inner].ravel())[0, 1] > 0.8
    assert np.corrcoef(maps[1][inner].ravel(), maps[0][inner].ravel())[0, 1] < 0.5  # not fixed to the screen
    plain = get_task("stylize").from_config(style_cfg())
    assert not plain.tracks_pixels and plain.clip_request(frames[0], track.coords) == {}
