"""What several commands share: the config options, argument types, and where data is looked for."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from ..core.geometry import ENTRIES

DATA = Path("data")  # training data made by prepare/prepare-video, under the current folder as the recipes expect


def add_config_options(p: argparse.ArgumentParser, config_help: str = "YAML file overlaid on configs/default.yaml",
                       example: str = "detect.threshold=0.4") -> None:
    """--config FILE and --set KEY=VALUE (repeatable, into `args.overrides`): one spelling everywhere."""
    p.add_argument("--config", help=config_help)
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help=f"override one setting, e.g. --set {example} (repeatable)")


def add_models_option(p: argparse.ArgumentParser, what: str = "the models") -> None:
    p.add_argument("--models", help=f"folder with {what} (else $ENHANCE_MODELS, else ~/.insightface/models)")


def data(*parts: str) -> str | None:
    """A path under $ENHANCE_DATA (the data sets' folder) when it is set; commands then need no path."""
    root = os.environ.get("ENHANCE_DATA")
    return str(Path(root, *parts)) if root else None


def add_data_option(p: argparse.ArgumentParser, flag: str, *parts: str, help: str) -> None:
    """An option naming data: required unless $ENHANCE_DATA gives it (`parts` under it)."""
    default = data(*parts)
    p.add_argument(flag, default=default, required=default is None,
                   help=f"{help} (default: $ENHANCE_DATA/{'/'.join(parts)})")


def ints(text: str) -> list[int]:
    try:
        return [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}") from None


def names(text: str) -> list[str]:
    return [v.strip() for v in text.split(",") if v.strip()]


def check_entries(values: list[int]) -> list[int]:
    """--entries must be generator entry sizes (one line, as every user error)."""
    from ..core.errors import ConfigError

    bad = [e for e in values if e not in ENTRIES]
    if bad:
        raise ConfigError(f"--entries: {bad} not in {', '.join(map(str, ENTRIES))}")
    return values


def require_extra(module: str, extra: str) -> None:
    """One line naming the pip extra when a command needs a package the default install leaves out."""
    import importlib.util

    from ..core.errors import EnhanceError
    from ..core.models import DISTRIBUTION

    if importlib.util.find_spec(module) is None:
        raise EnhanceError(f"this command needs `{module}`: pip install '{DISTRIBUTION}[{extra}]'")


def set_threads(n: int) -> None:
    """torch's process-wide CPU thread count, for a command that asked for one."""
    if n:
        import torch

        torch.set_num_threads(n)
