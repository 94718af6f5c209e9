"""The LiteRT (TensorFlow Lite) backend: ai_edge_litert, else tflite_runtime, else tensorflow.lite.

Delegates by name: `xnnpack` (the CPU delegate LiteRT applies by default), `no-xnnpack` (the
built-in kernels alone, via the op resolver that skips default delegates), `edgetpu`
(libedgetpu.so.1, for models compiled by edgetpu_compiler), `gpu` (the external GPU delegate
library, which no pip wheel ships), or the path of any external delegate library with options.

On the CPU kernels each thread gets an interpreter of its own, built on its first call (set-input,
invoke and get-output of one call must not interleave with another thread's): eight threads sharing
one interpreter behind a lock ran at 0.4-0.8x the throughput of eight interpreters on two cores
(benchmarks/runtime_threads.py), since the lock and the GIL hand over on every invoke. An
interpreter lives as long as its thread, so a server should reuse worker threads. With an
accelerator delegate (one device; some delegates are bound to the thread that made them) one
interpreter serves all threads under a lock. Batches resize the input tensor when the model's batch
dimension is dynamic; a model with a fixed batch size gets its batch in chunks.
"""

from __future__ import annotations

import contextlib
import ctypes
import importlib
import importlib.util
import logging
import os
import platform
import sys
import tempfile
import threading
from pathlib import Path
from types import ModuleType
from typing import Any, Iterator

import numpy as np

from edgeship.errors import BackendUnavailableError, ModelError, UsageError
from edgeship.manifest import Quantization
from edgeship.runtime.backends.base import Convert, Runner, RunnerInfo, TensorInfo

log = logging.getLogger(__name__)

NAME = "litert"
FORMATS = ("tflite", "edgetpu")
PACKAGES = ("ai_edge_litert", "tflite_runtime", "tensorflow")
INSTALL = "pip install 'edgeship[litert]' (or 'edgeship[tflite]' on Raspberry Pi OS with Python 3.11)"
DELEGATES = ("xnnpack", "no-xnnpack", "edgetpu", "gpu")

EDGETPU_LIBRARY = {"Linux": "libedgetpu.so.1", "Darwin": "libedgetpu.1.dylib", "Windows": "edgetpu.dll"}
GPU_LIBRARY = {"Linux": "libtensorflowlite_gpu_delegate.so", "Darwin": "libtensorflowlite_gpu_delegate.dylib"}
EDGETPU_INSTALL = (
    "install the Edge TPU runtime (Debian/Raspberry Pi OS: `apt-get install libedgetpu1-std` from Coral's "
    "package repository), plug in the Coral device, and run a model compiled by edgetpu_compiler"
)
GPU_INSTALL = (
    "no pip wheel ships the TFLite GPU delegate; build it from the TensorFlow sources "
    "(bazel build -c opt //tensorflow/lite/delegates/gpu:libtensorflowlite_gpu_delegate.so) "
    "and pass its path as the delegate"
)

NEWER_MODEL_ERRORS = ("Didn't find op for builtin opcode", "Encountered unresolved custom op")
"""What an older interpreter (e.g. tflite-runtime 2.14 on Raspberry Pi OS) says about ops it lacks."""

_STDERR_LOCK = threading.Lock()

_PACKAGES = (
    ("ai_edge_litert.interpreter", "ai-edge-litert"),
    ("tflite_runtime.interpreter", "tflite-runtime"),
)


def interpreter_module() -> tuple[ModuleType, str, str]:
    """The interpreter module, its distribution name and version, preferring the slim packages over TensorFlow."""
    from importlib import metadata

    for module_name, distribution in _PACKAGES:
        try:
            module = importlib.import_module(module_name)
        except ImportError:
            continue
        try:
            version = metadata.version(distribution)
        except metadata.PackageNotFoundError:
            version = "unknown"
        return module, distribution, version
    if importlib.util.find_spec("tensorflow") is not None:
        log.info("neither ai-edge-litert nor tflite-runtime is installed; using tensorflow.lite")
        tensorflow = importlib.import_module("tensorflow")
        return tensorflow.lite, "tensorflow", tensorflow.__version__
    raise BackendUnavailableError(f"the litert backend needs ai-edge-litert or tflite-runtime; install it with: {INSTALL}")


def probe() -> dict[str, Any]:
    """Whether this backend can run here, with which package, and the delegates it can reach by name."""
    module, package, version = interpreter_module()
    delegates = ["xnnpack", "no-xnnpack"]
    for name in ("edgetpu", "gpu"):
        try:
            _load_named_delegate(module, name, {})
        except BackendUnavailableError:
            continue
        delegates.append(name)
    return {"package": package, "version": version, "accelerators": delegates}


def _is_library_path(delegate: str) -> bool:
    return "/" in delegate or os.sep in delegate or delegate.endswith((".so", ".dylib", ".dll")) or ".so." in delegate


def _load_named_delegate(module: Any, name: str, options: dict[str, Any]) -> Any:
    """load_delegate for edgetpu/gpu by their platform library name, or a library path."""
    system = platform.system()
    if name == "edgetpu":
        library, hint = EDGETPU_LIBRARY.get(system), EDGETPU_INSTALL
    elif name == "gpu":
        library, hint = GPU_LIBRARY.get(system), GPU_INSTALL
    else:
        library, hint = name, "check the path and that the library matches this platform and LiteRT version"
        if not Path(library).is_file():
            raise BackendUnavailableError(f"delegate library {library} not found; give the path of an existing .so/.dylib/.dll")
    if library is None:
        raise BackendUnavailableError(f"the {name} delegate is not available on {system}")
    load_delegate = getattr(module, "load_delegate", None) or module.experimental.load_delegate
    try:
        ctypes.CDLL(library)
        return load_delegate(library, options)
    except (ValueError, OSError, RuntimeError) as exc:
        detail = str(exc).strip().splitlines()[-1] if str(exc).strip() else type(exc).__name__
        raise BackendUnavailableError(f"cannot load the {name} delegate ({library}: {detail}); {hint}") from exc


@contextlib.contextmanager
def _info_lines_to_log() -> Iterator[None]:
    """Send LiteRT's C++ INFO lines (e.g. "Created TensorFlow Lite XNNPACK delegate for CPU.") to the debug log.

    LiteRT prints them straight to file descriptor 2, out of reach of any Python setting, where they
    would turn a command's one-line error into two. Anything else printed meanwhile goes on to stderr.
    The lock keeps two threads loading models at once from swapping descriptor 2 over each other.
    """
    with _STDERR_LOCK:
        try:
            sys.stderr.flush()
            saved = os.dup(2)
        except (AttributeError, OSError, ValueError):
            yield
            return
        with tempfile.TemporaryFile() as capture:
            os.dup2(capture.fileno(), 2)
            try:
                yield
            finally:
                os.dup2(saved, 2)
                os.close(saved)
                capture.seek(0)
                for line in capture.read().decode("utf-8", "replace").splitlines():
                    if line.startswith("INFO: "):
                        log.debug("%s", line)
                    elif line.strip():
                        print(line, file=sys.stderr)


def _quantization(details: dict[str, Any]) -> Quantization | None:
    scale, zero_point = details.get("quantization", (0.0, 0))
    if not scale:
        return None
    return Quantization(float(scale), int(zero_point))


def _tensor_info(details: dict[str, Any]) -> TensorInfo:
    signature = details.get("shape_signature")
    shape = tuple(int(d) for d in (signature if signature is not None and len(signature) else details["shape"]))
    return TensorInfo(str(details["name"]), np.dtype(details["dtype"]), shape, _quantization(details))


class _Interpreter:
    """One interpreter, its bound calls, and the batch size its input tensor has now."""

    def __init__(self, interpreter: Any, input_index: int, output_index: int, input_shape: tuple[int, ...]) -> None:
        self.interpreter = interpreter
        self.input_index, self.output_index = input_index, output_index
        self.dims = list(input_shape[1:])
        self.batch = int(interpreter.get_input_details()[0]["shape"][0])
        self.set_tensor, self.invoke, self.get_tensor = interpreter.set_tensor, interpreter.invoke, interpreter.get_tensor
        self.input_buffer = interpreter.tensor(input_index)

    def run(self, source: np.ndarray, convert: Convert | None) -> np.ndarray:
        """Set the input (or let `convert` write it into the input buffer), invoke, return a copy of the output."""
        if len(source) != self.batch:
            self.interpreter.resize_tensor_input(self.input_index, [len(source), *self.dims], strict=True)
            self.interpreter.allocate_tensors()
            self.batch = len(source)
        if convert is None:
            self.set_tensor(self.input_index, source)
        else:
            buffer = self.input_buffer()
            convert(source, buffer)
            del buffer
        self.invoke()
        return self.get_tensor(self.output_index)


class LiteRTRunner(Runner):
    """A .tflite file on LiteRT: an interpreter per thread on the CPU, one behind a lock with a delegate."""

    backend = NAME

    def __init__(
        self,
        path: str | Path,
        threads: int | None = None,
        delegate: str | None = None,
        delegate_options: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(path, threads)
        if delegate is not None and delegate not in DELEGATES and not _is_library_path(delegate):
            raise UsageError(
                f"unknown delegate {delegate!r} for the litert backend; choose one of: {', '.join(DELEGATES)}, "
                "or give the path of a delegate library"
            )
        if delegate_options and delegate in ("xnnpack", "no-xnnpack", None):
            raise UsageError("delegate options apply to edgetpu, gpu or a delegate library, not to the CPU kernels")
        self.delegate = delegate
        self.delegate_options = dict(delegate_options or {})
        self._lock: threading.Lock | None = None
        self._shared: _Interpreter | None = None
        self._local = threading.local()

    def _activate(self) -> None:
        self._module, self._package, self._version = interpreter_module()
        interpreter = self._open_interpreter()
        inputs, outputs = interpreter.get_input_details(), interpreter.get_output_details()
        if len(inputs) != 1 or len(outputs) != 1:
            raise ModelError(
                f"{self.path} has {len(inputs)} inputs and {len(outputs)} outputs; edgeship runs single-input, single-output classifiers"
            )
        self.input, self.output = _tensor_info(inputs[0]), _tensor_info(outputs[0])
        self._input_index, self._output_index = inputs[0]["index"], outputs[0]["index"]
        first = _Interpreter(interpreter, self._input_index, self._output_index, self.input.shape)
        if self.delegate in (None, "xnnpack", "no-xnnpack"):
            self._local = threading.local()
            self._local.interpreter = first
            self._run = self._run_per_thread  # type: ignore[method-assign]
        else:
            self._lock, self._shared = threading.Lock(), first
            self._run = self._run_locked  # type: ignore[method-assign]

    def _open_interpreter(self) -> Any:
        """A new interpreter for this file with the threads and delegate asked for, tensors allocated."""
        module = self._module
        options: dict[str, Any] = {"num_threads": self.threads}
        if self.delegate == "no-xnnpack":
            resolvers = getattr(module, "OpResolverType", None) or module.experimental.OpResolverType
            options["experimental_op_resolver_type"] = resolvers.BUILTIN_WITHOUT_DEFAULT_DELEGATES
        elif self.delegate not in (None, "xnnpack"):
            options["experimental_delegates"] = [_load_named_delegate(module, self.delegate, self.delegate_options)]
        try:
            with _info_lines_to_log():
                interpreter = module.Interpreter(model_path=str(self.path), **options)
                interpreter.allocate_tensors()
        except (ValueError, RuntimeError) as exc:
            detail = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            if any(words in detail for words in NEWER_MODEL_ERRORS):
                raise BackendUnavailableError(
                    f"{self._package} {self._version} cannot run {self.path.name}, made by a newer converter ({detail.split('.')[0]}); "
                    f"install a current LiteRT (pip install 'edgeship[litert]') or choose another artifact"
                ) from exc
            if self.delegate == "edgetpu":
                raise ModelError(
                    f"{self.path} cannot run with the edgetpu delegate ({detail}); give a model compiled by edgetpu_compiler"
                ) from exc
            if self.delegate not in (None, "xnnpack", "no-xnnpack"):
                raise ModelError(
                    f"the {self.delegate} delegate did not take {self.path.name} ({detail}); a delegate may refuse "
                    "dynamic batch sizes or some ops: see its message above, or run without it"
                ) from exc
            raise ModelError(f"{self.path} is not a valid TFLite model ({detail}); re-export it") from exc
        return interpreter

    def _release(self) -> None:
        """Drop every thread's interpreter: a fresh threading.local frees the old one's per-thread values."""
        self._local = threading.local()
        self._shared = self._lock = None
        self.__dict__.pop("_run", None)

    def _run_per_thread(self, source: np.ndarray, convert: Convert | None) -> np.ndarray:
        try:
            interpreter = self._local.interpreter
        except AttributeError:
            interpreter = self._local.interpreter = _Interpreter(
                self._open_interpreter(), self._input_index, self._output_index, self.input.shape
            )
        return interpreter.run(source, convert)

    def _run_locked(self, source: np.ndarray, convert: Convert | None) -> np.ndarray:
        with self._lock:
            return self._shared.run(source, convert)

    def _run(self, source: np.ndarray, convert: Convert | None) -> np.ndarray:
        raise UsageError(f"{self.path} is not loaded; activate the runner first")

    def info(self) -> RunnerInfo:
        return RunnerInfo(
            backend=NAME,
            package=getattr(self, "_package", ""),
            version=getattr(self, "_version", ""),
            threads=self.threads,
            accelerator=self.delegate or "xnnpack",
            details={"delegate_options": self.delegate_options} if self.delegate_options else {},
        )


def create_runner(
    path: str | Path,
    format_name: str,
    threads: int | None = None,
    delegate: str | None = None,
    delegate_options: dict[str, Any] | None = None,
    providers: list[str] | None = None,
) -> LiteRTRunner:
    """A LiteRT runner; an edgetpu artifact needs the Edge TPU delegate, so it gets it unless told otherwise."""
    if providers:
        raise UsageError("execution providers apply to the onnxruntime backend; for litert choose a delegate")
    if format_name == "edgetpu" and delegate is None:
        delegate = "edgetpu"
    return LiteRTRunner(path, threads=threads, delegate=delegate, delegate_options=delegate_options)
