"""`--adapt` (issue 34): the task-agnostic loop (engine/adapt.py) and denoise's objective
(tasks/denoise_adapt.py), through the API and the CLI, on the tiny denoiser and generated images."""
from __future__ import annotations

import hashlib

import cv2
import numpy as np
import pytest
import torch
from click.testing import CliRunner

from conftest import smooth_image
from vitrestore.cli import main
from vitrestore.engine.adapt import AdaptSettings, Sample, adapt, pooled_samples
from vitrestore.tasks import get_task, load_model
from vitrestore.weights import load_weights, shipped_dir

Denoise = get_task("denoise")


def run(*args):
    res = CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)
    return res.exit_code, res.output


def noisy(seed: int, h: int = 64, w: int = 80, sigma: float = 12.0) -> np.ndarray:
    """(H, W, 3) uint8: a generated photo with Gaussian noise, as an 8-bit file holds it."""
    rng = np.random.default_rng(seed)
    clean = smooth_image(rng, h, w).astype(np.float32)
    return np.clip(clean + rng.normal(0, sigma, clean.shape), 0, 255).round().astype(np.uint8)


def sample(a: np.ndarray) -> Sample:
    return Sample(torch.from_numpy(a).permute(2, 0, 1)[None].float() / 255, {})


@pytest.fixture
def fast_lr(monkeypatch):
    """The tiny model learns in a few steps only with a larger step size than the shipped ones'."""
    monkeypatch.setattr(Denoise, "adapt_lr", 2e-3)


@pytest.fixture
def noisy_dir(tmp_path):
    d = tmp_path / "noisy"
    d.mkdir()
    for i in range(3):
        cv2.imwrite(str(d / f"n{i}.png"), noisy(i)[:, :, ::-1])
    return d


def test_the_objective_decreases_on_fixed_pairs(tiny_weights, fast_lr):
    model = load_model(tiny_weights, device="cpu")
    samples = [sample(noisy(i)) for i in range(3)]
    adapted, res = adapt(model, samples, AdaptSettings(steps=40), quiet=True)
    task = model.task
    prepared = task.adapt_prepare(samples, lambda x, **r: model.run_tensor(x, **r))
    batches = [task.adapt_batch(prepared, torch.Generator().manual_seed(7)) for _ in range(6)]

    def objective(gen) -> float:
        with torch.no_grad():
            return sum(float((gen(b.input, b.cond) - b.target).abs().mean()) for b in batches) / len(batches)

    assert objective(res.adapted.generator) < 0.9 * objective(model.generator)
    assert res.steps == 40 and res.images == 3


def test_seeded_runs_are_identical_and_the_base_is_untouched(tiny_weights, fast_lr):
    model = load_model(tiny_weights, device="cpu")
    before = {k: v.clone() for k, v in model.generator.state_dict().items()}
    samples = [sample(noisy(i)) for i in range(2)]
    _, first = adapt(model, samples, AdaptSettings(steps=6, seed=3), quiet=True)
    _, second = adapt(model, samples, AdaptSettings(steps=6, seed=3), quiet=True)
    _, other = adapt(model, samples, AdaptSettings(steps=6, seed=4), quiet=True)
    a, b, c = (r.adapted.generator.state_dict() for r in (first, second, other))
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not all(torch.equal(a[k], c[k]) for k in a)
    assert all(torch.equal(before[k], v) for k, v in model.generator.state_dict().items())


def test_a_noiseless_image_a_tiny_one_and_no_image_each_give_a_reason(tiny_weights):
    model = load_model(tiny_weights, device="cpu")
    clean = smooth_image(np.random.default_rng(0), 64, 80)
    used, res = adapt(model, [sample(clean)], AdaptSettings(steps=2), quiet=True)
    assert used is model and not res.kept and "almost no noise" in res.reason and res.steps == 0
    used, res = adapt(model, [sample(noisy(0, 20, 24))], AdaptSettings(steps=2), quiet=True)
    assert used is model and "too few pixels" in res.reason
    used, res = adapt(model, [sample(noisy(0, 20, 24)), sample(noisy(1))], AdaptSettings(steps=2), quiet=True)
    assert res.steps == 2 and res.images == 2  # the small one is left out, the rest adapt
    used, res = adapt(model, [], AdaptSettings(steps=2), quiet=True)
    assert used is model and "no readable image" in res.reason
    assert "using the base model" in res.line()


def test_the_sample_is_bounded_and_spread_over_the_folder():
    big, small = np.zeros((1200, 900, 3), np.uint8), np.zeros((100, 100, 3), np.uint8)
    read = []

    def load(k):
        read.append(k)
        return torch.from_numpy(big if k < 50 else small).permute(2, 0, 1)[None], {}

    samples = pooled_samples(list(range(100)), load, AdaptSettings(steps=1, max_pixels=4 * 512 * 512))
    assert sum(s.image.shape[-1] * s.image.shape[-2] for s in samples) >= 4 * 512 * 512
    assert all(s.image.shape[-1] <= 512 and s.image.shape[-2] <= 512 for s in samples)
    assert len(read) == len(samples) < 100 and max(read) - min(read) >= 20  # spread, not the first few
    assert samples[0].image.dtype == torch.float32 and samples[0].image.shape[1] == 3
    again = pooled_samples(list(range(100)), load, AdaptSettings(steps=1, max_pixels=4 * 512 * 512))
    assert all(torch.equal(a.image, b.image) for a, b in zip(samples, again))  # a rerun picks the same
    errors = []
    assert pooled_samples(["x"], lambda a: (_ for _ in ()).throw(ValueError("broken")), AdaptSettings(steps=1),
                          on_error=lambda item, why: errors.append(why)) == []
    assert errors == ["broken"]


@pytest.mark.parametrize("budget", ["0", "-5", "nan"])
def test_a_budget_that_cannot_run_is_one_line(noisy_dir, tiny_weights, budget, tmp_path):
    code, out = run("denoise", noisy_dir, "-o", tmp_path / "out", "--model", tiny_weights, "--adapt", budget)
    assert code == 2 and len(out.strip().splitlines()) == 1 and "--adapt" in out
    assert not (tmp_path / "out").exists()


def test_the_saved_copy_loads_and_reproduces_the_outputs(noisy_dir, tiny_weights, tmp_path, fast_lr):
    saved = tmp_path / "mine.safetensors"
    code, out = run("denoise", noisy_dir, "-o", tmp_path / "a", "--model", tiny_weights, "--adapt-steps", "30",
                    "--adapt-save", saved, "-q")
    assert code == 0, out
    assert "using the adapted copy" in out and f"wrote {saved}" in out
    state, config, card = load_weights(saved)
    assert card["adapted"]["steps"] == 30 and card["adapted"]["images"] == 3
    assert len(card["adapted"]["base_digest"]) == 64 and card["adapted"]["base"] == str(tiny_weights)
    code, out = run("denoise", noisy_dir, "-o", tmp_path / "b", "--model", saved, "-q")
    assert code == 0, out
    base_out = tmp_path / "c"
    assert run("denoise", noisy_dir, "-o", base_out, "--model", tiny_weights, "-q")[0] == 0
    for f in sorted((tmp_path / "a").iterdir()):
        assert np.array_equal(cv2.imread(str(f)), cv2.imread(str(tmp_path / "b" / f.name)))
    assert any(not np.array_equal(cv2.imread(str(f)), cv2.imread(str(base_out / f.name)))
               for f in (tmp_path / "a").iterdir())  # the adapted copy is another model


def test_adapt_save_never_replaces_a_file_unasked(noisy_dir, tiny_weights, tmp_path):
    existing = tmp_path / "w.safetensors"
    existing.write_bytes(b"mine")
    code, out = run("denoise", noisy_dir, "-o", tmp_path / "o", "--model", tiny_weights, "--adapt-steps", "2",
                    "--adapt-save", existing)
    assert code == 2 and "exists" in out and existing.read_bytes() == b"mine" and not (tmp_path / "o").exists()
    code, out = run("denoise", noisy_dir, "--model", tiny_weights, "--adapt-steps", "2", "--adapt-save",
                    tmp_path / "w.pt")
    assert code == 2 and ".safetensors" in out
    code, out = run("denoise", noisy_dir, "--model", tiny_weights, "--adapt-save", tmp_path / "x.safetensors")
    assert code == 2 and "needs --adapt" in out


def test_ctrl_c_while_adapting_writes_nothing(noisy_dir, tiny_weights, tmp_path, monkeypatch):
    def interrupted(self, prepared, gen):
        raise KeyboardInterrupt

    monkeypatch.setattr(Denoise, "adapt_batch", interrupted)
    save = tmp_path / "w.safetensors"
    res = CliRunner().invoke(main, ["denoise", str(noisy_dir), "-o", str(tmp_path / "out"), "--model",
                                    str(tiny_weights), "--adapt-steps", "5", "--adapt-save", str(save)])
    assert res.exit_code == 130 and "nothing was written" in res.output
    assert not (tmp_path / "out").exists() and not save.exists()


@pytest.mark.slow
def test_the_shipped_weights_are_never_changed(tmp_path):
    path = shipped_dir() / "denoise.safetensors"
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    img = tmp_path / "n.png"
    cv2.imwrite(str(img), noisy(5, 48, 48, 15)[:, :, ::-1])
    code, out = run("denoise", img, "--adapt-steps", "2", "--adapt-save", tmp_path / "a.safetensors", "-q")
    assert code == 0, out and "adapt: 2 steps" in out
    assert hashlib.sha256(path.read_bytes()).hexdigest() == digest


def test_a_rerun_with_every_output_done_does_not_adapt_again(noisy_dir, tiny_weights, tmp_path):
    out = tmp_path / "out"
    assert run("denoise", noisy_dir, "-o", out, "--model", tiny_weights, "-q")[0] == 0
    code, text = run("denoise", noisy_dir, "-o", out, "--model", tiny_weights, "--adapt-steps", "3", "-q")
    assert code == 0 and "nothing to adapt for" in text and "steps in" not in text


def test_the_denoise_check_stands_aside_where_the_noise_is_correlated(tiny_weights):
    from vitrestore.tasks import denoise_adapt

    model = load_model(tiny_weights, device="cpu")
    samples = [sample(noisy(i)) for i in range(2)]
    p = denoise_adapt.prepare(model.task, samples, lambda x, **r: model.run_tensor(x, **r).cpu())
    assert 1.0 <= p.gain <= denoise_adapt.MAX_GAIN
    net = lambda x, cond: x  # noqa: E731  (the identity: a denoiser that removes nothing)
    p.gain = 1.0
    assert isinstance(denoise_adapt.score(model.task, p, net), float)
    p.gain = denoise_adapt.WHITE_GAIN + 0.1  # Neighbor2Neighbor favours passing correlated noise through
    assert denoise_adapt.score(model.task, p, net) is None


def test_an_all_hole_mask_is_one_line_and_nothing_is_adapted(tmp_path, tiny_inpaint_weights):
    photo, mask = tmp_path / "p.png", tmp_path / "m.png"
    cv2.imwrite(str(photo), noisy(3)[:, :, ::-1])
    cv2.imwrite(str(mask), np.full((64, 80), 255, np.uint8))
    code, out = run("inpaint", photo, "--mask", mask, "--model", tiny_inpaint_weights, "--adapt-steps", "3",
                    "-o", tmp_path / "o.png", "-q")
    lines = [ln for ln in out.splitlines() if ln.startswith("adapt:")]
    assert code == 1 and len(lines) == 1 and "covers the whole image" in lines[0] and "base model" in lines[0]
    assert not (tmp_path / "o.png").exists()


def test_the_python_api_adapts_arrays_and_leaves_the_model_alone(tiny_weights, fast_lr):
    model = load_model(tiny_weights, device="cpu")
    photos = [noisy(i) for i in range(2)]
    adapted, res = model.adapted(photos, steps=20)
    assert res.steps == 20 and res.images == 2 and adapted is (res.adapted if res.kept else model)
    out = res.adapted(photos[0])
    assert out.shape == photos[0].shape and out.dtype == np.uint8
    assert not np.array_equal(out, model(photos[0]))  # the copy is another model; the base unchanged
    with pytest.raises(ValueError, match="--adapt"):
        model.adapted(photos, seconds=0)
    with pytest.raises(ValueError, match="unknown option"):
        model.adapted(photos, steps=2, sigmaa=5)
