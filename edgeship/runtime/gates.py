"""Parity gates per precision (compare.judge applies them), shared by the workstation's `edgeship verify` and the device's `selftest`.

Defaults follow what users of the field expect from a faithful export: float32 files must match the
Keras model to rounding (Polygraphy's default compare is similar), float16 may flip a few borderline
images, int8 may lose at most half a percentage point of accuracy.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from edgeship.errors import UsageError


@dataclass(frozen=True)
class Gate:
    """Bounds an artifact must meet against its reference; None means not checked."""

    min_agreement: float
    max_abs_diff: float | None = None
    max_accuracy_drop_pp: float | None = None


DEFAULT_GATES: dict[str, Gate] = {
    "fp32": Gate(min_agreement=0.999, max_abs_diff=1e-4),
    "fp16": Gate(min_agreement=0.995),
    "dynamic-int8": Gate(min_agreement=0.99, max_accuracy_drop_pp=0.5),
    "int8": Gate(min_agreement=0.99, max_accuracy_drop_pp=0.5),
    "int16x8": Gate(min_agreement=0.99, max_accuracy_drop_pp=0.5),
}


def gate_for(precision: str) -> Gate:
    """The default gate of a precision (fp32, fp16, dynamic-int8, int8)."""
    if precision not in DEFAULT_GATES:
        raise UsageError(f"no gate for precision {precision!r}; known: {', '.join(DEFAULT_GATES)}")
    return DEFAULT_GATES[precision]


def parse_gate_overrides(overrides: list[str]) -> dict[str, Gate]:
    """Parse `PRECISION:KEY=VALUE` options (e.g. `int8:min_agreement=0.98`) into gates."""
    gates = dict(DEFAULT_GATES)
    fields = Gate.__dataclass_fields__
    for text in overrides:
        precision, _, assignment = text.partition(":")
        key, _, value = assignment.partition("=")
        if precision not in gates or key not in fields or not value:
            raise UsageError(
                f"bad --gate {text!r}; use PRECISION:KEY=VALUE with PRECISION in {', '.join(gates)} "
                f"and KEY in {', '.join(fields)}"
            )
        try:
            number = float(value)
        except ValueError as exc:
            raise UsageError(f"bad --gate {text!r}: {value!r} is not a number") from exc
        gates[precision] = replace(gates[precision], **{key: number})
    return gates
