import pytest

from vitrestore.config import ConfigError, load_config


def write(tmp_path, name, text):
    p = tmp_path / name
    p.write_text(text)
    return p


def test_unknown_key_names_key_and_file(tmp_path):
    p = write(tmp_path, "bad.yaml", "task: denoise\ntrain:\n  stpes: 10\n")
    with pytest.raises(ConfigError) as e:
        load_config(p)
    assert "train.stpes" in str(e.value) and str(p) in str(e.value)


def test_wrong_type_is_an_error(tmp_path):
    p = write(tmp_path, "bad.yaml", "train:\n  steps: many\n")
    with pytest.raises(ConfigError, match="train.steps"):
        load_config(p)


def test_base_composition_and_overrides(tmp_path):
    write(tmp_path, "base.yaml", "generator:\n  window: 4\ntrain:\n  lr: 0.1\n  steps: 5\n")
    p = write(tmp_path, "child.yaml", "base: base.yaml\ntrain:\n  steps: 7\n")
    cfg = load_config(p, ["train.lr=0.5", "generator.dims=[4, 8]", "generator.heads=[1, 2]",
                          "generator.enc_depths=[1, 1]", "generator.dec_depths=[1]", "data.train=/x"])
    assert cfg.train.steps == 7 and cfg.train.lr == 0.5 and cfg.generator.window == 4
    assert cfg.generator.dims == (4, 8) and cfg.data.train == ("/x",)
    assert cfg.source == str(p)


def test_bad_override(tmp_path):
    p = write(tmp_path, "c.yaml", "task: denoise\n")
    with pytest.raises(ConfigError, match="train.nope"):
        load_config(p, ["train.nope=1"])
    with pytest.raises(ConfigError, match="key=value"):
        load_config(p, ["train.steps"])


def test_missing_file_and_bad_yaml(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "nope.yaml")
    p = write(tmp_path, "broken.yaml", "train: [1,\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(p)


def test_task_options_are_validated(tmp_path):
    from vitrestore.tasks import get_task

    cfg = load_config(write(tmp_path, "t.yaml", "task: denoise\ntask_options:\n  sigma_maxx: 3\n"))
    with pytest.raises(ConfigError, match="task_options.sigma_maxx"):
        get_task(cfg.task).from_config(cfg)


def test_shipped_configs_load():
    from pathlib import Path

    for p in sorted((Path(__file__).parent.parent / "configs").glob("*.yaml")):
        load_config(p)


def test_diffaugment_typos_fail_when_the_config_loads_not_hours_later(tmp_path):
    from vitrestore.augment import AUGMENTS
    from vitrestore.config import DIFFAUGMENT_OPS

    assert set(DIFFAUGMENT_OPS) == set(AUGMENTS)
    cfg = tmp_path / "c.yaml"
    cfg.write_text("loss:\n  diffaugment: translation,cutuot\n")
    with pytest.raises((ValueError, ConfigError), match="loss.diffaugment: unknown op 'cutuot'"):
        load_config(str(cfg))
    assert load_config(raw={"loss": {"diffaugment": ""}}).loss.diffaugment == ""
    assert load_config(raw={"train": {"lr_adversarial": 0.5}}).train.lr_adversarial == 0.5


@pytest.mark.parametrize("override, key", [
    ("loss.pixel=L1", "loss.pixel"),
    ("loss.adversarial=hinged", "loss.adversarial"),
    ("loss.lpips_net=resnet", "loss.lpips_net"),
    ("generator.patch_stride=3", "generator.patch_stride"),
    ("generator.token_upsample=nearest", "generator.token_upsample"),
    ("train.precision=true", "train.precision"),
])
def test_closed_choices_are_checked_when_the_config_loads(tmp_path, override, key):
    p = write(tmp_path, "run.yaml", "task: denoise\n")
    with pytest.raises(ConfigError) as e:
        load_config(p, [override])
    msg = str(e.value)
    assert msg.startswith(f"{p}: {key}: must be one of ") and "\n" not in msg


def test_closed_choices_keep_their_type():
    cfg = load_config(raw={"generator": {"patch_stride": 4}, "loss": {"pixel": "l1"}})
    assert cfg.generator.patch_stride == 4 and cfg.loss.pixel == "l1"


def test_defaults_live_in_the_dataclasses_only():
    """No config restates a default by extending a defaults file: the dataclasses are the one place."""
    from pathlib import Path

    configs = Path(__file__).resolve().parent.parent / "configs"
    assert not (configs / "base.yaml").exists()
