"""On-device self-test: every artifact this machine can run, on the bundle's golden set, judged by the parity gates.

The golden set (golden.npz: uint8 `images`, the Keras model's `probabilities`, `labels`) travels
in the bundle, so a device checks its own results against the workstation's reference with one
command. Agreement and max |Δp| are judged with the same gates as `edgeship verify`; the accuracy
drop gate is left to verify, since on a hundred images one flipped digit is a whole point.

On an accelerator (litert-compiled's gpu or npu) the self-test also reports the placement it
finds (how fully the model was accelerated), fails when less runs on the accelerator than the
bundle records for it (`record_placement` writes that record, into the artifact's `details` in
manifest.json), and fails outputs bit-identical to the CPU path as suspect: float arithmetic on a
GPU or NPU rounds differently, so identical float outputs point to a silent CPU fallback. An
integer output (an int8 model's) quantizes those differences away, so there identical is normal.
"""

from __future__ import annotations

import json
import platform
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from edgeship.errors import BackendUnavailableError, GateFailedError, UsageError
from edgeship.files import atomic_write_json
from edgeship.manifest import MANIFEST_NAME
from edgeship.runtime.backends import backend_module
from edgeship.runtime.backends.base import Placement
from edgeship.runtime.bundle import Bundle
from edgeship.runtime.classifier import Classifier
from edgeship.runtime.compare import compare, judge
from edgeship.runtime.gates import Gate, gate_for
from edgeship.runtime.status import FAIL, PASS, SKIPPED, label
from edgeship.runtime.tables import cell, markdown_table

PLACEMENTS_KEY = "placements"
"""Where an artifact's `details` in manifest.json keep the placements it was checked on, one a backend and accelerator."""


@dataclass
class SelftestRow:
    """One artifact's result on the golden set: pass, fail (with the failing numbers) or skipped (with why)."""

    artifact: str
    precision: str
    status: str
    backend: str | None = None
    images: int = 0
    agreement: float | None = None
    max_abs_diff: float | None = None
    failures: list[str] = field(default_factory=list)
    reason: str | None = None
    placement: dict[str, Any] | None = None
    recorded_placement: dict[str, Any] | None = None

    @property
    def placement_text(self) -> str:
        """The placement found, with the recorded one beside it when there is one."""
        if self.placement is None:
            return "-"
        text = Placement(**self.placement).describe()
        if self.recorded_placement is not None:
            text += f" (recorded: {'full' if self.recorded_placement['fully_accelerated'] else 'partial'})"
        return text


@dataclass
class SelftestReport:
    """Every artifact's row; passed when none failed and at least one ran."""

    bundle: str
    rows: list[SelftestRow]

    @property
    def passed(self) -> bool:
        return any(row.status == PASS for row in self.rows) and not any(row.status == FAIL for row in self.rows)

    def to_dict(self) -> dict[str, Any]:
        return {"bundle": self.bundle, "passed": self.passed, "rows": [asdict(row) for row in self.rows]}


def selftest_bundle(
    bundle: str | Path,
    backend: str | None = None,
    verify: bool = True,
    gates: dict[str, Gate] | None = None,
    accelerator: str | None = None,
    accelerator_options: dict[str, str] | None = None,
    require_full_acceleration: bool = False,
    record_placement: bool = False,
) -> SelftestReport:
    """Run every artifact this machine can load on the golden images and judge it against the golden probabilities.

    With an accelerator (litert-compiled's cpu, gpu or npu), each row also reports its placement and
    is judged against the placement the bundle records; `record_placement` records those of the
    rows that pass.
    """
    opened = Bundle.open(bundle)
    golden = opened.golden(verify)
    images, reference = golden["images"], golden["probabilities"]
    labels = golden["labels"] if "labels" in golden else reference.argmax(axis=1)
    # Full acceleration is judged per row below, so one partly accelerated file does not stop the others.
    accelerators = {"accelerator": accelerator, "accelerator_options": accelerator_options}
    rows = []
    for artifact in opened.manifest.artifacts:
        if not artifact.has_file:
            rows.append(SelftestRow(artifact.name, artifact.precision, SKIPPED, reason=f"not exported: {artifact.reason}"))
            continue
        if backend is not None and artifact.format not in backend_module(backend).FORMATS:
            rows.append(SelftestRow(artifact.name, artifact.precision, SKIPPED, reason=f"the {backend} backend does not run {artifact.format} files"))
            continue
        try:
            with Classifier.load(opened.folder, artifact=artifact.name, backend=backend, verify=verify, **accelerators) as classifier:
                probabilities = classifier.predict_proba(images)
                backend_name = classifier.runner.backend
                placement = classifier.runner.placement()
                integer_output = classifier.runner.output.dtype.kind in "iu"
        except BackendUnavailableError as exc:
            rows.append(SelftestRow(artifact.name, artifact.precision, SKIPPED, reason=str(exc)))
            continue
        comparison = compare(reference, probabilities, labels, opened.manifest.labels)
        gate = (gates or {}).get(artifact.precision) or gate_for(artifact.precision)
        failures = judge(comparison, gate, accuracy=False)
        failures += placement_failures(opened.folder, artifact, backend, backend_name, placement, probabilities, integer_output,
                                       bool(failures), accelerator_options, require_full_acceleration, images)
        recorded = recorded_placement(artifact.details, backend_name, placement)
        rows.append(SelftestRow(artifact.name, artifact.precision, FAIL if failures else PASS, backend_name,
                                comparison.images, comparison.agreement, comparison.max_abs_diff, failures,
                                placement=placement.to_dict() if placement else None,
                                recorded_placement=recorded.to_dict() if recorded else None))
    report = SelftestReport(str(opened.folder), rows)
    if record_placement and report.passed:
        write_placements(opened.folder, report)
    return report


def placement_failures(
    folder: Path, artifact: Any, backend: str | None, backend_name: str, placement: Placement | None, probabilities: np.ndarray,
    integer_output: bool, gate_failed: bool, accelerator_options: dict[str, str] | None, require_full_acceleration: bool,
    images: np.ndarray,
) -> list[str]:
    """What the placement adds to a row's failures: less acceleration than required or recorded, a suspect CPU fallback."""
    if placement is None:
        return []
    failures = []
    if placement.accelerator == "gpu" and gate_failed and artifact.precision == "fp32" \
            and "gpu.enforce_f32" not in (accelerator_options or {}):
        failures.append("LiteRT's GPU computes in fp16 unless --accelerator-option gpu.enforce_f32=true")
    if require_full_acceleration and placement.fully_accelerated is False:
        failures.append(f"{placement.describe()}, and full acceleration was required")
    recorded = recorded_placement(artifact.details, backend_name, placement)
    if recorded is not None and placement.less_than(recorded):
        failures.append(f"less runs on the {placement.accelerator} than recorded: {placement.describe()}, "
                        f"the bundle records {recorded.describe()}")
    if placement.accelerator != "cpu":
        with Classifier.load(folder, artifact=artifact.name, backend=backend, verify=False, accelerator="cpu") as on_cpu:
            if suspect_identical(probabilities, on_cpu.predict_proba(images), integer_output):
                failures.append(f"suspect: outputs bit-identical to the CPU path, which a {placement.accelerator} "
                                "does not give (a silent CPU fallback?)")
    return failures


def suspect_identical(accelerated: np.ndarray, on_cpu: np.ndarray, integer_output: bool) -> bool:
    """Whether an accelerator's outputs are suspiciously the CPU path's, bit for bit.

    A GPU or NPU rounds float arithmetic differently (fused multiply-adds, fp16, other reduction
    orders), so identical float outputs mean the CPU most likely ran the model. An integer output
    (an int8 model's) rounds those differences away: there identical outputs are normal (measured:
    MobileNetV2 int8 on LiteRT's GPU accelerator matches the CPU exactly).
    """
    return not integer_output and np.array_equal(accelerated, on_cpu)


def recorded_placement(details: dict[str, Any], backend: str, found: Placement | None) -> Placement | None:
    """The placement the bundle records for this backend and the accelerator found, or None."""
    if found is None:
        return None
    for entry in details.get(PLACEMENTS_KEY, []):
        if entry.get("backend") == backend and entry.get("accelerator") == found.accelerator:
            return Placement(entry["accelerator"], entry.get("fully_accelerated"))
    return None


def write_placements(bundle: Path, report: SelftestReport) -> list[str]:
    """Record the placement of every passing row in manifest.json (atomically); returns the artifacts recorded.

    The manifest is edited as JSON, so every field this version does not know stays as it was.
    """
    passing = {row.artifact: row for row in report.rows if row.status == PASS and row.placement is not None}
    if not passing:
        raise UsageError("no artifact passed with a placement to record; record with --backend litert-compiled (and --accelerator)")
    path = bundle / MANIFEST_NAME
    raw = json.loads(path.read_text(encoding="utf-8"))
    checked_on = {"machine": platform.node(), "processor": platform.machine(),
                  "date": datetime.now(timezone.utc).strftime("%Y-%m-%d")}
    for entry in raw["artifacts"]:
        row = passing.get(entry.get("name"))
        if row is None:
            continue
        details = entry.setdefault("details", {})
        kept = [p for p in details.get(PLACEMENTS_KEY, [])
                if (p.get("backend"), p.get("accelerator")) != (row.backend, row.placement["accelerator"])]
        details[PLACEMENTS_KEY] = kept + [{"backend": row.backend, **row.placement, **checked_on}]
    atomic_write_json(path, raw)
    return sorted(passing)


def format_selftest_table(report: SelftestReport) -> str:
    """The self-test as a Markdown table; with a placement column when an accelerator reported one."""
    placed = any(row.placement is not None for row in report.rows)
    return markdown_table(
        ("artifact", "precision", "backend", *(("placement",) if placed else ()), "images", "agreement", "max abs Δp", "status"),
        [
            (row.artifact, row.precision, row.backend, *((row.placement_text if row.placement else None,) if placed else ()),
             row.images or None, cell(row.agreement, ".2%"), cell(row.max_abs_diff, ".2e"),
             label(row.status, "; ".join(row.failures) or row.reason))
            for row in report.rows
        ],
    )


def raise_if_failed(report: SelftestReport) -> None:
    """GateFailedError naming each failing artifact and its numbers; BackendUnavailableError if nothing ran."""
    failing = [f"{row.artifact}: {'; '.join(row.failures)}" for row in report.rows if row.status == FAIL]
    if failing:
        raise GateFailedError("self-test failed for " + ", ".join(failing))
    if not any(row.status == PASS for row in report.rows):
        reasons = "; ".join(f"{row.artifact}: {row.reason}" for row in report.rows)
        raise BackendUnavailableError(f"no artifact of {report.bundle} could run here: {reasons}")
