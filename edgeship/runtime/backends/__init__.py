"""The backend registry: a name to its module, chosen by name or by an artifact's format.

A backend module has NAME, FORMATS, PACKAGES, INSTALL, probe() and create_runner() (which checks its own accelerator options); adding one is
a new file and a line here. A backend that takes accelerators by name (--accelerator) also has
ACCELERATORS. Modules are imported only when asked for, so a device with one backend never touches
the other.
"""

from __future__ import annotations

import importlib
import importlib.util
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

from edgeship.errors import BackendUnavailableError, UsageError
from edgeship.runtime.backends.base import Runner

BACKENDS = {
    "litert": "edgeship.runtime.backends.litert",
    "litert-compiled": "edgeship.runtime.backends.litert_compiled",
    "onnxruntime": "edgeship.runtime.backends.onnxruntime",
}
FORMAT_BACKENDS = {"tflite": "litert", "edgetpu": "litert", "onnx": "onnxruntime", "ort": "onnxruntime"}
SUFFIX_FORMATS = {".tflite": "tflite", ".onnx": "onnx", ".ort": "ort"}


@dataclass
class BackendStatus:
    """Whether a backend can run here: its package and version, or why not and how to install it."""

    name: str
    available: bool
    formats: tuple[str, ...]
    package: str | None = None
    version: str | None = None
    accelerators: list[str] = field(default_factory=list)
    reason: str | None = None


def backend_module(name: str) -> ModuleType:
    """The module of a backend by name, or a UsageError listing the names."""
    if name not in BACKENDS:
        raise UsageError(f"unknown backend {name!r}; choose one of: {', '.join(BACKENDS)}")
    return importlib.import_module(BACKENDS[name])


def backend_for_format(format_name: str) -> str:
    """The backend that runs an artifact format."""
    if format_name not in FORMAT_BACKENDS:
        raise UsageError(f"no backend runs format {format_name!r}; known formats: {', '.join(FORMAT_BACKENDS)}")
    return FORMAT_BACKENDS[format_name]


def installed(name: str) -> bool:
    """Whether a package the backend can use is installed, found without importing it."""
    return any(importlib.util.find_spec(package) is not None for package in backend_module(name).PACKAGES)


def backend_status(name: str) -> BackendStatus:
    """Probe one backend: imports its package, never raises for a missing one."""
    module = backend_module(name)
    try:
        found: dict[str, Any] = module.probe()
    except BackendUnavailableError as exc:
        return BackendStatus(name, False, module.FORMATS, reason=str(exc))
    return BackendStatus(name, True, module.FORMATS, **found)


def available_backends() -> dict[str, BackendStatus]:
    """Every registered backend with whether it runs on this machine."""
    return {name: backend_status(name) for name in BACKENDS}


def create_runner(
    path: str | Path,
    format_name: str,
    backend: str | None = None,
    threads: int | None = None,
    delegate: str | None = None,
    delegate_options: dict[str, Any] | None = None,
    providers: list[str] | None = None,
    accelerator: str | None = None,
    accelerator_options: dict[str, str] | None = None,
    require_full_acceleration: bool = False,
) -> Runner:
    """A runner for a model file: the backend named, or the one its format needs; accelerator options checked.

    `accelerator` (cpu, gpu, npu), its options and `require_full_acceleration` belong to backends with
    ACCELERATORS (litert-compiled); delegates to litert, providers to onnxruntime.
    """
    name = backend or backend_for_format(format_name)
    module = backend_module(name)
    if format_name not in module.FORMATS:
        raise UsageError(f"the {name} backend cannot run a {format_name} model; use {backend_for_format(format_name)}")
    if threads is not None and (not isinstance(threads, int) or threads < 1):
        raise UsageError(f"threads must be a positive integer, got {threads!r}")
    options: dict[str, Any] = {"threads": threads, "delegate": delegate, "delegate_options": delegate_options, "providers": providers}
    if accelerator is not None or accelerator_options or require_full_acceleration:
        if not hasattr(module, "ACCELERATORS"):
            with_accelerators = ", ".join(other for other in BACKENDS if hasattr(backend_module(other), "ACCELERATORS"))
            raise UsageError(
                f"accelerators by name (--accelerator, --accelerator-option, --require-full-acceleration) apply to the "
                f"{with_accelerators} backend; for {name} choose a {'delegate' if name == 'litert' else 'provider'}"
            )
        options.update(accelerator=accelerator, accelerator_options=accelerator_options,
                       require_full_acceleration=require_full_acceleration)
    return module.create_runner(path, format_name, **options)
