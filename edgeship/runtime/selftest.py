"""On-device self-test: every artifact this machine can run, on the bundle's golden set, judged by the parity gates.

The golden set (golden.npz: uint8 `images`, the Keras model's `probabilities`, `labels`) travels
in the bundle, so a device checks its own results against the workstation's reference with one
command. Agreement and max |Δp| are judged with the same gates as `edgeship verify`; the accuracy
drop gate is left to verify, since on a hundred images one flipped digit is a whole point.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any


from edgeship.errors import BackendUnavailableError, GateFailedError
from edgeship.runtime.backends import backend_module
from edgeship.runtime.bundle import Bundle
from edgeship.runtime.classifier import Classifier
from edgeship.runtime.compare import compare, judge
from edgeship.runtime.gates import Gate, gate_for
from edgeship.runtime.status import FAIL, PASS, SKIPPED, label
from edgeship.runtime.tables import cell, markdown_table


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
) -> SelftestReport:
    """Run every artifact this machine can load on the golden images and judge it against the golden probabilities."""
    opened = Bundle.open(bundle)
    golden = opened.golden(verify)
    images, reference = golden["images"], golden["probabilities"]
    labels = golden["labels"] if "labels" in golden else reference.argmax(axis=1)
    rows = []
    for artifact in opened.manifest.artifacts:
        if not artifact.has_file:
            rows.append(SelftestRow(artifact.name, artifact.precision, SKIPPED, reason=f"not exported: {artifact.reason}"))
            continue
        if backend is not None and artifact.format not in backend_module(backend).FORMATS:
            rows.append(SelftestRow(artifact.name, artifact.precision, SKIPPED, reason=f"the {backend} backend does not run {artifact.format} files"))
            continue
        try:
            with Classifier.load(opened.folder, artifact=artifact.name, backend=backend, verify=verify) as classifier:
                probabilities = classifier.predict_proba(images)
                backend_name = classifier.runner.backend
        except BackendUnavailableError as exc:
            rows.append(SelftestRow(artifact.name, artifact.precision, SKIPPED, reason=str(exc)))
            continue
        comparison = compare(reference, probabilities, labels, opened.manifest.labels)
        gate = (gates or {}).get(artifact.precision) or gate_for(artifact.precision)
        failures = judge(comparison, gate, accuracy=False)
        rows.append(SelftestRow(artifact.name, artifact.precision, FAIL if failures else PASS, backend_name,
                                comparison.images, comparison.agreement, comparison.max_abs_diff, failures))
    return SelftestReport(str(opened.folder), rows)


def format_selftest_table(report: SelftestReport) -> str:
    """The self-test as a Markdown table."""
    return markdown_table(
        ("artifact", "precision", "backend", "images", "agreement", "max abs Δp", "status"),
        [
            (row.artifact, row.precision, row.backend, row.images or None, cell(row.agreement, ".2%"), cell(row.max_abs_diff, ".2e"),
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
