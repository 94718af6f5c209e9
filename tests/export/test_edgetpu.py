"""Edge TPU exporter: skipped with its reason where Coral's compiler is absent (as here), wired to the compiler where present.

Coral's `edgetpu_compiler` cannot be installed on this machine (it ships only from Coral's apt
repository), so the compile path runs against small stand-in executables that behave like the
compiler's command line: they write `<name>_edgetpu.tflite` into --out_dir and print its summary,
or fail the way it fails.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from edgeship.export import export_bundle
from edgeship.export.edgetpu import COMPILER, parse_compiler_log

COMPILER_LOG = """Edge TPU Compiler version 16.0.384591198
Started a compilation timeout timer of 180 seconds.

Model compiled successfully in 11 ms.

Input model: model_int8.tflite
Input size: 106.00KiB
Output model: model_int8_edgetpu.tflite
Output size: 167.05KiB
On-chip memory used for caching model parameters: 160.00KiB
Number of Edge TPU subgraphs: 1
Total number of operations: 4
Operation log: model_int8_edgetpu.log

Operator                       Count      Status

FULLY_CONNECTED                2          Mapped to Edge TPU
QUANTIZE                       1          Mapped to Edge TPU
SOFTMAX                        1          Operation is working on an unsupported data type
"""


def stand_in_compiler(folder: Path, script: str) -> Path:
    """Put an executable called edgetpu_compiler in `folder` and return the folder."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / COMPILER
    path.write_text("#!/bin/sh\n" + script)
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return folder


def test_without_the_compiler_the_format_is_skipped_with_the_reason(mlp_run, sample_dataset, tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path / "empty-bin"))
    result = export_bundle(mlp_run.model_path, tmp_path / "bundle", formats="edgetpu", dataset=sample_dataset)
    artifact = result.manifest.artifact("edgetpu")
    assert artifact.status == "skipped" and artifact.file is None
    assert "edgetpu_compiler is not on PATH" in artifact.reason and "Coral" in artifact.reason
    assert [(row.artifact, row.status) for row in result.rows] == [("edgetpu", "skipped")]
    assert sorted(p.name for p in result.bundle.iterdir()) == ["golden.npz", "manifest.json"]


def test_the_default_formats_list_edgetpu_rather_than_drop_it(mlp_bundle):
    assert [row.artifact for row in mlp_bundle.rows][-1] == "edgetpu"
    assert mlp_bundle.manifest.artifact("edgetpu").status in ("skipped", "unchecked")


def test_a_compiler_on_path_compiles_the_int8_model(mlp_run, sample_dataset, tmp_path, monkeypatch):
    bin_dir = stand_in_compiler(
        tmp_path / "bin",
        'out="$3"; in="$4"; cp "$in" "$out/$(basename "$in" .tflite)_edgetpu.tflite"\n'
        f"cat <<'EOF'\n{COMPILER_LOG}EOF\n",
    )
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    result = export_bundle(mlp_run.model_path, tmp_path / "bundle", formats="edgetpu", dataset=sample_dataset)
    artifact = result.manifest.artifact("edgetpu")
    assert artifact.has_file and artifact.format == "edgetpu" and artifact.precision == "int8"
    assert (result.bundle / artifact.file).stat().st_size == artifact.bytes > 0
    assert artifact.parity is None and artifact.status == "unchecked" and "not measured" in artifact.reason
    assert artifact.details["compiler_version"] == "16.0.384591198"
    assert artifact.details["operations_on_edgetpu"] == 3 and artifact.details["operations_total"] == 4
    assert result.manifest.tools["edgetpu_compiler"] == "16.0.384591198"


def test_the_compiled_model_has_a_fixed_batch_of_one(mlp_run, sample_dataset, tmp_path, monkeypatch):
    from ai_edge_litert.interpreter import Interpreter

    bin_dir = stand_in_compiler(tmp_path / "bin", 'cp "$4" "$3/$(basename "$4" .tflite)_edgetpu.tflite"\n')
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    result = export_bundle(mlp_run.model_path, tmp_path / "bundle", formats=["edgetpu"], dataset=sample_dataset)
    details = Interpreter(model_path=str(result.bundle / "model_int8_edgetpu.tflite")).get_input_details()[0]
    assert list(details["shape_signature"]) == [1, 28, 28]
    assert details["dtype"].__name__ == "int8"


def test_a_failing_compiler_fails_the_format_with_its_message(mlp_run, sample_dataset, tmp_path, monkeypatch):
    bin_dir = stand_in_compiler(tmp_path / "bin", "echo \"ERROR: Didn't find op for builtin opcode 'GATHER'\" >&2\nexit 1\n")
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    result = export_bundle(mlp_run.model_path, tmp_path / "bundle", formats="tflite-int8,edgetpu", dataset=sample_dataset)
    artifact = result.manifest.artifact("edgetpu")
    assert artifact.status == "error"
    assert "edgetpu_compiler failed (exit 1)" in artifact.reason and "GATHER" in artifact.reason
    assert result.manifest.artifact("tflite-int8").has_file


def test_parse_compiler_log_reads_version_summary_and_operators():
    parsed = parse_compiler_log(COMPILER_LOG)
    assert parsed["compiler_version"] == "16.0.384591198"
    assert parsed["summary"]["Number of Edge TPU subgraphs"] == "1"
    assert parsed["operations"][0] == {"operator": "FULLY_CONNECTED", "count": 2, "status": "Mapped to Edge TPU"}
    assert [op["operator"] for op in parsed["operations"]] == ["FULLY_CONNECTED", "QUANTIZE", "SOFTMAX"]
    assert (parsed["operations_on_edgetpu"], parsed["operations_total"]) == (3, 4)
