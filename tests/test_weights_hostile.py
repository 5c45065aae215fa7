"""A weights file is untrusted input: whatever it declares, a bad one ends in one WeightsError
naming the file and the key, before the network is built (a 2 MB file whose config declares a
huge generator must not allocate it to find out), and the CLI prints that line and exits 2."""
from __future__ import annotations

import json
import struct

import pytest
import torch
from click.testing import CliRunner

import vitrestore.engine.runtime as runtime
from vitrestore.cli import main
from vitrestore.tasks import load_model
from vitrestore.weights import WeightsError, load_weights, save_weights


def _tiny(tiny_weights):
    state, config, card = load_weights(tiny_weights)
    return dict(state), json.loads(json.dumps(config)), card


def craft(tmp_path, tiny_weights, name="w", generator=None, edit=None):
    """The tiny weights with generator config keys replaced and/or their tensors edited."""
    state, config, card = _tiny(tiny_weights)
    config["generator"].update(generator or {})
    if edit:
        edit(state)
    path = tmp_path / f"{name}.safetensors"
    save_weights(path, state, config, card)
    return path


@pytest.fixture
def real_builds(monkeypatch):
    """Counts generators built with real memory (the check builds its own on the meta device)."""
    built = []
    original = runtime.build_generator

    def spy(cfg, *args):
        if torch.empty(0).device.type != "meta":
            built.append(cfg)
        return original(cfg, *args)

    monkeypatch.setattr(runtime, "build_generator", spy)
    return built


@pytest.mark.parametrize("generator, key", [
    ({"dims": [2048, 2048], "heads": [1, 2]}, "encoder.patch_embed.weight"),  # ~0.5 GB if built
    ({"dims": [8192, 8192], "enc_depths": [200, 200], "dec_depths": [200]}, "generator.enc_depths"),
    ({"stem_channels": 4096}, "encoder.stem.0.weight"),
    ({"window": 200}, "generator.window"),  # the config allows it; a 2 MB file's rel_bias can match it
    ({"enc_depths": [1, 2]}, "enc_stages.1.1"),
    ({"upscale": 40}, "generator.upscale"),  # the task sets the scale now; the key's old range still holds
    ({"arch": "no-such-net"}, "generator.arch"),
])
def test_a_config_that_does_not_fit_its_tensors_fails_before_anything_is_built(
        tmp_path, tiny_weights, real_builds, generator, key):
    path = craft(tmp_path, tiny_weights, generator=generator)
    with pytest.raises(WeightsError) as err:
        load_model(path, device="cpu", backend="torch")
    text = str(err.value)
    assert text.startswith(str(path)) and key in text and "\n" not in text, text
    assert real_builds == []


@pytest.mark.parametrize("edit, words", [
    (lambda s: s.update({"head.2.weight": torch.zeros(5, 8, 3, 3)}), ["head.2.weight", "shape"]),
    (lambda s: s.pop("norm.bias"), ["norm.bias", "missing"]),
    (lambda s: s.update({"enc_stages.7.0.extra": torch.zeros(2)}), ["enc_stages.7.0.extra", "not part"]),
    (lambda s: s.update({"norm.weight": s["norm.weight"].to(torch.int32)}), ["norm.weight", "int32"]),
    (lambda s: s.update({"norm.weight": s["norm.weight"].to(torch.bool)}), ["norm.weight", "bool"]),
    (lambda s: s["norm.weight"].__setitem__(0, float("nan")), ["norm.weight", "NaN"]),
    (lambda s: s["head.0.bias"].__setitem__(0, float("inf")), ["head.0.bias", "infinite"]),
])
def test_tensors_that_do_not_fit_fail_naming_the_key(tmp_path, tiny_weights, real_builds, edit, words):
    path = craft(tmp_path, tiny_weights, edit=edit)
    with pytest.raises(WeightsError) as err:
        load_model(path, device="cpu", backend="torch")
    text = str(err.value)
    assert text.startswith(str(path)) and all(w in text for w in words) and "\n" not in text, text
    assert real_builds == []


def _with_header(raw: bytes, change) -> bytes:
    n = struct.unpack("<Q", raw[:8])[0]
    header = json.loads(raw[8 : 8 + n])
    change(header)
    text = json.dumps(header).encode()
    text += b" " * (-len(text) % 8)
    return struct.pack("<Q", len(text)) + text + raw[8 + n :]


def _first_tensor(header: dict) -> dict:
    return header[next(k for k in header if k != "__metadata__")]


@pytest.mark.parametrize("damage", [
    lambda raw: raw[: len(raw) // 2],  # truncated
    lambda raw: struct.pack("<Q", 10**12) + raw[8:],  # a header length beyond the file
    lambda raw: _with_header(raw, lambda h: _first_tensor(h).update(shape=[10**6, 10**6])),
    lambda raw: _with_header(raw, lambda h: _first_tensor(h).update(data_offsets=[0, 10**12])),
    lambda raw: b"",
])
def test_a_header_claiming_more_than_the_file_holds_is_one_line(tmp_path, tiny_weights, damage):
    path = tmp_path / "bad.safetensors"
    path.write_bytes(damage(tiny_weights.read_bytes()))
    with pytest.raises(WeightsError) as err:
        load_model(path, device="cpu", backend="torch")
    assert str(err.value).startswith(str(path)) and "\n" not in str(err.value)


def test_the_cli_prints_the_one_line_and_exits_2(tmp_path, tiny_weights):
    path = craft(tmp_path, tiny_weights, generator={"dims": [2048, 2048], "heads": [1, 2]})
    res = CliRunner().invoke(main, ["restore", str(tmp_path / "x.png"), "--weights", str(path)],
                             catch_exceptions=False)
    lines = res.stderr.strip().splitlines()
    assert res.exit_code == 2 and len(lines) == 1 and lines[0].startswith(f"error: {path}"), res.stderr


def test_a_sound_file_still_loads_and_the_check_is_cheap(tiny_weights):
    """The check costs milliseconds per start (no meta-device operator is run, only modules made)."""
    import time

    from vitrestore.weights import split_task_state

    model = load_model(tiny_weights, device="cpu", backend="torch")
    state = split_task_state(_tiny(tiny_weights)[0])[0]
    start = time.perf_counter()
    runtime.check_generator_tensors(tiny_weights, model.generator.cfg, state, model.generator.cond_channels,
                                    model.generator.scale)
    assert time.perf_counter() - start < 0.5
