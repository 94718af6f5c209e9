"""LiteRT 2's CompiledModel API: a .tflite file compiled for one accelerator by name, `cpu`, `gpu` or `npu`.

`ai_edge_litert.compiled_model.CompiledModel` is how LiteRT 2 offers its accelerators: the CPU
(XNNPACK, with builtin kernels for the ops XNNPACK lacks), the GPU through its WebGPU accelerator
(`libLiteRtWebGpuAccelerator.so` in the wheel; Dawn on Vulkan, Metal or Direct3D 12) and NPUs
through vendor dispatch libraries and compiler plugins (Qualcomm, MediaTek, Google Tensor, Intel
OpenVINO). The classic Interpreter with delegates stays the `litert` backend; this one sits beside
it, chosen with `--backend litert-compiled --accelerator gpu`.

A GPU or NPU is compiled with the CPU as fallback for the ops it cannot take, then asked
`is_fully_accelerated()`; `require_full_acceleration` refuses a model it is not. LiteRT 2.3's Python
API says no more than that flag (no per-op placement), so a partly accelerated model is reported as
"not fully accelerated: some ops run on the CPU". An accelerator that cannot be had is an error,
never a CPU run: the GPU accelerator raises by itself when Dawn finds no adapter, but LiteRT
compiles an NPU request on the CPU alone when no NPU dispatch library or compiler plugin loads,
saying so only on stderr; those lines are read here and turned into the error. What LiteRT prints
from C++ (accelerator registration, plugin searches) goes to the debug log, and into the message
when compiling fails.

Batches: on the CPU the input is resized to each batch size (the model's batch dimension is
dynamic) and the output is bound to an aligned numpy array of the new size, since LiteRT 2.3 sizes
output buffers made after a resize from the shape before it until the model has run (a buffer too
small corrupts the heap). GPU and NPU keep the compiled batch size (they refuse resizing), so the
Runner base class feeds them chunks. One CompiledModel serves all threads behind a lock.
"""

from __future__ import annotations

import collections.abc
import contextlib
import ctypes
import dataclasses
import enum
import logging
import os
import platform
import re
import sys
import tempfile
import threading
import typing
from importlib import metadata
from pathlib import Path
from typing import Any, Iterator

import numpy as np

from edgeship.errors import BackendUnavailableError, ModelError, UsageError
from edgeship.runtime.backends.base import Convert, Placement, Runner, RunnerInfo, TensorInfo
from edgeship.runtime.backends.litert import _STDERR_LOCK, _tensor_info

log = logging.getLogger(__name__)

NAME = "litert-compiled"
FORMATS = ("tflite",)
PACKAGES = ("ai_edge_litert",)
INSTALL = "pip install 'edgeship[litert]' (ai-edge-litert 2.x; tflite-runtime and tensorflow.lite have no CompiledModel)"
ACCELERATORS = ("cpu", "gpu", "npu")

GPU_INSTALL = (
    "LiteRT's GPU accelerator runs on WebGPU (Dawn), which needs a Vulkan driver on Linux: install the GPU's "
    "Vulkan driver and loader (Debian: apt-get install libvulkan1 and mesa-vulkan-drivers or the vendor's driver, "
    "e.g. NVIDIA's) so that `vulkaninfo --summary` lists the GPU; Metal on macOS and Direct3D 12 on Windows need nothing more"
)
NPU_INSTALL = (
    "LiteRT reaches an NPU through the vendor's dispatch library and compiler plugin: install the vendor runtime "
    "(Qualcomm QNN, MediaTek NeuroPilot, Google Tensor, Intel OpenVINO) and give "
    "--accelerator-option dispatch_library_path=DIR (and compiler_plugin_path=DIR), or run a model compiled ahead of time for that NPU"
)

ENVIRONMENT_KEYS = ("dispatch_library_path", "compiler_plugin_path", "runtime_path")
OPTION_GROUPS = {"cpu": "cpu_options", "gpu": "gpu_options", "qualcomm": "qualcomm_options", "intel_openvino": "intel_openvino_options"}
GROUP_ACCELERATORS = {"cpu": ACCELERATORS, "gpu": ("gpu",), "qualcomm": ("npu",), "intel_openvino": ("npu",)}
"""Which accelerator each option group applies to: CPU options to all (the CPU runs what the others leave)."""

MISSING_ACCELERATOR_SIGNS = {
    "gpu": ("No adapters found", "Failed to initialize WebGPU", "Couldn't load Vulkan"),
    "npu": ("NPU accelerator could not be loaded", "Failed to apply compiler plugins", "No compiler plugin found"),
}
"""Lines LiteRT prints when an accelerator is not there (GPU) or when it compiles an NPU request on the CPU alone."""

DYNAMIC_TENSORS_SIGN = "only supports static-sized tensors"


def compiled_model_module() -> tuple[Any, str]:
    """ai_edge_litert.compiled_model and the ai-edge-litert version, or BackendUnavailableError with the install line."""
    try:
        import ai_edge_litert.compiled_model as module
    except ImportError as exc:
        raise BackendUnavailableError(f"the {NAME} backend needs ai-edge-litert 2.x; install it with: {INSTALL}") from exc
    try:
        version = metadata.version("ai-edge-litert")
    except metadata.PackageNotFoundError:
        version = "unknown"
    return module, version


def probe() -> dict[str, Any]:
    """Whether CompiledModel is installed, and the accelerators that can load here (a device is proven only by a model's load).

    gpu: the wheel's WebGPU accelerator, and on Linux a Vulkan loader (Dawn's way to the GPU); npu:
    a vendor dispatch library in the wheel whose own dependencies load (the Intel OpenVINO one needs
    libopenvino, for instance).
    """
    module, version = compiled_model_module()
    package = Path(module.__file__).parent
    accelerators = ["cpu"]
    shipped = any((package / name).is_file() for name in ("libLiteRtWebGpuAccelerator.so", "libLiteRtGpuAccelerator.so"))
    if shipped and (platform.system() != "Linux" or _loads("libvulkan.so.1")):
        accelerators.append("gpu")
    if any(_loads(str(library)) for library in package.glob("vendors/*/dispatch/libLiteRtDispatch_*")):
        accelerators.append("npu")
    return {"package": "ai-edge-litert", "version": version, "accelerators": accelerators}


def _loads(library: str) -> bool:
    """Whether a shared library and its dependencies load."""
    try:
        ctypes.CDLL(library)
    except OSError:
        return False
    return True


@contextlib.contextmanager
def _native_output() -> Iterator[list[str]]:
    """Capture what LiteRT prints on file descriptors 1 and 2 meanwhile: into the debug log, and the list yielded, for diagnosis.

    LiteRT's GPU set-up prints on stdout too ("Failed to load OpenCL library ..."), where it would
    break a command's table or JSON. Shares the litert backend's lock, so two threads loading models
    never swap the descriptors over each other.
    """
    lines: list[str] = []
    with _STDERR_LOCK:
        try:
            sys.stdout.flush()
            sys.stderr.flush()
            saved = [os.dup(1), os.dup(2)]
        except (AttributeError, OSError, ValueError):
            yield lines
            return
        with tempfile.TemporaryFile() as capture:
            for descriptor in (1, 2):
                os.dup2(capture.fileno(), descriptor)
            try:
                yield lines
            finally:
                for descriptor, original in zip((1, 2), saved):
                    os.dup2(original, descriptor)
                    os.close(original)
                capture.seek(0)
                lines.extend(line for line in capture.read().decode("utf-8", "replace").splitlines() if line.strip())
                for line in lines:
                    log.debug("%s", line)


_ENVIRONMENT_MADE = threading.Event()
"""Set once LiteRT has made its process-wide environment (on the first write into a buffer)."""


def quiet_teardown() -> None:
    """Point file descriptor 2 at /dev/null for the rest of the process, once a command line has said everything.

    LiteRT 2.3 makes a process-wide environment on the first write into a tensor buffer and frees it
    in a C++ static destructor after Python has finished, printing two INFO lines that would follow a
    command's table or its one-line error. Only the command lines call this, as they return; a
    program that uses the runtime keeps its stderr.
    """
    if not _ENVIRONMENT_MADE.is_set():
        return
    sys.stderr.flush()
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 2)
    os.close(devnull)


_LOG_PREFIX = re.compile(r"^(?:[EWI]\d{4} [\d:.]+\s+\d+ |(?:INFO|WARNING|ERROR|Warning): |└ )*(?:\[?[\w./]+\.cc:\d+\]\s*)?")
"""absl's and LiteRT's line prefixes (severity, time, thread, source file), cut from the lines quoted in an error."""


def _diagnosis(lines: list[str], signs: tuple[str, ...] = ()) -> str:
    """The lines worth showing a user, without log prefixes: those with a sign given, else LiteRT's errors."""
    chosen = [line for line in lines if any(sign in line for sign in signs)]
    if not chosen:
        chosen = [line for line in lines if line.lstrip().startswith(("ERROR", "E0000", "└ "))]
    unique = list(dict.fromkeys(_LOG_PREFIX.sub("", line.strip()) for line in chosen))
    return "; ".join(text for text in unique[-3:] if text)


def parse_accelerator_options(accelerator: str, options: dict[str, str] | None, module: Any) -> tuple[Any, dict[str, str]]:
    """`--accelerator-option KEY=VALUE` pairs into LiteRT's Options groups and environment paths.

    Keys are `GROUP.FIELD` with GROUP cpu, gpu, qualcomm or intel_openvino and FIELD one of that
    LiteRT options class's fields (e.g. gpu.enforce_f32=true, cpu.kernel_mode=builtin,
    qualcomm.htp_performance_mode=burst, intel_openvino.configs_map.KEY=VALUE), or an environment
    path (dispatch_library_path, compiler_plugin_path, runtime_path). Values are converted by the
    field's type, read from LiteRT's own dataclasses, so new vendor options pass through unchanged.
    """
    model_options = module.Options()
    environment: dict[str, str] = {}
    for key, value in (options or {}).items():
        if key in ENVIRONMENT_KEYS:
            if accelerator != "npu" and key != "runtime_path":
                raise UsageError(f"--accelerator-option {key} applies to --accelerator npu, not {accelerator}")
            environment[key] = value
            continue
        group, _, field_path = key.partition(".")
        if group not in OPTION_GROUPS or not field_path:
            raise UsageError(
                f"unknown accelerator option {key!r}; give GROUP.FIELD=VALUE with GROUP one of {', '.join(OPTION_GROUPS)}, "
                f"or one of {', '.join(ENVIRONMENT_KEYS)}"
            )
        if accelerator not in GROUP_ACCELERATORS[group]:
            raise UsageError(f"{group} options apply to --accelerator {' or '.join(GROUP_ACCELERATORS[group])}, not {accelerator}")
        _set_option(getattr(model_options, OPTION_GROUPS[group]), group, field_path, value)
    return model_options, environment


def _set_option(target: Any, group: str, field_path: str, text: str) -> None:
    """Set one field of a LiteRT options dataclass from text, by the field's annotated type."""
    name, _, sub_key = field_path.partition(".")
    hints = typing.get_type_hints(type(target))
    fields = [f.name for f in dataclasses.fields(target) if not f.name.startswith("_")]
    if name not in fields or (group == "cpu" and name == "num_threads"):
        choices = ", ".join(f"{group}.{f}" for f in fields if not (group == "cpu" and f == "num_threads"))
        hint = "; the thread count is --threads" if name == "num_threads" else ""
        raise UsageError(f"unknown accelerator option {group}.{name}; {group} options are: {choices}{hint}")
    kind = hints[name]
    if typing.get_origin(kind) is typing.Union:
        kind = next(arg for arg in typing.get_args(kind) if arg is not type(None))
    where = f"{group}.{name}"
    if typing.get_origin(kind) is dict or kind is dict:
        if not sub_key:
            raise UsageError(f"{where} is a map; give {where}.KEY=VALUE")
        getattr(target, name)[sub_key] = text
        return
    if sub_key:
        raise UsageError(f"{where} is not a map; give {where}=VALUE")
    setattr(target, name, _convert(kind, text, where))


def _convert(kind: Any, text: str, where: str) -> Any:
    """Text to a bool, int, enum member (by name) or int sequence, as the option's type asks."""
    if kind is bool:
        lowered = text.strip().lower()
        if lowered not in ("true", "false", "1", "0", "yes", "no", "on", "off"):
            raise UsageError(f"{where} takes true or false, got {text!r}")
        return lowered in ("true", "1", "yes", "on")
    if isinstance(kind, type) and issubclass(kind, enum.Enum):
        members = {name.lower(): member for name, member in kind.__members__.items()}
        if text.strip().lower() not in members:
            raise UsageError(f"{where} takes one of {', '.join(members)}, got {text!r}")
        return members[text.strip().lower()]
    if kind is int:
        try:
            return int(text)
        except ValueError as exc:
            raise UsageError(f"{where} takes an integer, got {text!r}") from exc
    if typing.get_origin(kind) in (list, tuple, collections.abc.Sequence):
        try:
            return [int(part) for part in text.split(",") if part.strip()]
        except ValueError as exc:
            raise UsageError(f"{where} takes comma-separated integers, got {text!r}") from exc
    return text


def _aligned_empty(shape: tuple[int, ...], dtype: np.dtype) -> np.ndarray:
    """An uninitialised array whose data starts on a 64-byte boundary, so LiteRT binds it without copying."""
    size = int(np.prod(shape)) * dtype.itemsize
    raw = np.empty(size + 64, dtype=np.uint8)
    offset = -raw.ctypes.data % 64
    return raw[offset : offset + size].view(dtype).reshape(shape)


class _Bound:
    """The compiled model's buffers for one batch size, and how to read the output back."""

    def __init__(self, runner: "LiteRTCompiledRunner", batch: int, resized: bool) -> None:
        model = runner._model
        self.batch = batch
        self.inputs = model.create_input_buffers(0)
        self.input_array = np.empty((batch, *runner.input.shape[1:]), dtype=runner.input.dtype)
        output_shape = (batch, *runner.output.shape[1:])
        if resized:
            self.output_array = _aligned_empty(output_shape, runner.output.dtype)
            self.outputs = [runner._module.TensorBuffer.create_from_host_memory(self.output_array)]
            self.read = self.output_array.copy
        else:
            self.outputs = model.create_output_buffers(0)
            count, dtype, buffer = int(np.prod(output_shape)), runner.output.dtype, self.outputs[0]
            self.read = lambda: buffer.read(count, dtype).reshape(output_shape)
        self.run_by_index = model.run_by_index


class LiteRTCompiledRunner(Runner):
    """A .tflite file compiled by LiteRT's CompiledModel for the CPU, GPU or NPU."""

    backend = NAME

    def __init__(
        self,
        path: str | Path,
        threads: int | None = None,
        accelerator: str | None = None,
        accelerator_options: dict[str, str] | None = None,
        require_full_acceleration: bool = False,
    ) -> None:
        super().__init__(path, threads)
        accelerator = (accelerator or "cpu").lower()
        if accelerator not in ACCELERATORS:
            raise UsageError(f"unknown accelerator {accelerator!r} for the {NAME} backend; choose one of: {', '.join(ACCELERATORS)}")
        self.accelerator = accelerator
        self.accelerator_options = dict(accelerator_options or {})
        self.require_full_acceleration = require_full_acceleration
        self.fully_accelerated: bool | None = None
        self._lock = threading.Lock()
        self._bound: _Bound | None = None

    def _activate(self) -> None:
        self._module, self._version = compiled_model_module()
        options, environment_paths = parse_accelerator_options(self.accelerator, self.accelerator_options, self._module)
        self.input, self.output = self._read_tensors()
        self._model = self._compile(options, environment_paths)
        if self.require_full_acceleration and not self.fully_accelerated:
            self._release()
            raise ModelError(
                f"{self.path.name} is not fully accelerated on the {self.accelerator} (LiteRT's is_fully_accelerated() is false: "
                f"some ops run on {'builtin CPU kernels, outside XNNPACK' if self.accelerator == 'cpu' else 'the CPU'}), "
                "and full acceleration was required; run without --require-full-acceleration to allow it, or change the model"
            )
        signature = self._model.get_signature_by_index(0)
        if len(signature.get("inputs", [])) != 1 or len(signature.get("outputs", [])) != 1:
            raise ModelError(f"{self.path} is not a single-input, single-output classifier; edgeship runs those")
        compiled_batch = int(self._model.get_input_tensor_details(signature["key"])[signature["inputs"][0]]["shape"][0])
        if self.accelerator != "cpu" or self.input.fixed_batch is not None:
            # Accelerators refuse resizing: they get chunks of the batch size they were compiled for.
            self.input = dataclasses.replace(self.input, shape=(compiled_batch, *self.input.shape[1:]))
            self.output = dataclasses.replace(self.output, shape=(compiled_batch, *self.output.shape[1:]))
        with _native_output():
            # One run now, so what LiteRT prints on the first write (its process-wide environment) and the first run
            # (a GPU's kernels being built) goes to the log, and a load time includes the accelerator's set-up.
            bound = self._bound = _Bound(self, compiled_batch, resized=False)
            bound.inputs[0].write(np.zeros(bound.input_array.shape, dtype=self.input.dtype))
            bound.run_by_index(0, bound.inputs, bound.outputs)
        _ENVIRONMENT_MADE.set()

    def _read_tensors(self) -> tuple[TensorInfo, TensorInfo]:
        """Input and output with their quantization and batch signature, which CompiledModel's tensor details leave out.

        Read with the classic Interpreter of the same package (built, never allocated), as the litert backend reports them.
        """
        from ai_edge_litert.interpreter import Interpreter, OpResolverType

        try:
            with _native_output():
                interpreter = Interpreter(
                    model_path=str(self.path), experimental_op_resolver_type=OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES
                )
        except (ValueError, RuntimeError) as exc:
            detail = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise ModelError(f"{self.path} is not a valid TFLite model ({detail}); re-export it") from exc
        inputs, outputs = interpreter.get_input_details(), interpreter.get_output_details()
        if len(inputs) != 1 or len(outputs) != 1:
            raise ModelError(
                f"{self.path} has {len(inputs)} inputs and {len(outputs)} outputs; edgeship runs single-input, single-output classifiers"
            )
        return _tensor_info(inputs[0]), _tensor_info(outputs[0])

    def _compile(self, options: Any, environment_paths: dict[str, str]) -> Any:
        """CompiledModel for the accelerator (with the CPU as fallback for a GPU or NPU); loud when the accelerator is absent."""
        module = self._module
        accelerators = module.HardwareAccelerator.CPU
        if self.accelerator == "gpu":
            accelerators = module.HardwareAccelerator.GPU | module.HardwareAccelerator.CPU
        elif self.accelerator == "npu":
            accelerators = module.HardwareAccelerator.NPU | module.HardwareAccelerator.CPU
        options.hardware_accelerators = accelerators
        options.cpu_options.num_threads = self.threads or 0
        failure: Exception | None = None
        environment = model = None
        with _native_output() as lines:
            try:
                environment = module.Environment.create(options=module.EnvironmentOptions(**environment_paths))
                model = module.CompiledModel.from_file(str(self.path), environment=environment, options=options)
                self.fully_accelerated = bool(model.is_fully_accelerated())
            except (RuntimeError, ValueError) as exc:
                failure = exc
        signs = MISSING_ACCELERATOR_SIGNS.get(self.accelerator, ())
        # The GPU accelerator fails by itself when it is absent; an NPU request compiles on the CPU alone, so its
        # signs count unless the model came out fully accelerated (one compiled ahead of time needs no plugin).
        missing = any(sign in line for line in lines for sign in signs) and (
            failure is not None or (self.accelerator == "npu" and not self.fully_accelerated)
        )
        if missing or failure is not None:
            with _native_output():
                # LiteRT prints as it frees them; the failure's traceback holds LiteRT's own frames and their environment.
                model = environment = None
                if failure is not None:
                    failure.with_traceback(None)
        if missing:
            hint = GPU_INSTALL if self.accelerator == "gpu" else NPU_INSTALL
            raise BackendUnavailableError(f"LiteRT cannot use the {self.accelerator} here ({_diagnosis(lines, signs)}); {hint}") from failure
        if failure is not None:
            detail = _diagnosis(lines) or str(failure).strip().replace("\n", " ")
            if any(DYNAMIC_TENSORS_SIGN in line for line in lines):
                raise ModelError(
                    f"the {self.accelerator} accelerator did not take {self.path.name}: it has dynamic-sized tensors "
                    "(e.g. a Flatten over a dynamic batch) and LiteRT's GPU delegate needs static shapes; "
                    "export the model with a fixed batch size, or run it on the cpu"
                ) from failure
            if self.accelerator != "cpu":
                raise ModelError(f"the {self.accelerator} accelerator did not take {self.path.name} ({detail}); run it on the cpu") from failure
            raise ModelError(f"{self.path} cannot be compiled by LiteRT ({detail}); re-export it") from failure
        return model

    def placement(self) -> Placement | None:
        """The accelerator and LiteRT's full-acceleration flag (its Python API gives no per-op placement)."""
        if not self.active:
            return None
        return Placement(self.accelerator, self.fully_accelerated)

    def _release(self) -> None:
        """Drop the compiled model and its buffers; what LiteRT prints as it frees them goes to the debug log."""
        with _native_output():
            self._bound = None
            self._model = None

    def _run(self, source: np.ndarray, convert: Convert | None) -> np.ndarray:
        with self._lock:
            bound = self._bound
            if bound is None:
                raise UsageError(f"{self.path} is not loaded; activate the runner first")
            if len(source) != bound.batch:
                with _native_output():
                    self._model.resize_input_tensor(0, [len(source), *self.input.shape[1:]])
                    bound = self._bound = _Bound(self, len(source), resized=True)
            if convert is None:
                bound.inputs[0].write(source)
            else:
                convert(source, bound.input_array)
                bound.inputs[0].write(bound.input_array)
            bound.run_by_index(0, bound.inputs, bound.outputs)
            return bound.read()

    def info(self) -> RunnerInfo:
        details: dict[str, Any] = {}
        if self.fully_accelerated is not None:
            details["fully_accelerated"] = self.fully_accelerated
        if self.accelerator_options:
            details["accelerator_options"] = self.accelerator_options
        return RunnerInfo(
            backend=NAME,
            package="ai-edge-litert",
            version=getattr(self, "_version", ""),
            threads=self.threads,
            accelerator=self.accelerator,
            details=details,
        )


def create_runner(
    path: str | Path,
    format_name: str,
    threads: int | None = None,
    delegate: str | None = None,
    delegate_options: dict[str, Any] | None = None,
    providers: list[str] | None = None,
    accelerator: str | None = None,
    accelerator_options: dict[str, str] | None = None,
    require_full_acceleration: bool = False,
) -> LiteRTCompiledRunner:
    """A CompiledModel runner; delegates and providers belong to the other backends."""
    if delegate is not None or delegate_options:
        raise UsageError(f"delegates apply to the litert backend; for {NAME} choose an accelerator (--accelerator cpu|gpu|npu)")
    if providers:
        raise UsageError(f"execution providers apply to the onnxruntime backend; for {NAME} choose an accelerator (--accelerator cpu|gpu|npu)")
    return LiteRTCompiledRunner(
        path, threads=threads, accelerator=accelerator, accelerator_options=accelerator_options,
        require_full_acceleration=require_full_acceleration,
    )
