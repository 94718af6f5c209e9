"""The runtime is a leaf: its modules import only numpy, the standard library, its backends and a few edgeship helpers."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import edgeship.runtime

RUNTIME = Path(edgeship.runtime.__file__).parent
ALLOWED_EDGESHIP = ("edgeship.runtime", "edgeship.errors", "edgeship.files", "edgeship.manifest")
ALLOWED_THIRD_PARTY = {"numpy"}
LAZY_ONLY = {"PIL", "onnxruntime", "ai_edge_litert", "tflite_runtime"}
HEAVY = ("tensorflow", "keras", "matplotlib", "onnx", "tf2onnx", "PIL", "onnxruntime", "ai_edge_litert")


def _imports(path: Path):
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            yield from ((alias.name, node) for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0:
            yield node.module, node


def test_runtime_imports_stay_inside_the_leaf():
    stdlib = sys.stdlib_module_names
    offences = []
    for path in sorted(RUNTIME.rglob("*.py")):
        top_level = {id(node) for node in ast.parse(path.read_text()).body}
        for name, node in _imports(path):
            root = name.split(".")[0]
            if name.startswith("edgeship"):
                if not name.startswith(ALLOWED_EDGESHIP):
                    offences.append(f"{path.name}: {name}")
            elif root in stdlib or root in ALLOWED_THIRD_PARTY or root == "__future__":
                continue
            elif root in LAZY_ONLY:
                if id(node) in top_level:
                    offences.append(f"{path.name}: {name} at module level")
            else:
                offences.append(f"{path.name}: {name}")
    assert offences == []


def test_import_loads_no_heavy_module_and_is_quick():
    code = (
        "import sys, time; t = time.perf_counter(); import edgeship.cli, edgeship.runtime.cli;"
        "from edgeship.runtime import Classifier, available_backends;"
        "print(time.perf_counter() - t); print(','.join(m for m in %r if m in sys.modules))" % (HEAVY,)
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60)
    seconds, loaded = done.stdout.splitlines()
    assert loaded == ""
    assert float(seconds) < 1.0


def test_command_lines_load_without_numpy():
    code = (
        "import argparse, sys, edgeship.runtime.cli as cli, edgeship.commands.predict as p, edgeship.commands.bench as b;"
        "cli.build_parser(); p.add_arguments(argparse.ArgumentParser()); b.add_arguments(argparse.ArgumentParser());"
        "print('numpy' in sys.modules)"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60)
    assert done.stdout.strip() == "False"
