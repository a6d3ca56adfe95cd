"""The shape of the code, checked: the core's layers and import graph, the backend interface, imports without
effects on the process, and the size limits a reader relies on (docs/core.md, "Layout")."""

from __future__ import annotations

import ast
import dataclasses
import importlib
import inspect
import os
import subprocess
import sys
from pathlib import Path

import pytest

from core.backends.base import Backend, DataParallelMechanics

REPO = Path(__file__).resolve().parents[1]

# The core's layers, bottom first: a module imports only from lower layers, or from its own layer without a cycle.
LAYERS = [
    ["core.errors"],
    ["core._quiet", "core.transforms", "core.run_log", "core.config"],
    ["core.backends.base", "core.backends.tensorflow", "core.backends.jax", "core.backends"],
    ["core.checkpoint", "core.export", "core.media", "core.averaging", "core.envs", "core.seeding", "core.startup",
     "core.device", "core.ops", "core.parallel"],
    ["core.step", "core.runs"],
    ["core.forward", "core.symbolic", "core.lifecycle", "core.population"],
    ["core.cli", "core.launch"],
    ["core"],
]  # fmt: skip
PROGRAMS = ["sum", "gan_2d", "gan_images", "ppo", "reinforce_mc"]
COMMANDS = ["sum", "gan", "gan_2d", "gan_images", "reinforce", "ppo", "reinforce_mc"]
RUN_FLAGS = {"seed", "out", "resume", "mode"}  # every command's shared flags (core.RunConfig), besides --verbose


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(REPO).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _layer(module: str) -> int:
    for i, names in enumerate(LAYERS):
        if any(module == n or (n == "core.envs" and module.startswith("core.envs.")) for n in names):
            return i
    raise AssertionError(f"{module} is in no layer of tests/test_layout.py's LAYERS: place it")


def _imports(path: Path) -> set[str]:
    """The core modules ``path`` imports, at module level or inside functions."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        names = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
        for name in names:
            is_module = (REPO / (name.replace(".", "/") + ".py")).exists() or (REPO / name.replace(".", "/")).is_dir()
            if name.split(".")[0] == "core" and is_module:
                found.add(name)
    return found


def core_graph() -> dict[str, set[str]]:
    return {_module_name(p): _imports(p) - {_module_name(p)} for p in sorted((REPO / "core").rglob("*.py"))}


def test_every_core_import_points_down_a_layer_or_across_without_a_cycle():
    graph = core_graph()
    upward = [f"{a} -> {b}" for a, deps in graph.items() for b in deps if _layer(b) > _layer(a)]
    assert not upward, f"imports from a lower layer up: {upward}"
    visiting, done = set(), set()

    def visit(node, path):
        if node in visiting:
            raise AssertionError(f"import cycle: {' -> '.join(path + [node])}")
        if node in done:
            return
        visiting.add(node)
        for dep in sorted(graph.get(node, ())):
            visit(dep, path + [node])
        visiting.discard(node)
        done.add(node)

    for module in graph:
        visit(module, [])


def test_the_layer_check_catches_an_upward_import_and_a_cycle():
    assert _layer("core.errors") < _layer("core.step") < _layer("core")
    assert "core.errors" in _imports(REPO / "core" / "step.py")  # the graph sees what a module imports
    assert "core.backends.jax" in _imports(REPO / "core" / "backends" / "__init__.py")  # also inside functions


@pytest.mark.parametrize("name", ["tensorflow", "jax"])
def test_each_backend_implements_the_whole_interface(name):
    module = importlib.import_module(f"core.backends.{name}")
    backends = [c for _, c in inspect.getmembers(module, inspect.isclass) if c.__module__ == module.__name__]
    backend = next(c for c in backends if issubclass(c, Backend))
    mechanics = next(c for c in backends if issubclass(c, DataParallelMechanics))
    for cls, interface in ((backend, Backend), (mechanics, DataParallelMechanics)):
        assert not cls.__abstractmethods__, f"{cls.__name__} lacks {sorted(cls.__abstractmethods__)}"
        for method in interface.__abstractmethods__:  # same parameters as the interface declares
            declared = list(inspect.signature(getattr(interface, method)).parameters)
            assert list(inspect.signature(getattr(cls, method)).parameters) == declared, (cls.__name__, method)
    assert backend.name == name


def test_a_backend_missing_a_method_cannot_be_made():
    class Partial(Backend):
        name = "partial"

    with pytest.raises(TypeError, match="abstract"):
        Partial()


IMPORTS_WITHOUT_EFFECTS = """
import signal, sys
class Untouchable(list):
    def _refuse(self, *a, **k):
        raise AssertionError("sys.argv was read during an import")
    __getitem__ = __iter__ = __len__ = __contains__ = _refuse
before = (signal.getsignal(signal.SIGINT), sys.excepthook)
import importlib, keras, gymnasium, numpy, PIL, tqdm, tensorboardX  # TensorFlow reads argv itself when imported
importlib.import_module(keras.backend.backend())
sys.argv = Untouchable()
import core
for name in {modules!r}:
    importlib.import_module(name)
assert (signal.getsignal(signal.SIGINT), sys.excepthook) == before, "a handler changed"
print("ok")
"""


def test_importing_core_and_every_example_changes_nothing_in_the_process():
    modules = ["examples"] + [f"examples.{p.stem}" for p in sorted((REPO / "examples").glob("*.py"))]
    code = IMPORTS_WITHOUT_EFFECTS.format(modules=[m for m in modules if not m.endswith("__init__")])
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, timeout=300)
    assert res.returncode == 0 and res.stdout.strip() == "ok", res.stderr[-3000:]


def test_importing_core_with_a_bad_backend_raises_instead_of_exiting():
    code = "import core"
    env = {**os.environ, "KERAS_BACKEND": "foo"}
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, env=env, timeout=120)
    assert res.returncode == 1 and "core.errors.StartupError: KERAS_BACKEND='foo'" in res.stderr, res.stderr


def _functions(path: Path):
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            yield node.name, node.end_lineno - node.lineno + 1


def test_no_function_in_core_or_examples_is_over_60_lines():
    long = [
        f"{p.relative_to(REPO)}:{name} ({n} lines)"
        for folder in ("core", "examples")
        for p in sorted((REPO / folder).rglob("*.py"))
        for name, n in _functions(p)
        if n > 60
    ]
    assert not long, long


@pytest.mark.parametrize("program", PROGRAMS)
def test_program_modules_stay_readable(program):
    lines = len((REPO / "examples" / f"{program}.py").read_text().splitlines())
    assert lines <= 500, f"examples/{program}.py has {lines} lines"
    config = importlib.import_module(f"examples.{program}").Config
    own = [f.name for f in dataclasses.fields(config) if f.name not in RUN_FLAGS]
    assert len(own) <= 25, f"examples.{program} has {len(own)} flags of its own: {own}"
