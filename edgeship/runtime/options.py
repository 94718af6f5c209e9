"""The options predict, bench and selftest share, parsed once into typed objects (as Polygraphy's argument groups do).

The command line of a device (`python -m edgeship.runtime`) and of the workstation (`edgeship
predict|bench`) add the same argument groups and build the same objects, so each check lives
here once: fractions like 1/255, comma lists of positive integers, KEY=VALUE pairs.
"""

from __future__ import annotations

import argparse
import math
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any

from edgeship.errors import UsageError


def number(text: str) -> float:
    """A finite number or a fraction such as 1/255 or 1/127.5 (an argparse type)."""
    numerator, slash, denominator = text.strip().partition("/")
    try:
        value = float(Fraction(numerator)) / (float(Fraction(denominator)) if slash else 1.0)
    except (ValueError, ZeroDivisionError) as exc:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number or a fraction like 1/255") from exc
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"{text!r} is not a finite number")
    return value


def channel_values(text: str) -> float | list[float]:
    """'0.5' -> 0.5; '0.485,0.456,0.406' -> a list, one value per channel (an argparse type)."""
    try:
        values = [number(part) for part in text.split(",")]
    except argparse.ArgumentTypeError as exc:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number or comma-separated numbers like 0.485,0.456,0.406") from exc
    return values[0] if len(values) == 1 else values


def resize_rule(text: str) -> Any:
    """'bilinear,crop', 'area', 'pad' -> manifest.Resize (an argparse type)."""
    from edgeship.manifest import Resize

    try:
        return Resize.parse(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from exc


def resize_rule_or_none(text: str) -> Any:
    """As resize_rule, and 'none' -> None: pictures of another size are refused."""
    return None if text.strip().lower() == "none" else resize_rule(text)


def positive_number(text: str) -> float:
    """A positive number or fraction, e.g. 0.00392 or 1/255 (an argparse type)."""
    value = number(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"{text!r} must be positive")
    return value


def positive_list(text: str, option: str) -> list[int]:
    """'1,2,4' -> [1, 2, 4], refusing anything but positive integers."""
    try:
        values = [int(part) for part in text.split(",") if part.strip()]
    except ValueError as exc:
        raise UsageError(f"{option} takes comma-separated positive integers like 1,2,4, got {text!r}") from exc
    if not values or any(value < 1 for value in values):
        raise UsageError(f"{option} takes comma-separated positive integers like 1,2,4, got {text!r}")
    return values


def names(text: str | None) -> list[str] | None:
    """'a, b' -> ['a', 'b']; None or empty -> None."""
    parts = [part.strip() for part in (text or "").split(",") if part.strip()]
    return parts or None


def key_values(pairs: list[str] | None, option: str) -> dict[str, str] | None:
    """KEY=VALUE pairs into a dict (None when there are none)."""
    options = {}
    for pair in pairs or []:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise UsageError(f"{option} takes KEY=VALUE, got {pair!r}")
        options[key] = value
    return options or None


def accelerator_arguments(args: argparse.Namespace) -> dict[str, Any]:
    """Classifier.load's accelerator keyword arguments (litert-compiled's --accelerator and its options), only those given."""
    given: dict[str, Any] = {}
    if getattr(args, "accelerator", None) is not None:
        given["accelerator"] = args.accelerator
    options = key_values(getattr(args, "accelerator_option", None), "--accelerator-option")
    if options:
        given["accelerator_options"] = options
    if getattr(args, "require_full_acceleration", False):
        given["require_full_acceleration"] = True
    return given


def takes_accelerators(backend: str | None) -> bool:
    """Whether a backend takes accelerators by name (litert-compiled); None (not chosen yet) passes them on to be checked."""
    from edgeship.runtime.backends import backend_module

    return backend is None or hasattr(backend_module(backend), "ACCELERATORS")


@dataclass
class ModelOptions:
    """Which model and how to run it: bundle or file, artifact(s), backend, accelerators, threads, integrity, bare-file scaling."""

    model: Path
    artifacts: list[str] | None = None
    backend: str | None = None
    delegates: list[str | None] = field(default_factory=lambda: [None])
    delegate_options: dict[str, str] | None = None
    providers: list[str] | None = None
    threads: list[int | None] = field(default_factory=lambda: [None])
    verify: bool = True
    preprocessing: dict[str, Any] = field(default_factory=dict)
    accelerators: dict[str, Any] = field(default_factory=dict)
    """litert-compiled's accelerator, its options and require_full_acceleration, as given."""

    @classmethod
    def from_args(cls, args: argparse.Namespace, several: bool = False) -> "ModelOptions":
        """From the model argument group; several=True (bench) takes comma lists of artifacts, delegates and threads."""
        if several:
            artifacts, delegates = names(args.artifact), names(args.delegate) or [None]
            threads: list[int | None] = list(positive_list(args.threads, "--threads"))
        else:
            artifacts, delegates = ([args.artifact] if args.artifact else None), [args.delegate]
            if args.threads is not None and args.threads < 1:
                raise UsageError(f"--threads must be at least 1, got {args.threads}")
            threads = [args.threads]
        preprocessing = {name: getattr(args, name) for name in ("scale", "mean", "std", "layout", "logits", "color", "recipe")
                         if getattr(args, name, None) is not None}
        return cls(
            model=Path(args.model), artifacts=artifacts, backend=args.backend, delegates=delegates,
            delegate_options=key_values(args.delegate_option, "--delegate-option"), providers=names(args.provider),
            threads=threads, verify=not args.no_verify, preprocessing=preprocessing, accelerators=accelerator_arguments(args),
        )

    @property
    def artifact(self) -> str | None:
        """The one artifact of a single-model command (predict)."""
        return self.artifacts[0] if self.artifacts else None

    @property
    def backends(self) -> list[str | None]:
        """The backends of a bench (--backend litert,litert-compiled compares them), or [None] for each format's own."""
        return names(self.backend) or [None]

    def load_arguments(self, delegate: str | None = None, threads: int | None = None) -> dict[str, Any]:
        """Classifier.load keyword arguments (without the model and artifact) for one delegate and thread count."""
        return {
            "backend": self.backend, "threads": threads, "delegate": delegate, "providers": self.providers,
            "verify": self.verify, "delegate_options": self.delegate_options, **self.preprocessing, **self.accelerators,
        }


@dataclass
class BenchOptions:
    """What the timing loop takes besides the model: batch sizes, time per row, where the JSON goes and which machine it is."""

    batches: list[int]
    seconds: float
    json: Path | None = None
    machine_label: str | None = None
    emulated: bool = False
    budget_ms: float | None = None
    picture: Path | None = None

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> "BenchOptions":
        if args.seconds <= 0:
            raise UsageError(f"--seconds must be positive, got {args.seconds}")
        if args.budget_ms is not None and args.budget_ms <= 0:
            raise UsageError(f"--budget-ms must be positive milliseconds, got {args.budget_ms}")
        picture = getattr(args, "picture", None)
        if picture is not None and not Path(picture).is_file():
            raise UsageError(f"--picture {picture} is not a file; give a JPEG or PNG to time the end-to-end row on")
        return cls(positive_list(args.batch, "--batch"), args.seconds, args.json, args.machine_label, args.emulated, args.budget_ms,
                   Path(picture) if picture is not None else None)

    def machine(self) -> dict[str, Any]:
        """This machine's facts, with the label and emulation flag given on the command line."""
        from edgeship.runtime.bench import machine_info

        info = machine_info()
        if self.machine_label:
            info["label"] = self.machine_label
        if self.emulated:
            info["emulated"] = True
        return info
