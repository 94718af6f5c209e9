"""The one private TFLite call edgeship relies on, `Interpreter._get_ops_details`, pinned on every installed interpreter."""

from __future__ import annotations

import importlib

import pytest

from edgeship.errors import MissingDependencyError
from edgeship.quantdebug import interpreter_ops

INTERPRETERS = ("ai_edge_litert.interpreter", "tensorflow")


def _interpreter_class(module_name: str):
    try:
        module = importlib.import_module(module_name)
    except ImportError:
        pytest.skip(f"{module_name} is not installed here")
    return module.lite.Interpreter if module_name == "tensorflow" else module.Interpreter


@pytest.mark.parametrize("module_name", INTERPRETERS)
def test_ops_of_a_real_int8_file_come_in_execution_order_with_their_tensors(module_name, bundle_path):
    interpreter = _interpreter_class(module_name)(model_path=str(bundle_path / "model_int8.tflite"))
    interpreter.allocate_tensors()
    ops = interpreter_ops(interpreter)
    names = [op["op_name"] for op in ops]
    assert names.count("FULLY_CONNECTED") == 2 and "SOFTMAX" in names
    assert [op["index"] for op in ops] == list(range(len(ops)))
    tensors = {detail["index"] for detail in interpreter.get_tensor_details()}
    fully_connected = [op for op in ops if op["op_name"] == "FULLY_CONNECTED"]
    assert all(set(op["outputs"]) <= tensors for op in fully_connected)
    assert fully_connected[0]["outputs"][0] in fully_connected[1]["inputs"]


@pytest.mark.parametrize("module_name", INTERPRETERS)
def test_an_interpreter_whose_op_listing_changed_is_a_clear_error(module_name, bundle_path):
    base = _interpreter_class(module_name)

    class Renamed(base):
        _get_ops_details = None

    class Reshaped(base):
        def _get_ops_details(self):
            return [{"index": op["index"], "op_name": op["op_name"]} for op in base._get_ops_details(self)]

    for changed, message in ((Renamed, "no longer has _get_ops_details"), (Reshaped, "records lack inputs, outputs")):
        interpreter = changed(model_path=str(bundle_path / "model_int8.tflite"))
        interpreter.allocate_tensors()
        with pytest.raises(MissingDependencyError, match=message):
            interpreter_ops(interpreter)
