"""Preflight: before a bundle goes to a device, which runtime package runs each of its files there, and what may not.

For each artifact and a named target (a Raspberry Pi OS, a Linux PC, an Android or iOS app): the
runtime package that exists for that platform and Python with its install line, the ONNX opset and
IR version of ONNX files, and delegate coverage where a tool tells it (LiteRT's model analyzer with
GPU compatibility from the installed TensorFlow; the Edge TPU's supported-operator list). The facts
live in one data file, `edgeship/devices/targets.toml`, each with its source; anything not there is
reported as unknown, never guessed.
"""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from edgeship.devices.targets import facts
from edgeship.errors import UsageError
from edgeship.runtime.bundle import Bundle

NO_RUNTIME = "no runtime"
UNKNOWN = "unknown"
ANALYZER_TIMEOUT_S = 300


def target_names() -> list[str]:
    known = facts()
    return [*known["targets"], *known["preflight"]["aliases"], *known["preflight"]["phones"]]


@dataclass
class ArtifactCheck:
    """What preflight found for one artifact on one target."""

    artifact: str
    file: str
    format: str
    runtime: str
    install: str
    version: str
    onnx: str
    delegates: str
    notes: list[str] = field(default_factory=list)
    sources: list[str] = field(default_factory=list)

    @property
    def runnable(self) -> bool:
        return self.runtime != NO_RUNTIME


@dataclass
class PreflightReport:
    bundle: str
    target: str
    description: str
    checks: list[ArtifactCheck]

    def to_dict(self) -> dict[str, Any]:
        return {"bundle": self.bundle, "target": self.target, "description": self.description,
                "artifacts": [{**asdict(check), "runnable": check.runnable} for check in self.checks]}


def preflight(bundle_folder: str | Path, target: str, artifacts: list[str] | None = None) -> PreflightReport:
    """Check the bundle's artifacts (all with a file, or those named) against `target`."""
    known = facts()
    aliases = known["preflight"]["aliases"]
    if target not in target_names():
        raise UsageError(f"unknown target {target!r}; known targets: {', '.join(target_names())}")
    bundle = Bundle.open(bundle_folder)
    with_files = [a for a in bundle.manifest.artifacts if a.has_file]
    if artifacts:
        chosen = [bundle.manifest.artifact(name) for name in artifacts]
        missing = [a.name for a in chosen if not a.has_file]
        if missing:
            raise UsageError(f"artifact {', '.join(missing)} has no file in this bundle; it has: {', '.join(a.name for a in with_files)}")
    else:
        chosen = with_files
    paths = {a.name: Path(bundle.folder) / (a.file or "") for a in chosen}
    gpu = _gpu_compatibility([paths[a.name] for a in chosen if a.format in ("tflite", "edgetpu")])
    if target in known["preflight"]["phones"]:
        phone = known["preflight"]["phones"][target]
        checks = [_phone_check(a, paths[a.name], phone, gpu) for a in chosen]
        return PreflightReport(str(bundle_folder), target, phone["description"], checks)
    platform = known["targets"][aliases.get(target, target)]
    checks = [_pip_check(a, paths[a.name], platform, known, gpu) for a in chosen]
    description = platform["description"] + (f" (facts of {aliases[target]})" if target in aliases else "")
    return PreflightReport(str(bundle_folder), target, description, checks)


def _wheel(known: dict[str, Any], package: str, machine: str, python: str) -> tuple[str, str, str]:
    """(fits | no wheel | unknown, version or reason, source) for one requirement on a platform."""
    entry = next((w for w in known["wheels"] if w["package"] == package and w["machine"] == machine), None)
    if entry is None:
        return UNKNOWN, f"no facts for {package} on {machine}", ""
    if python in entry["no_wheel_pythons"]:
        return "no wheel", f"{package}: no {machine} wheel for Python {python}", entry["source"]
    if python not in entry["pythons"]:
        return UNKNOWN, f"{package}: Python {python} on {machine} not checked", entry["source"]
    version = entry["version"][python] if isinstance(entry["version"], dict) else entry["version"]
    return "fits", f"{package.split('<')[0]} {version}", entry["source"]


def _pip_check(artifact: Any, path: Path, platform: dict[str, Any], known: dict[str, Any], gpu: dict[str, str]) -> ArtifactCheck:
    machine, python = platform["machine"], platform["python"]
    check = ArtifactCheck(artifact.name, artifact.file or "", artifact.format, NO_RUNTIME, "–", "–",
                          _onnx_versions(path, artifact), _delegates(artifact, path, gpu, known, edgetpu=True))
    reasons = []
    for extra in known["preflight"]["formats"].get(artifact.format, []):
        verdicts = [_wheel(known, package, machine, python) for package in known["extras"][extra]]
        check.sources += [source for _, _, source in verdicts if source]
        if all(status == "fits" for status, _, _ in verdicts):
            check.runtime = f"edgeship[{extra}]"
            check.install = f"pip install 'edgeship[{extra}]'"
            check.version = ", ".join(detail for _, detail, _ in verdicts)
            break
        reasons += [detail for status, detail, _ in verdicts if status != "fits"]
        if any(status == UNKNOWN for status, _, _ in verdicts) and check.runtime == NO_RUNTIME:
            check.runtime = UNKNOWN
    if not check.runnable or check.runtime == UNKNOWN:
        check.notes.append("; ".join(dict.fromkeys(reasons)))
    problems = known["preflight"]["known_problems"]
    if check.runtime == "edgeship[onnx]" and machine == "aarch64":
        check.notes.append(problems["onnx-aarch64"])
    if artifact.format in ("tflite", "edgetpu") and machine == "armv7l":
        check.notes.append(problems["litert-armv7l"])
    if check.runtime == "edgeship[tflite]":
        check.notes.append(problems["tflite-3.11"])
    if artifact.format == "ort":
        check.notes.append(f"an .ort file loads in onnxruntime at least as new as its converter ({_converter_version(artifact)})")
    return check


def _phone_check(artifact: Any, path: Path, phone: dict[str, Any], gpu: dict[str, str]) -> ArtifactCheck:
    check = ArtifactCheck(artifact.name, artifact.file or "", artifact.format, NO_RUNTIME, "–", "–",
                          _onnx_versions(path, artifact), _delegates(artifact, path, gpu, facts(), edgetpu=False))
    fitting = [r for r in phone["runtimes"] if artifact.format in r["formats"]]
    for runtime in fitting:
        if "MediaPipe" in runtime["package"] or "mediapipe" in runtime["package"]:
            dtype = artifact.input.dtype if artifact.input else None
            if dtype not in ("uint8", "float32") or len(artifact.input.shape) != 4 or artifact.input.shape[-1] != 3:
                check.notes.append(f"{runtime['package']}: not this file (input {dtype} {artifact.input.shape if artifact.input else ''}; "
                                   "MediaPipe takes 4-D RGB uint8 or float32)")
                continue
        check.runtime, check.install, check.version = runtime["package"], runtime["install"], runtime["version"]
        check.notes.append(runtime["needs"])
        check.sources.append(runtime["source"])
        break
    return check


def _converter_version(artifact: Any) -> str:
    return artifact.details.get("interpreter", "onnxruntime, version unknown")


def _onnx_versions(path: Path, artifact: Any) -> str:
    """The ONNX opset and IR version of an .onnx file; what its runtime supports is not in the facts, so: unknown."""
    if artifact.format != "onnx":
        return "–"
    try:
        import onnx
    except ImportError:
        return f"opset {artifact.details.get('opset', UNKNOWN)}, IR unknown (onnx not installed)"
    model = onnx.load(str(path), load_external_data=False)
    opset = next((entry.version for entry in model.opset_import if entry.domain in ("", "ai.onnx")), None)
    return f"opset {opset}, IR {model.ir_version}; the runtime's maximum: unknown"


def _operators(path: Path) -> list[str]:
    """The builtin operator names of a .tflite file, read with LiteRT's generated schema bindings."""
    try:
        from ai_edge_litert import schema_py_generated as schema
    except ImportError:
        try:
            from tensorflow.lite.python import schema_py_generated as schema
        except ImportError:
            return []
    names = {value: name for name, value in vars(schema.BuiltinOperator).items() if not name.startswith("_")}
    model = schema.Model.GetRootAsModel(path.read_bytes(), 0)
    codes = [model.OperatorCodes(i) for i in range(model.OperatorCodesLength())]
    subgraph = model.Subgraphs(0)
    used = []
    for index in range(subgraph.OperatorsLength()):
        code = codes[subgraph.Operators(index).OpcodeIndex()]
        builtin = max(code.BuiltinCode(), code.DeprecatedBuiltinCode())
        used.append(names.get(builtin, f"BUILTIN_{builtin}") if code.CustomCode() is None else code.CustomCode().decode())
    return used


def _delegates(artifact: Any, path: Path, gpu: dict[str, str], known: dict[str, Any], edgetpu: bool) -> str:
    if artifact.format not in ("tflite", "edgetpu"):
        if artifact.format == "ort":
            verdict = artifact.details.get("mobile_usability", {}).get("summary")
            return verdict or "–"
        return "–"
    parts = [f"GPU: {gpu.get(str(path), UNKNOWN)}"]
    if edgetpu and artifact.precision == "int8" and artifact.format == "tflite":
        operators = _operators(path)
        if operators:
            supported = set(known["preflight"]["edgetpu"]["operators"])
            outside = sorted({op for op in operators if op not in supported})
            inside = sum(op in supported for op in operators)
            parts.append(f"Edge TPU list: {inside}/{len(operators)} ops" + (f" (not: {', '.join(outside)})" if outside else ""))
    return "; ".join(parts)


def _gpu_compatibility(paths: list[Path]) -> dict[str, str]:
    """LiteRT's model analyzer (tf.lite.experimental.Analyzer, gpu_compatibility=True) on each file, when TensorFlow is installed.

    The analyzer prints from C++, so it runs in a child process whose output is read.
    """
    import importlib.util

    if not paths or importlib.util.find_spec("tensorflow") is None:
        return {}
    code = (
        "import json, sys, os\n"
        "os.environ['TF_CPP_MIN_LOG_LEVEL'] = '3'\n"
        "import tensorflow as tf\n"
        "for path in json.loads(sys.argv[1]):\n"
        "    print('=== EDGESHIP ' + path, flush=True)\n"
        "    tf.lite.experimental.Analyzer.analyze(model_path=path, gpu_compatibility=True)\n"
        "    sys.stdout.flush()\n"
    )
    try:
        done = subprocess.run([sys.executable, "-c", code, json.dumps([str(p) for p in paths])],
                              capture_output=True, text=True, timeout=ANALYZER_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        return {str(p): "unknown (the analyzer timed out)" for p in paths}
    verdicts: dict[str, str] = {}
    for block in done.stdout.split("=== EDGESHIP ")[1:]:
        path, _, text = block.partition("\n")
        warnings = [line for line in text.splitlines() if "GPU COMPATIBILITY WARNING" in line]
        if "compatible with GPU delegate" in text and not warnings:
            verdicts[path] = "compatible (LiteRT analyzer)"
        elif warnings:
            verdicts[path] = f"{len(warnings)} incompatible op(s) (LiteRT analyzer)"
    return verdicts


def format_report(report: PreflightReport) -> str:
    from edgeship.runtime.tables import markdown_table

    rows = [[c.artifact, c.format, c.runtime, c.install, c.version, c.onnx, c.delegates, " ".join(n for n in c.notes if n)]
            for c in report.checks]
    table = markdown_table(["artifact", "format", "runtime", "install", "version", "onnx", "delegates", "notes"], rows)
    return f"# preflight: {report.bundle} on {report.target} ({report.description})\n\n{table}"
