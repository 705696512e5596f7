"""The package as a user installs it: the real wheel (built here, offline) carries the default config, the
shipped weights and every module, runs from outside the checkout, and declares what the code imports."""

from __future__ import annotations

import ast
import hashlib
import importlib.metadata as md
import os
import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
import tomllib

from pipeline.stages.enhance.generator import DEFAULT_WEIGHTS

ROOT = Path(__file__).resolve().parents[1]
PROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]


def requirement_name(req: str) -> str:
    return re.split(r"[\s<>=!~;\[]", req, maxsplit=1)[0].lower()


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    """`pip wheel` of a copy of the project's files (the checkout stays free of build/ and *.egg-info)."""
    src = tmp_path_factory.mktemp("src")
    for name in ("pyproject.toml", "README.md", "pipeline", "engines", "configs"):
        path = ROOT / name
        if path.is_dir():
            shutil.copytree(path, src / name, ignore=shutil.ignore_patterns("__pycache__", "cache", "*.pyc"))
        else:
            shutil.copy2(path, src / name)
    out = tmp_path_factory.mktemp("wheel")
    proc = subprocess.run([sys.executable, "-m", "pip", "wheel", str(src), "--no-deps", "--no-build-isolation",
                           "--no-index", "-w", str(out)], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    (found,) = out.glob("enhance_faces-*.whl")
    return found


def test_wheel_carries_config_weights_model_card_and_every_module(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    with zipfile.ZipFile(wheel) as z:
        for f in ROOT.glob("configs/*.yaml"):
            assert z.read(f"pipeline/shipped/configs/{f.name}") == f.read_bytes()
        default = DEFAULT_WEIGHTS.name  # the generator a run loads: the one set of weights the wheel ships
        digest = hashlib.sha256(z.read(f"pipeline/shipped/engines/{default}")).hexdigest()
        assert digest == hashlib.sha256((ROOT / "engines" / default).read_bytes()).hexdigest()
        assert [n for n in names if n.endswith(".safetensors")] == [f"pipeline/shipped/engines/{default}"]
        assert "pipeline/shipped/engines/MODEL_CARD.md" in names
        pictures = re.findall(r"\]\((card/[^)]+)\)", (ROOT / "engines" / "MODEL_CARD.md").read_text(encoding="utf-8"))
        assert pictures and all(f"pipeline/shipped/engines/{p}" in names and (ROOT / "engines" / p).is_file()
                                for p in pictures)  # the card's pictures travel with it
        dist = next(n for n in names if n.endswith(".dist-info/METADATA"))
        meta = z.read(dist).decode()
        entry_points = z.read(dist.replace("METADATA", "entry_points.txt")).decode()
    modules = {p.relative_to(ROOT).as_posix() for p in ROOT.glob("pipeline/**/*") if p.suffix in (".py", ".j2")
               and "__pycache__" not in p.parts}
    assert modules - names == set(), "modules missing from the wheel: add their package to pyproject.toml"
    assert not [n for n in names if "/cache/" in n or n.startswith(("tests/", "engines/", "configs/"))]
    assert "Name: enhance-faces" in meta and "enhance-faces = pipeline.cli:entry" in entry_points


def test_wheel_is_small(wheel):
    assert wheel.stat().st_size <= 12 * 2**20


def test_installed_wheel_finds_its_config_and_weights_outside_the_checkout(wheel, tmp_path):
    """A wheel is a zip of what gets installed: unpacked elsewhere, it must not reach back into a checkout."""
    site = tmp_path / "site"
    zipfile.ZipFile(wheel).extractall(site)
    code = ("import json; from pipeline.core import models; from pipeline.core.config import DEFAULT_CONFIG, load_config;"
            "from pipeline.stages.enhance.stage import default_weights;"
            "print(json.dumps([str(models.ENGINES), str(DEFAULT_CONFIG), str(default_weights()), "
            "str(models.cache_dir()), load_config().detect.model]))")
    env = dict(os.environ, PYTHONPATH=str(site), ENHANCE_CACHE=str(tmp_path / "cache"))
    proc = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr
    engines, config, weights, cache, detector = __import__("json").loads(proc.stdout)
    assert Path(engines) == site / "pipeline" / "shipped" / "engines"
    assert Path(config) == site / "pipeline" / "shipped" / "configs" / "default.yaml"
    assert Path(weights).parent == Path(engines) and Path(weights).is_file()
    assert Path(cache) == tmp_path / "cache" and detector == "det_500m.onnx"


@pytest.mark.slow
def test_installed_wheel_runs_the_command_outside_the_checkout(wheel, tmp_path):
    """The unpacked wheel alone (no checkout on the path): `--version` names the shipped generator, the lab
    commands are found through their entry point, and `process` handles a clip."""
    from support.paths import MODELS, VIDEO, require

    clip = VIDEO / "office_fisheye_cctv.mp4"
    require(clip, MODELS)
    site = tmp_path / "site"
    zipfile.ZipFile(wheel).extractall(site)
    env = dict(os.environ, PYTHONPATH=str(site), ENHANCE_CACHE=str(tmp_path / "cache"))

    def cli(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "pipeline", *args], cwd=tmp_path, env=env, capture_output=True,
                              text=True, timeout=600)

    version = cli("--version")
    assert version.returncode == 0, version.stderr
    digest = hashlib.sha256((ROOT / "engines" / DEFAULT_WEIGHTS.name).read_bytes()).hexdigest()
    assert version.stdout.split("\n")[0].startswith("enhance-faces ") and digest in version.stdout
    assert cli("lab", "--help").returncode == 0
    out = tmp_path / "out"
    run = cli("process", str(clip), "--out", str(out), "--models", str(MODELS), "--progress", "off",
              "--set", "source.max_frames=40")
    assert run.returncode == 0, run.stderr
    manifest = __import__("json").loads((out / "manifest.json").read_text())
    assert manifest["status"] == "complete" and Path(manifest["generator"]["path"]).is_relative_to(site)
    assert list((out / "tracks").glob("*/track.json"))


def test_checkout_reads_the_top_level_folders_in_place():
    from pipeline.core import models
    from pipeline.core.config import DEFAULT_CONFIG

    assert models.ENGINES == ROOT / "engines" and DEFAULT_CONFIG == ROOT / "configs" / "default.yaml"


def test_cache_folder_is_the_env_override_else_the_user_cache(monkeypatch, tmp_path):
    from pipeline.core.models import DISTRIBUTION, cache_dir

    monkeypatch.setenv("ENHANCE_CACHE", str(tmp_path / "mine"))
    assert cache_dir() == tmp_path / "mine"
    monkeypatch.delenv("ENHANCE_CACHE")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))  # platformdirs' Linux rule
    if sys.platform.startswith("linux"):
        assert cache_dir() == tmp_path / "xdg" / DISTRIBUTION
    assert ROOT not in cache_dir().parents and Path(sys.prefix) not in cache_dir().parents


# ------------------------------------------------------------------ dependencies


def third_party_imports() -> dict[str, set[str]]:
    """{top-level module: files} for every import in pipeline/ that is neither stdlib nor the package."""
    found: dict[str, set[str]] = {}
    for path in ROOT.glob("pipeline/**/*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and not node.level:
                names = [node.module or ""]
            else:
                continue
            for name in names:
                top = name.split(".")[0]
                if top and top not in sys.stdlib_module_names and top != "pipeline":
                    found.setdefault(top, set()).add(path.relative_to(ROOT).as_posix())
    return found


def test_everything_imported_is_declared():
    declared = {requirement_name(r) for r in PROJECT["dependencies"]}
    for reqs in PROJECT["optional-dependencies"].values():
        declared |= {requirement_name(r) for r in reqs}
    dists = md.packages_distributions()
    missing = {}
    for module, files in third_party_imports().items():
        if module == "tensorrt":  # the [gpu] extra; not installable without CUDA, so not in this environment
            assert "tensorrt" in declared
            continue
        owners = {d.lower() for d in dists.get(module, [])}
        assert owners, f"{module} (imported in {sorted(files)}) is not installed"
        if not owners & declared:
            missing[module] = sorted(owners)
    assert missing == {}, f"imported but not declared: {missing}"


def test_every_runtime_dependency_has_a_floor_and_a_cap():
    for req in PROJECT["dependencies"] + [r for rs in PROJECT["optional-dependencies"].values() for r in rs
                                          if not r.startswith(PROJECT["name"])]:
        if requirement_name(req) in ("pytest", "setuptools"):
            continue
        assert ">=" in req and "<" in req.replace("<=", ""), f"{req}: needs a tested floor and an upper bound"


def test_one_opencv_distribution():
    """insightface and trackers require opencv-python; a second OpenCV wheel would overwrite its cv2/ folder."""
    opencv = sorted({d.metadata["Name"].lower() for d in md.distributions()
                     if (d.metadata["Name"] or "").lower().startswith("opencv")})
    assert opencv == ["opencv-python"], (f"{opencv} installed: pip uninstall them all, then "
                                         "pip install --force-reinstall opencv-python")
    assert "opencv-python" in {requirement_name(r) for r in PROJECT["dependencies"]}
    assert "tensorrt>=10,<12" in PROJECT["optional-dependencies"]["gpu"]
