"""Config: defaults → YAML → --set, and every bad key or value named in one line."""

from pathlib import Path

import pytest

from pipeline.core.config import load_config
from pipeline.core.errors import ConfigError


def test_defaults_load_and_overrides_apply(tmp_path):
    user = tmp_path / "user.yaml"
    user.write_text("detect:\n  threshold: 0.3\nenhance:\n  policy: every_n\n")
    cfg = load_config(user, ["detect.stride=3", "align.entries=[16, 32]", "output.video=false"])
    assert cfg.detect.threshold == 0.3
    assert cfg.detect.stride == 3
    assert cfg.enhance.policy == "every_n"
    assert cfg.align.entries == [16, 32]
    assert cfg.output.video is False
    assert cfg.detect.model == "det_500m.onnx"  # untouched default


def test_mirror_takes_entries_or_a_switch():
    """`enhance.mirror`: the small faces' entries by default; a list of entries, or true (all) / false (none), as
    settings saved before it took entries said."""
    assert load_config(None).enhance.mirror == [16, 32]
    assert load_config(None, ["enhance.mirror=[64]"]).enhance.mirror == [64]
    assert load_config(None, ["enhance.mirror=false"]).enhance.mirror is False
    assert load_config(None, ["enhance.mirror=true"]).enhance.mirror is True


def test_exponents_without_a_dot_are_numbers(tmp_path):
    """YAML 1.1 reads `5e-1` as a string; a number field takes it as the number everyone means."""
    user = tmp_path / "user.yaml"
    user.write_text("detect:\n  threshold: 3e-1\n")
    assert load_config(user).detect.threshold == 0.3
    assert load_config(None, ["detect.threshold=4e-1"]).detect.threshold == 0.4
    with pytest.raises(ConfigError, match="detect.threshold: .*not a finite number"):
        load_config(None, ["detect.threshold=nan"])


@pytest.mark.parametrize(
    "override, needle",
    [
        ("detect.treshold=0.3", "detect.treshold"),  # typo'd key
        ("nosuch.key=1", "nosuch"),
        ("detect.threshold=high", "detect.threshold"),  # wrong type
        ("detect.threshold=1.5", "out of range"),
        ("detect.stride=0", "detect.stride"),
        ("enhance.policy=fastest", "enhance.policy"),
        ("output.video=maybe", "output.video"),
        ("detect.input_size=650", "multiple of 32"),
        ("align.entries=[16, 48]", "align.entries"),
        ("enhance.mirror=[16, 48]", "enhance.mirror"),
        ("enhance.mirror=16", "enhance.mirror"),
        ("detect", "key=value"),
    ],
)
def test_bad_values_are_named(override, needle):
    with pytest.raises(ConfigError) as e:
        load_config(None, [override])
    assert needle in str(e.value)
    assert "\n" not in str(e.value)


def test_bad_yaml_and_missing_file(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("detect: [threshold: 0.3\n")
    with pytest.raises(ConfigError, match="bad YAML"):
        load_config(bad)
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "nope.yaml")
    scalar = tmp_path / "scalar.yaml"
    scalar.write_text("42\n")
    with pytest.raises(ConfigError, match="mapping"):
        load_config(scalar)


def test_default_yaml_only_documents_the_dataclass_defaults():
    """configs/default.yaml shows the defaults to users; the dataclasses are the one place they are defined."""
    from pipeline.core.config import DEFAULT_CONFIG, Config, read_yaml

    def check(shown: dict, defined: dict, prefix: str) -> None:
        for key, value in shown.items():
            if isinstance(value, dict):
                check(value, defined[key], f"{prefix}{key}.")
            else:
                assert value == defined[key], f"{prefix}{key}"

    check(read_yaml(DEFAULT_CONFIG), Config().to_dict(), "")


def test_saved_settings_rebuild_a_config_with_the_same_loader():
    saved = load_config(None, ["people.threshold=0.7"]).to_dict()
    saved["align"]["entry_margin"] = 0.5  # a key an older version saved, unknown today
    cfg = load_config(None, ["gallery.dedupe=0.95"], saved=saved)
    assert cfg.people.threshold == 0.7 and cfg.gallery.dedupe == 0.95
    with pytest.raises(ConfigError, match="gallery.per_track"):  # one key for it: output.gallery_per_track
        load_config(None, ["gallery.per_track=2"])
    with pytest.raises(ConfigError, match="people.threshold"):
        load_config(None, ["people.threshold=1.5"], saved=saved)


def test_training_configs_load_typed(tmp_path):
    from pathlib import Path

    from pipeline.lab.train.config import load_train_config

    for path in sorted((Path(__file__).resolve().parents[1] / "configs").glob("train*.yaml")):
        cfg = load_train_config(path)
        assert cfg.steps > 0 and len(cfg.entries) == len(cfg.entry_weights), path
    v3 = load_train_config(Path(__file__).resolve().parents[1] / "configs" / "train_v3.yaml")
    assert v3.video.endswith(".npz") and v3.video_p == 0.75 and v3.precision == "bf16"
    bad = tmp_path / "bad.yaml"
    bad.write_text("stepz: 3\n")
    with pytest.raises(ConfigError, match="unknown train config key 'stepz'"):
        load_train_config(bad)
    with pytest.raises(ConfigError, match="degrade.blur_sigma"):
        load_train_config(None, ["degrade.blur_sigma=[1, 2, 3]"])
    assert load_train_config(None, ["degrade.blur_sigma=[0.5, 2]"]).degrade.blur_sigma == (0.5, 2.0)
    v15 = load_train_config(Path(__file__).resolve().parents[1] / "configs" / "train_v15.yaml")
    assert [v15.video_share(e) for e in (16, 32, 64)] == [0.0, 0.85, 0.85] and v3.video_share(16) == 0.75
    with pytest.raises(ConfigError, match="entry_video_p"):
        load_train_config(None, ["entry_video_p=[0.5]"])


def test_cuda_compile_choices_are_the_torch_cuda_backend_s_modes():
    """Every `enhance.cuda_compile` value maps to a torch.compile mode in torch-cuda, and nothing else does."""
    import typing

    from pipeline.core.config import EnhanceConfig
    from pipeline.stages.enhance.backends import CUDA_COMPILE

    assert set(typing.get_args(typing.get_type_hints(EnhanceConfig)["cuda_compile"])) == set(CUDA_COMPILE)
    assert CUDA_COMPILE["off"] is None and all(CUDA_COMPILE[k] for k in CUDA_COMPILE if k != "off")


@pytest.mark.parametrize("text", [
    "a: " + "[" * 100_000 + "]" * 100_000 + "\n",  # flow style
    "a: " + "{b: " * 100_000 + "1" + "}" * 100_000 + "\n",
    "a:\n" + "".join(" " * i + f"k{i}:\n" for i in range(1, 300)) + " " * 300 + "v: 1\n",  # block style
])
def test_deeply_nested_yaml_is_one_line_not_a_recursion_error(tmp_path, text):
    deep = tmp_path / "deep.yaml"
    deep.write_text(text)
    with pytest.raises(ConfigError, match="nested deeper than 64 levels") as e:
        load_config(deep)
    assert "\n" not in str(e.value) and str(deep) in str(e.value)
    with pytest.raises(ConfigError, match="nested deeper"):
        load_config(None, ["detect.stride=" + "[" * 100_000 + "]" * 100_000])


def test_cli_deep_yaml_is_one_line(tmp_path):
    from support.paths import run_cli

    deep = tmp_path / "deep.yaml"
    deep.write_text("a: " + "[" * 100_000 + "]" * 100_000 + "\n")
    proc = run_cli("config", "--config", str(deep))
    err = proc.stderr.strip()
    assert proc.returncode != 0 and len(err.splitlines()) == 1 and "Traceback" not in err and "nested" in err, err


def test_configuration_reference_matches_the_schema():
    """docs/configuration.md is generated from the config schema: a key missing there, or a default that
    differs, fails here (regenerate with `enhance-faces config --reference > docs/configuration.md`)."""
    from pipeline.core.reference import markdown, rows

    page = (Path(__file__).resolve().parents[1] / "docs" / "configuration.md").read_text(encoding="utf-8")
    for row in rows():
        if "key" in row:
            assert f"| `{row['key']}` | {row['type']} | {row['default']} |" in page, row["key"]
    assert page == markdown()
