"""native/ has no import cycle: the profiles share native/common.py, never each other.

Every import counts, also one inside a function (the usual way a cycle is hidden). The
command line still works through `python -m native`.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = "native"


def native_imports(source: str, modules: set[str]) -> set[str]:
    """The modules of native/ that `source` imports (names in `modules`, e.g. "stack")."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            for alias in node.names:
                parts = alias.name.split(".")
                if parts[0] == PACKAGE and len(parts) > 1:
                    found.add(parts[1])
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # from . import x, from .x import y (inside native/)
                parts = [PACKAGE, *node.module.split(".")] if node.module else [PACKAGE]
            else:
                parts = (node.module or "").split(".")
            if parts[0] != PACKAGE:
                continue
            if len(parts) > 1:
                found.add(parts[1])
            else:  # from native import stack, scale
                found.update(alias.name for alias in node.names if alias.name in modules)
    return found & modules


def import_graph(directory: Path) -> dict[str, set[str]]:
    modules = {path.stem for path in directory.glob("*.py")}
    return {path.stem: native_imports(path.read_text(), modules) - {path.stem}
            for path in sorted(directory.glob("*.py"))}


def find_cycle(graph: dict[str, set[str]]) -> list[str]:
    """One import cycle as a path (["stack", "scale", "stack"]), or [] when there is none."""
    done: set[str] = set()

    def visit(module: str, path: list[str]) -> list[str]:
        if module in path:
            return [*path[path.index(module):], module]
        if module in done:
            return []
        for imported in sorted(graph.get(module, ())):
            cycle = visit(imported, [*path, module])
            if cycle:
                return cycle
        done.add(module)
        return []

    for module in sorted(graph):
        cycle = visit(module, [])
        if cycle:
            return cycle
    return []


def test_native_has_no_import_cycle() -> None:
    graph = import_graph(ROOT / PACKAGE)
    assert {"common", "stack", "scale", "deps", "cli"} <= set(graph), graph
    cycle = find_cycle(graph)
    assert not cycle, f"import cycle in native/: {' -> '.join(cycle)}"


def test_the_profiles_depend_on_common_not_on_each_other() -> None:
    graph = import_graph(ROOT / PACKAGE)
    assert graph["common"] == set(), "native/common.py imports nothing of native/"
    assert "common" in graph["stack"] and "common" in graph["scale"]
    assert "stack" not in graph["scale"] and "scale" not in graph["stack"]
    assert graph["deps"] == {"common"}


def test_the_check_sees_every_kind_of_import() -> None:
    """The cycles this test was written for, in the forms they took (function-level
    `from native import scale`, `from native.stack import NativeError`)."""
    modules = {"stack", "scale", "deps"}
    stack = "from native import deps\ndef main():\n    from native import scale\n"
    scale = "from native import stack\nfrom native.stack import HOST\n"
    deps = "def run():\n    from native.stack import NativeError\n"
    graph = {"stack": native_imports(stack, modules), "scale": native_imports(scale, modules),
             "deps": native_imports(deps, modules)}
    assert graph == {"stack": {"deps", "scale"}, "scale": {"stack"}, "deps": {"stack"}}
    assert find_cycle(graph) == ["deps", "stack", "deps"]
    assert native_imports("import native.scale\nfrom . import stack\nfrom .deps import x\n",
                          modules) == {"scale", "stack", "deps"}
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": set()}) == []


def test_the_command_line_still_answers() -> None:
    for verb in ("up", "down", "status"):
        out = subprocess.run([sys.executable, "-m", PACKAGE, verb, "--help"], cwd=ROOT,
                             capture_output=True, text=True, timeout=60)
        assert out.returncode == 0, out.stderr
        assert f"python -m native {verb}" in out.stdout
    assert "--profile {scale}" in subprocess.run(
        [sys.executable, "-m", PACKAGE, "up", "--help"], cwd=ROOT, capture_output=True,
        text=True, timeout=60).stdout
