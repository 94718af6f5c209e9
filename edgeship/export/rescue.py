"""Bring a quantized file that misses its accuracy budget back within it: equalization first, then float fallback.

The rule, applied per format:
1. The plain file is exported and measured as always. Within budget: nothing else happens, so
   models that quantize well keep exactly today's file, size and speed.
2. Otherwise the model is equalized (`equalize.py`, on a copy; its float probabilities must stay
   within the fp32 gate of the original's, 1e-4) and the format exported again from it. The
   equalized file is kept only when it agrees with the Keras model on more test images than the
   plain one (measured, not assumed).
3. Still outside the budget and the format can keep layers in float (tflite-int8, onnx-int8): the
   debugger ranks the quantized tensors (`fallback.py`), the worst is kept in float with the
   layers around it, the file is made and measured again, until it is within budget, no tensor
   loses 1% of its signal or more, or the next step would pass `max_float_layers`.
The file kept is the first one within budget, else the one that agrees most with Keras. Every step
(accuracy, agreement, size, latency, layers in float) goes into the manifest.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Callable

import numpy as np

from edgeship.runtime.compare import Comparison, judge
from edgeship.errors import OutputError, UsageError
from edgeship.export.base import ExportOptions, ExportRecord
from edgeship.runtime.gates import DEFAULT_GATES, Gate

DEFAULT_MAX_FLOAT_LAYERS = 8
MIN_SIGNAL_LOST = 0.01
"""A tensor losing less than this share of its signal is not worth keeping in float: the fallback stops there."""
EQUALIZED_FLOAT_TOLERANCE = 1e-4
"""Largest |Δp| allowed between the equalized and the original float model (the fp32 parity gate)."""
RESCUABLE_PRECISIONS = ("int8", "dynamic-int8", "int16x8")
RESCUABLE_FAMILIES = ("tflite", "onnx")
"""Files the rescue can remake one step at a time (an ORT file's required-operators config is named after its file)."""
FALLBACK_RANKING = {
    "tflite": "LiteRT QuantizationDebugger per-layer statistics; kept in float by its denylisted_nodes",
    "onnx": "ONNX Runtime qdq_loss_debug activations before/after QDQ; kept in float by quantize_static nodes_to_exclude",
}
RULE = (
    "only for a file outside its budget; equalization kept when it raises agreement with Keras; "
    "then the worst-ranked tensor's layers kept in float, one step at a time, until within budget or the layer limit"
)


@dataclass(frozen=True)
class RescuePolicy:
    """Whether to rescue, the accuracy budget quantized files are held to, and how many layers may stay in float."""

    enabled: bool = True
    equalize: bool = True
    accuracy_budget_pp: float = DEFAULT_GATES["int8"].max_accuracy_drop_pp or 0.5
    min_agreement: float = DEFAULT_GATES["int8"].min_agreement
    max_float_layers: int = DEFAULT_MAX_FLOAT_LAYERS

    def __post_init__(self) -> None:
        if not np.isfinite(self.accuracy_budget_pp) or self.accuracy_budget_pp < 0:
            raise UsageError(f"--accuracy-budget must be a number of percentage points >= 0, got {self.accuracy_budget_pp}")
        if self.max_float_layers < 1:
            raise UsageError(f"--max-float-layers must be at least 1, got {self.max_float_layers}")

    def gate(self, precision: str) -> Gate:
        """The gate a file of this precision is judged by at export: the budget for int8-like files, the default otherwise."""
        gate = DEFAULT_GATES[precision]
        if precision in RESCUABLE_PRECISIONS:
            return replace(gate, min_agreement=self.min_agreement, max_accuracy_drop_pp=self.accuracy_budget_pp)
        return gate

    def record(self) -> dict[str, float]:
        return {"min_agreement": self.min_agreement, "max_accuracy_drop_pp": self.accuracy_budget_pp}


@dataclass
class Attempt:
    """One candidate file and how it measured."""

    step: str
    path: Path
    record: ExportRecord
    comparison: Comparison
    failures: list[str]
    measured: Any
    equalized: bool = False
    float_layers: list[str] = field(default_factory=list)
    latency_ms: float | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    bytes: int = 0

    def __post_init__(self) -> None:
        self.bytes = self.bytes or self.path.stat().st_size

    @property
    def passed(self) -> bool:
        return not self.failures

    def summary(self) -> dict[str, Any]:
        return {
            "step": self.step,
            "equalized": self.equalized,
            "float_layers": list(self.float_layers),
            **self.extra,
            "accuracy": self.comparison.accuracy,
            "accuracy_delta_pp": self.comparison.accuracy_delta_pp,
            "agreement": self.comparison.agreement,
            "bytes": self.bytes,
            "latency_ms": self.latency_ms,
            "within_budget": self.passed,
        }


Measure = Callable[[Path, ExportOptions], tuple[Comparison, Any]]
"""(file, options) -> its comparison with the Keras model and the runtime facts to record."""


class Rescuer:
    """Runs the rule above for each format of one export; the equalized model is made once and shared."""

    def __init__(
        self,
        policy: RescuePolicy,
        model: Any,
        make: Callable[[Any, Any, Path, ExportOptions], ExportRecord],
        measure: Measure,
        latency: Callable[[Path], float | None],
        float_probabilities: Callable[[Any], np.ndarray],
        reference_probabilities: np.ndarray,
        say: Callable[[str], None],
    ) -> None:
        self.policy = policy
        self.model = model
        self.make = make
        self.measure = measure
        self.latency = latency
        self.float_probabilities = float_probabilities
        self.reference_probabilities = reference_probabilities
        self.say = say
        self._equalization: tuple[Any, dict[str, Any]] | None = None

    def applies_to(self, export_format: Any) -> bool:
        return (
            self.policy.enabled and export_format.precision in RESCUABLE_PRECISIONS
            and export_format.family in RESCUABLE_FAMILIES and export_format.parity_measurable
        )

    def equalization(self) -> tuple[Any, dict[str, Any]]:
        """The equalized copy (None when there is nothing to equalize or it changed the float function) and its record."""
        if self._equalization is None:
            from edgeship.export.equalize import equalize

            result = equalize(self.model)
            record = result.record()
            if not result.changed:
                record["used"] = False
                record["reason"] = "no pair of layers this method can equalize"
                self._equalization = (None, record)
            else:
                difference = float(np.abs(self.float_probabilities(result.model) - self.reference_probabilities).max())
                record["float_max_abs_diff"] = difference
                if difference > EQUALIZED_FLOAT_TOLERANCE:
                    record["used"] = False
                    record["reason"] = f"the equalized float model differs by |Δp| {difference:.2e} > {EQUALIZED_FLOAT_TOLERANCE:g}"
                    self._equalization = (None, record)
                else:
                    self._equalization = (result.model, record)
        return self._equalization

    def rescue(self, export_format: Any, path: Path, options: ExportOptions, plain: Attempt) -> tuple[Attempt, dict[str, Any]]:
        """Try equalization and float fallback for a file outside its budget; move the chosen file to `path`."""
        gate = self.policy.gate(export_format.precision)
        plain.latency_ms = self.latency(plain.path)
        attempts = [plain]
        model, model_options, equalized = self.model, options, False
        equalized_model, shared = self.equalization() if self.policy.equalize else (None, {"used": False, "reason": "turned off"})
        equalization = dict(shared)
        if equalized_model is not None:
            self.say(f"{export_format.name} misses its budget ({'; '.join(plain.failures)}): trying cross-layer equalization")
            equalized_options = replace(options, made={})
            attempt = self._attempt(export_format, "equalized", equalized_model, equalized_options, gate, path, equalized=True)
            attempts.append(attempt)
            equalization["kept"] = attempt.comparison.agreement > plain.comparison.agreement
            if equalization["kept"]:
                model, model_options, equalized = equalized_model, equalized_options, True
        fallback: dict[str, Any] = {"steps": 0}
        if not any(attempt.passed for attempt in attempts) and export_format.ranker is not None:
            self._fall_back(export_format, model, model_options, gate, path, equalized, attempts, fallback)
        chosen = next((attempt for attempt in attempts if attempt.passed), None) or max(attempts, key=_goodness)
        for attempt in attempts:
            if attempt is not chosen and attempt.path != path:
                attempt.path.unlink(missing_ok=True)
        if chosen.path != path:
            os.replace(chosen.path, path)
            chosen.path = path
        record = {
            "rule": RULE,
            "budget": self.policy.record(),
            "steps": [attempt.summary() for attempt in attempts],
            "equalization": equalization,
            "fallback": fallback,
            "chosen": chosen.step,
            "float_layers": list(chosen.float_layers),
            "rescued": chosen.passed and chosen is not plain,
        }
        return chosen, record

    def _fall_back(
        self, export_format: Any, model: Any, options: ExportOptions, gate: Gate, path: Path, equalized: bool,
        attempts: list[Attempt], fallback: dict[str, Any],
    ) -> None:
        """Keep the worst-ranked tensor's layers in float, one step at a time."""
        float_layers: tuple[str, ...] = ()
        fallback["ranking"] = FALLBACK_RANKING.get(export_format.family, export_format.family)
        fallback["metric"] = "signal_lost: mean over channels of min(1, RMS quantization error / RMS value)"
        while True:
            candidates = [c for c in export_format.rank(model, options, float_layers) if c.signal_lost >= MIN_SIGNAL_LOST]
            fitting = [c for c in candidates if len(set(float_layers) | set(c.layers)) <= self.policy.max_float_layers]
            if not candidates:
                fallback["stopped"] = f"no quantized tensor left that loses {MIN_SIGNAL_LOST:.0%} of its signal or more"
                break
            if not fitting:
                fallback["stopped"] = f"the next step would keep more than {self.policy.max_float_layers} layers in float"
                break
            worst = fitting[0]
            float_layers = tuple(dict.fromkeys((*float_layers, *worst.layers)))
            step = f"fallback {fallback['steps'] + 1}"
            self.say(f"{export_format.name}: keeping {len(float_layers)} layer(s) in float ({worst.tensor!r} loses {worst.signal_lost:.0%} of its signal)")
            try:
                attempt = self._attempt(
                    export_format, step, model, replace(options, float_layers=float_layers), gate, path, equalized=equalized,
                    extra={"tensor": worst.tensor, "signal_lost": worst.signal_lost, "ops": worst.ops},
                )
            except OutputError:
                raise
            except Exception as exc:
                # e.g. LiteRT's debugger cannot make a file with no quantized op left; the steps so far stand.
                path.with_name(f".{path.stem}.{step.replace(' ', '-')}{path.suffix}").unlink(missing_ok=True)
                fallback["stopped"] = f"{step} could not be made ({type(exc).__name__}: {str(exc).strip().splitlines()[0] if str(exc).strip() else ''})"
                break
            attempts.append(attempt)
            fallback["steps"] += 1
            if attempt.passed:
                fallback["stopped"] = "within budget"
                break

    def _attempt(
        self, export_format: Any, step: str, model: Any, options: ExportOptions, gate: Gate, path: Path,
        equalized: bool, extra: dict[str, Any] | None = None,
    ) -> Attempt:
        candidate = path.with_name(f".{path.stem}.{step.replace(' ', '-')}{path.suffix}")
        record = self.make(export_format, model, candidate, replace(options, progress=None))
        comparison, measured = self.measure(candidate, options)
        attempt = Attempt(
            step, candidate, record, comparison, judge(comparison, gate), measured, equalized=equalized,
            float_layers=list(options.float_layers), extra=extra or {},
        )
        attempt.latency_ms = self.latency(candidate)
        return attempt


def _goodness(attempt: Attempt) -> tuple[bool, float, float]:
    """Within budget first, then agreement with Keras, then the smaller accuracy drop."""
    return (attempt.passed, attempt.comparison.agreement, attempt.comparison.accuracy_delta_pp)
