"""The package's shape: layers that import only downwards, no import circles, the lab beside the product
(never imported by it), a short top level, every command reachable."""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "pipeline"


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports(path: Path, modules: set[str]) -> set[str]:
    """The package's own modules that `path` imports anywhere (top level or inside a function)."""
    name = module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(anchor + ([base] if base else []))
            targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in modules else base for a in node.names]
        else:
            continue
        found |= {t for t in targets if t in modules and t != name}
    return found


def test_no_import_circles():
    files = sorted(PACKAGE.rglob("*.py"))
    modules = {module_name(p) for p in files}
    graph = {module_name(p): imports(p, modules) for p in files}
    circles = []
    state: dict[str, int] = {}

    def visit(m: str, stack: list[str]) -> None:
        state[m] = 1
        for n in sorted(graph[m]):
            if state.get(n) == 1:
                circles.append(stack[stack.index(n):] + [n])
            elif n not in state:
                visit(n, stack + [n])
        state[m] = 2

    for m in sorted(graph):
        if m not in state:
            visit(m, [m])
    assert circles == []


# The product's layers, lowest first: a module imports only from its own layer or lower ones.
LAYERS = ("core", "stages", "io", "report", "catalog", "run", "distributed", "api", "cli")
LAB = "pipeline.lab"  # beside the product: may import any layer, imported by none


def layer(module: str) -> str | None:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else None


def graph() -> dict[str, set[str]]:
    files = sorted(PACKAGE.rglob("*.py"))
    modules = {module_name(p) for p in files}
    return {module_name(p): imports(p, modules) for p in files}


def test_layers_import_only_downwards():
    upward = []
    for m, targets in graph().items():
        if layer(m) not in LAYERS:
            continue
        for t in targets:
            if layer(t) in LAYERS and LAYERS.index(layer(t)) > LAYERS.index(layer(m)):
                upward.append(f"{m} -> {t}")
    assert upward == []


def test_no_product_module_imports_the_lab():
    found = [f"{m} -> {t}" for m, targets in graph().items() if not m.startswith(LAB)
             for t in targets if t.startswith(LAB)]
    assert found == []


def test_top_level_is_short_and_every_folder_is_a_layer():
    entries = [p for p in PACKAGE.iterdir() if p.name != "__pycache__"]
    assert len(entries) <= 12, sorted(p.name for p in entries)
    folders = {p.name for p in entries if p.is_dir()}
    assert folders <= set(LAYERS) | {"lab"}, folders


def help_text(*args: str) -> str:
    proc = subprocess.run([sys.executable, "-m", "pipeline", *args, "--help"], cwd=ROOT, capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


LAB_COMMANDS = ("prepare", "prepare-video", "pack-video", "train", "export", "average", "eval", "eval-video", "probe-track",
                "gpu-run")


def test_help_lists_the_products_commands_and_lab_lists_the_rest():
    product = help_text()
    assert product.startswith("usage: enhance-faces")
    listed = set(re.findall(r"^    ([a-z-]+)", product, re.M))
    assert {"process", "demo", "doctor", "gallery", "config", "bench", "build-engine"} <= listed
    assert not listed & set(LAB_COMMANDS)
    assert set(re.findall(r"^    ([a-z-]+)", help_text("lab"), re.M)) == set(LAB_COMMANDS)


def test_one_spelling_of_set():
    from pipeline.cli import build_parser

    for cmd in (["process", "x.mp4", "--out", "o"], ["demo"], ["gallery", "o"], ["bench"], ["config"],
                ["lab", "train"], ["lab", "eval-video", "c.mp4"]):
        assert build_parser().parse_args([*cmd, "--set", "a.b=1"]).overrides == ["a.b=1"], cmd


def test_no_test_module_imports_another():
    """What tests share lives in tests/support; a test module imports no other test module (or conftest)."""
    found = []
    for path in sorted((ROOT / "tests").glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else \
                [node.module or ""] if isinstance(node, ast.ImportFrom) else []
            found += [f"{path.name} -> {n}" for n in names if n.split(".")[0].startswith("test_") or n == "conftest"]
    assert found == []
