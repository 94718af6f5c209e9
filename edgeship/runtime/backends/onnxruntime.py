"""The ONNX Runtime backend: one InferenceSession, execution providers chosen by short name.

A provider asked for by name must be in onnxruntime.get_available_providers() and must still be
in the session's providers once the session is built: ONNX Runtime itself falls back to the CPU
with only a log line when, say, the CUDA libraries are missing, and edgeship refuses that.
InferenceSession.run is thread-safe, so one session serves every thread without a lock.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any

import numpy as np

from edgeship.errors import BackendUnavailableError, ModelError, UsageError
from edgeship.runtime.backends.base import Convert, Runner, RunnerInfo, TensorInfo

NAME = "onnxruntime"
FORMATS = ("onnx", "ort")
PACKAGES = ("onnxruntime",)
INSTALL = "pip install 'edgeship[onnx]'"

PROVIDERS = {
    "cpu": "CPUExecutionProvider",
    "cuda": "CUDAExecutionProvider",
    "tensorrt": "TensorrtExecutionProvider",
    "openvino": "OpenVINOExecutionProvider",
    "coreml": "CoreMLExecutionProvider",
    "nnapi": "NnapiExecutionProvider",
    "xnnpack": "XnnpackExecutionProvider",
    "directml": "DmlExecutionProvider",
}
PROVIDER_INSTALL = {
    "cuda": "pip install onnxruntime-gpu in place of onnxruntime, with the CUDA 12 and cuDNN 9 libraries on the library path",
    "tensorrt": "pip install onnxruntime-gpu in place of onnxruntime, with TensorRT 10 and CUDA 12 libraries on the library path",
    "openvino": "pip install onnxruntime-openvino in place of onnxruntime (x86 Linux/Windows)",
    "coreml": "use the standard onnxruntime wheel on macOS; CoreML exists only there",
    "nnapi": "use an Android build of ONNX Runtime (onnxruntime-android); NNAPI exists only on Android",
    "xnnpack": "use an ONNX Runtime build made with --use_xnnpack (the PyPI wheels for Linux do not include it)",
    "directml": "pip install onnxruntime-directml in place of onnxruntime (Windows)",
}

_DTYPES = {
    "tensor(float)": np.float32,
    "tensor(float16)": np.float16,
    "tensor(double)": np.float64,
    "tensor(uint8)": np.uint8,
    "tensor(int8)": np.int8,
    "tensor(int32)": np.int32,
    "tensor(int64)": np.int64,
}


def _onnxruntime() -> Any:
    try:
        return importlib.import_module("onnxruntime")
    except ImportError as exc:
        raise BackendUnavailableError(f"the onnxruntime backend needs onnxruntime; install it with: {INSTALL}") from exc


def probe() -> dict[str, Any]:
    """Whether this backend can run here, its version, and the providers this onnxruntime build has."""
    ort = _onnxruntime()
    available = set(ort.get_available_providers())
    names = [short for short, full in PROVIDERS.items() if full in available]
    return {"package": "onnxruntime", "version": ort.__version__, "accelerators": names}


def provider_name(name: str) -> str:
    """The full execution provider name for a short name (cuda) or a full one (CUDAExecutionProvider)."""
    if name in PROVIDERS.values():
        return name
    key = name.lower()
    if key not in PROVIDERS:
        raise UsageError(f"unknown execution provider {name!r}; choose from: {', '.join(PROVIDERS)}")
    return PROVIDERS[key]


def _short_name(full: str) -> str:
    return next((short for short, name in PROVIDERS.items() if name == full), full)


def _tensor_info(node: Any) -> TensorInfo:
    if node.type not in _DTYPES:
        raise ModelError(f"model tensor {node.name!r} has type {node.type}; edgeship runs numeric image classifiers")
    shape = tuple(d if isinstance(d, int) and d > 0 else -1 for d in node.shape)
    return TensorInfo(node.name, np.dtype(_DTYPES[node.type]), shape, None)


def _load_failure(path: Path, detail: str) -> str:
    """Why ONNX Runtime could not load a file; weights kept in a separate data file get their own fix."""
    if "External data path does not exist" in detail:
        return (f"{path} keeps its weights in an external data file that is missing ({detail.split('does not exist: ')[-1]}); "
                f"copy that file beside {path.name}")
    if "External data path escapes" in detail:
        return (f"{path} names an external data file outside its own folder; refusing to read it "
                f"(keep the model's data files beside {path.name})")
    return f"{path} is not a valid ONNX model ({detail}); re-export it"


class OnnxRuntimeRunner(Runner):
    """An .onnx file in one ONNX Runtime session."""

    backend = NAME

    def __init__(self, path: str | Path, threads: int | None = None, providers: list[str] | None = None) -> None:
        super().__init__(path, threads)
        self.providers = [provider_name(name) for name in (providers or ["cpu"])]
        self._session: Any = None

    def _activate(self) -> None:
        ort = _onnxruntime()
        available = ort.get_available_providers()
        for provider in self.providers:
            if provider not in available:
                short = _short_name(provider)
                raise BackendUnavailableError(
                    f"execution provider {short} ({provider}) is not available in this onnxruntime "
                    f"(available: {', '.join(_short_name(p) for p in available)}); "
                    f"{PROVIDER_INSTALL.get(short, 'install an onnxruntime build that has it')}"
                )
        options = ort.SessionOptions()
        options.log_severity_level = 3
        if self.threads is not None:
            options.intra_op_num_threads = self.threads
            options.inter_op_num_threads = 1
        state = importlib.import_module("onnxruntime.capi.onnxruntime_pybind11_state")
        try:
            session = ort.InferenceSession(str(self.path), sess_options=options, providers=self.providers)
        except state.EPFail as exc:
            raise BackendUnavailableError(f"onnxruntime could not start {', '.join(self.providers)}: {exc}") from exc
        except (state.Fail, state.InvalidProtobuf, state.InvalidGraph, state.InvalidArgument,
                state.NoModel, state.RuntimeException, state.NotImplemented) as exc:
            detail = str(exc).strip().splitlines()[0]
            raise ModelError(_load_failure(self.path, detail)) from exc
        started = session.get_providers()
        missing = [p for p in self.providers if p not in started]
        if missing:
            raise BackendUnavailableError(
                f"onnxruntime did not start {', '.join(_short_name(p) for p in missing)} for {self.path} and would run on "
                f"{', '.join(_short_name(p) for p in started)} instead; "
                f"{PROVIDER_INSTALL.get(_short_name(missing[0]), 'check its libraries')}"
            )
        inputs, outputs = session.get_inputs(), session.get_outputs()
        if len(inputs) != 1 or len(outputs) != 1:
            raise ModelError(
                f"{self.path} has {len(inputs)} inputs and {len(outputs)} outputs; edgeship runs single-input, single-output classifiers"
            )
        self.input, self.output = _tensor_info(inputs[0]), _tensor_info(outputs[0])
        self._session, self._run_session = session, session.run
        self._input_name, self._output_names = inputs[0].name, [outputs[0].name]
        self._version = ort.__version__

    def _release(self) -> None:
        self._session = self._run_session = None

    def _run(self, source: np.ndarray, convert: Convert | None) -> np.ndarray:
        if convert is not None:
            batch = np.empty((len(source), *self.input.shape[1:]), dtype=self.input.dtype)
            convert(source, batch)
            source = batch
        return self._run_session(self._output_names, {self._input_name: source})[0]

    def model_metadata(self) -> tuple[dict[str, str], str]:
        """The model's metadata_props and doc_string, as ONNX Runtime reads them (from .onnx and .ort files alike)."""
        meta = self._session.get_modelmeta()
        return dict(meta.custom_metadata_map), meta.description or ""

    def info(self) -> RunnerInfo:
        return RunnerInfo(
            backend=NAME,
            package="onnxruntime",
            version=getattr(self, "_version", ""),
            threads=self.threads,
            accelerator=",".join(_short_name(p) for p in self.providers),
        )


def create_runner(
    path: str | Path,
    format_name: str,
    threads: int | None = None,
    delegate: str | None = None,
    delegate_options: dict[str, Any] | None = None,
    providers: list[str] | None = None,
) -> OnnxRuntimeRunner:
    """An ONNX Runtime runner; delegates are a LiteRT notion, so naming one here is a usage error."""
    if delegate is not None or delegate_options:
        raise UsageError(f"delegates apply to the litert backend; for {NAME} choose execution providers (e.g. cuda)")
    return OnnxRuntimeRunner(path, threads=threads, providers=providers)
