"""The Runner interface every backend implements: activate once, describe tensors, run batches, release.

Modelled on Polygraphy's runners: the interpreter or session is built once in `activate()`.
`infer()` runs a batch already in the model's dtype and shape, checked first here in the base
class against the model's own metadata, so every backend refuses a bad batch with the same message.
`infer_converted()` is the unchecked hot path the Classifier uses after it has brought the batch
to shape itself: the caller's preprocessing is written straight into the backend's input buffer
where the backend has one, which saves a copy of every batch.
"""

from __future__ import annotations

import abc
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np

from edgeship.errors import InputError, ModelError
from edgeship.manifest import Quantization

Convert = Callable[[np.ndarray, np.ndarray], None]
"""convert(source, out): write the model input for `source` (same leading size) into `out`."""


@dataclass(frozen=True)
class TensorInfo:
    """A model input or output as the backend sees it; a batch dimension of -1 means any size."""

    name: str
    dtype: np.dtype
    shape: tuple[int, ...]
    quantization: Quantization | None = None

    @property
    def fixed_batch(self) -> int | None:
        """The batch size the model insists on, or None when any batch size works."""
        return self.shape[0] if self.shape and self.shape[0] > 0 else None

    def to_dict(self) -> dict[str, Any]:
        quantization = None
        if self.quantization is not None:
            quantization = {"scale": self.quantization.scale, "zero_point": self.quantization.zero_point}
        return {"name": self.name, "dtype": self.dtype.name, "shape": list(self.shape), "quantization": quantization}


@dataclass(frozen=True)
class Placement:
    """Where a model runs: the accelerator, and how much of the model it took, as far as the backend can say.

    `fully_accelerated` is the backend's own flag (LiteRT's is_fully_accelerated()); None when it cannot say.
    """

    accelerator: str
    fully_accelerated: bool | None

    def describe(self) -> str:
        """`gpu: fully accelerated`, `gpu: not fully accelerated (some ops on the CPU)` or `gpu: unknown`."""
        if self.fully_accelerated is None:
            return f"{self.accelerator}: placement unknown"
        if self.fully_accelerated:
            return f"{self.accelerator}: fully accelerated"
        rest = "builtin CPU kernels" if self.accelerator == "cpu" else "the CPU"
        return f"{self.accelerator}: not fully accelerated (some ops on {rest})"

    def less_than(self, recorded: "Placement") -> bool:
        """Whether less runs on the accelerator now than `recorded` says ran there (same accelerator, full before, not now)."""
        return recorded.accelerator == self.accelerator and recorded.fully_accelerated is True and self.fully_accelerated is False

    def to_dict(self) -> dict[str, Any]:
        return {"accelerator": self.accelerator, "fully_accelerated": self.fully_accelerated}


@dataclass
class RunnerInfo:
    """What a runner actually runs on: for benchmark rows and error messages."""

    backend: str
    package: str
    version: str
    threads: int | None
    accelerator: str | None
    details: dict[str, Any] = field(default_factory=dict)


class Runner(abc.ABC):
    """One model file on one backend; build once, run many batches, release."""

    backend = "base"

    def __init__(self, path: str | Path, threads: int | None = None) -> None:
        self.path = Path(path)
        self.threads = threads
        self.active = False
        self.input: TensorInfo
        self.output: TensorInfo

    def activate(self) -> "Runner":
        """Build the interpreter or session (once) and read the model's tensor metadata."""
        if not self.active:
            if not self.path.is_file():
                raise ModelError(f"model file {self.path} not found")
            self._activate()
            self.active = True
            if self.input.fixed_batch is None:
                self.infer_converted = self._run  # type: ignore[method-assign]
        return self

    def release(self) -> None:
        """Free the interpreter or session; the runner can be activated again."""
        if self.active:
            self._release()
            self.active = False
            self.__dict__.pop("infer_converted", None)

    def __enter__(self) -> "Runner":
        return self.activate()

    def __exit__(self, *exc_info: object) -> None:
        self.release()

    def infer(self, batch: np.ndarray) -> np.ndarray:
        """Run a batch already in the model's dtype and shape (checked first); returns the raw output (N, ...)."""
        self.check_input(batch)
        return self._infer(batch, None)

    def infer_converted(self, source: np.ndarray, convert: Convert | None) -> np.ndarray:
        """Run `source` shaped (N, *model dims) unchecked; `convert` writes the model input into the backend's buffer.

        With convert=None, `source` is already the model input. activate() rebinds this to the
        backend's own run method when the model takes any batch size, to save a call per batch.
        """
        return self._infer(source, convert)

    def check_input(self, batch: Any) -> None:
        """Refuse a batch whose type, dtype or shape does not match the model's input, the same way on every backend."""
        expected = self.input
        if not isinstance(batch, np.ndarray):
            raise InputError(f"model input must be a numpy array, got {type(batch).__name__}")
        if batch.dtype != expected.dtype:
            raise InputError(f"model input must be {expected.dtype.name}, got {batch.dtype.name}")
        if batch.ndim != len(expected.shape) or any(
            want > 0 and got != want for got, want in zip(batch.shape[1:], expected.shape[1:])
        ):
            want = ", ".join("N" if i == 0 else str(d) for i, d in enumerate(expected.shape))
            raise InputError(f"model input must have shape ({want}), got {tuple(batch.shape)}")
        if batch.shape[0] == 0:
            raise InputError("the batch is empty; give at least one image")

    def _infer(self, source: np.ndarray, convert: Convert | None) -> np.ndarray:
        """Run whole batches, or chunks of the model's fixed batch size (the last one padded)."""
        fixed = self.input.fixed_batch
        if fixed is None or len(source) == fixed:
            return self._run(source, convert)
        outputs = []
        for start in range(0, len(source), fixed):
            chunk = source[start : start + fixed]
            count = len(chunk)
            if count < fixed:
                padding = np.zeros((fixed - count, *chunk.shape[1:]), dtype=chunk.dtype)
                chunk = np.concatenate([chunk, padding])
            outputs.append(self._run(chunk, convert)[:count])
        return np.concatenate(outputs)

    @abc.abstractmethod
    def _activate(self) -> None:
        """Build the backend object; set self.input and self.output."""

    @abc.abstractmethod
    def _release(self) -> None:
        """Drop the backend object."""

    @abc.abstractmethod
    def _run(self, source: np.ndarray, convert: Convert | None) -> np.ndarray:
        """Run one batch the model accepts as is (its fixed size, or any size if dynamic)."""

    def placement(self) -> Placement | None:
        """Where the active model runs, for backends that can tell (None for those that cannot)."""
        return None

    @abc.abstractmethod
    def info(self) -> RunnerInfo:
        """The backend, its version, threads and accelerator in use."""
