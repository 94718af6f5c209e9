"""On-device self-test: every artifact this machine can run, on the bundle's golden set, judged by the parity gates.

The golden set (golden.npz: uint8 `images`, the Keras model's `probabilities`, `labels`) travels
in the bundle, so a device checks its own results against the workstation's reference with one
command. Agreement and max |Δp| are judged with the same gates as `edgeship verify`; the accuracy
drop gate is left to verify, since on a hundred images one flipped digit is a whole point.
"""

from __future__ import annotations

import zipfile
import zlib
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from edgeship.errors import BackendUnavailableError, BundleError, GateFailedError
from edgeship.manifest import load_manifest, resolve_in_bundle
from edgeship.runtime.backends import backend_module
from edgeship.runtime.classifier import Classifier, verify_file
from edgeship.runtime.gates import Gate, gate_for, judge

GOLDEN_KEYS = ("images", "probabilities")


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
        return any(row.status == "pass" for row in self.rows) and not any(row.status == "fail" for row in self.rows)

    def to_dict(self) -> dict[str, Any]:
        return {"bundle": self.bundle, "passed": self.passed, "rows": [asdict(row) for row in self.rows]}


def load_golden(bundle: Path, verify: bool = True) -> dict[str, np.ndarray]:
    """The bundle's golden images and reference probabilities, sha256-checked unless verify=False."""
    manifest = load_manifest(bundle)
    if not manifest.golden:
        raise BundleError(f"{bundle} has no golden set (manifest.golden); re-export it with this edgeship to self-test")
    path = resolve_in_bundle(bundle, manifest.golden["file"])
    if not path.is_file():
        raise BundleError(f"{manifest.golden['file']} is missing from {bundle}; copy the whole bundle folder")
    if verify:
        verify_file(path, manifest.golden["sha256"])
    try:
        with np.load(path, allow_pickle=False) as golden:
            arrays = {key: golden[key] for key in golden.files}
    except (ValueError, OSError, EOFError, zipfile.BadZipFile, zlib.error) as exc:
        raise BundleError(f"{path} is not a readable .npz ({exc}); re-export the bundle") from exc
    missing = [key for key in GOLDEN_KEYS if key not in arrays]
    if missing:
        raise BundleError(f"{path} lacks {', '.join(missing)}; re-export the bundle")
    return arrays


def selftest_bundle(
    bundle: str | Path,
    backend: str | None = None,
    verify: bool = True,
    gates: dict[str, Gate] | None = None,
) -> SelftestReport:
    """Run every artifact this machine can load on the golden images and judge it against the golden probabilities."""
    bundle = Path(bundle)
    manifest = load_manifest(bundle)
    golden = load_golden(bundle, verify)
    images, reference = golden["images"], golden["probabilities"].astype(np.float64)
    rows = []
    for artifact in manifest.artifacts:
        if not artifact.ok:
            rows.append(SelftestRow(artifact.name, artifact.precision, "skipped", reason=f"not exported: {artifact.reason}"))
            continue
        if backend is not None and artifact.format not in backend_module(backend).FORMATS:
            rows.append(SelftestRow(artifact.name, artifact.precision, "skipped", reason=f"the {backend} backend does not run {artifact.format} files"))
            continue
        try:
            with Classifier.load(bundle, artifact=artifact.name, backend=backend, verify=verify) as classifier:
                probabilities = classifier.predict_proba(images).astype(np.float64)
                backend_name = classifier.runner.backend
        except BackendUnavailableError as exc:
            rows.append(SelftestRow(artifact.name, artifact.precision, "skipped", reason=str(exc)))
            continue
        agreement = float((probabilities.argmax(axis=1) == reference.argmax(axis=1)).mean())
        max_abs_diff = float(np.abs(probabilities - reference).max())
        gate = (gates or {}).get(artifact.precision) or gate_for(artifact.precision)
        failures = judge(gate, agreement, max_abs_diff)
        rows.append(SelftestRow(artifact.name, artifact.precision, "fail" if failures else "pass", backend_name,
                                len(images), agreement, max_abs_diff, failures))
    return SelftestReport(str(bundle), rows)


def format_selftest_table(report: SelftestReport) -> str:
    """The self-test as a Markdown table."""
    lines = ["| artifact | precision | backend | images | agreement | max abs Δp | status |", "|---|---|---|---|---|---|---|"]
    for row in report.rows:
        if row.status == "skipped":
            lines.append(f"| {row.artifact} | {row.precision} | - | - | - | - | skipped: {row.reason} |")
            continue
        verdict = row.status + (": " + "; ".join(row.failures) if row.failures else "")
        lines.append(f"| {row.artifact} | {row.precision} | {row.backend} | {row.images} | {row.agreement:.2%} | "
                     f"{row.max_abs_diff:.2e} | {verdict} |")
    return "\n".join(lines)


def raise_if_failed(report: SelftestReport) -> None:
    """GateFailedError naming each failing artifact and its numbers; BackendUnavailableError if nothing ran."""
    failing = [f"{row.artifact}: {'; '.join(row.failures)}" for row in report.rows if row.status == "fail"]
    if failing:
        raise GateFailedError("self-test failed for " + ", ".join(failing))
    if not any(row.status == "pass" for row in report.rows):
        reasons = "; ".join(f"{row.artifact}: {row.reason}" for row in report.rows)
        raise BackendUnavailableError(f"no artifact of {report.bundle} could run here: {reasons}")
