"""Config: defaults → YAML → --set, and every bad key or value named in one line."""

import pytest

from pipeline.config import load_config
from pipeline.errors import ConfigError


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
