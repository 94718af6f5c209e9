"""The recommendation: per machine, the fastest artifact × backend × delegate × threads that passed the parity gates and that machine's selftest.

Reads what the earlier stages left in a run folder: verify.json (parity on the workstation),
bench.json (the workstation's bench), devices/NAME/bench.json and selftest.json (from
`edgeship device run`), and bench JSONs merged by hand. Every bench row at the chosen batch is a
candidate; a candidate is excluded, with its reason, when its artifact failed parity or this
machine's selftest, agrees less than --min-agreement, or has a p99 above --max-latency-ms. The
best of the rest by --prefer is the choice, the best with another artifact the runner-up, and the
one line of Python that loads the choice is given.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from edgeship.errors import UsageError
from edgeship.runtime.status import FAIL, LEGACY, PASS

PREFER = ("latency", "throughput", "size")
DEFAULT_BACKENDS = {"tflite": "litert", "edgetpu": "litert", "onnx": "onnxruntime"}
DEFAULT_ACCELERATORS = (None, "", "xnnpack", "cpu")


@dataclass
class Candidate:
    """One measured configuration on one machine."""

    artifact: str
    backend: str
    accelerator: str | None
    threads: int | None
    batch: int
    p50_ms: float
    p99_ms: float
    throughput_ips: float
    file_bytes: int | None
    format: str | None = None

    @property
    def label(self) -> str:
        accelerator = f" {self.accelerator}" if self.accelerator else ""
        threads = f"{self.threads} thread{'s' if self.threads != 1 else ''}" if self.threads else "default threads"
        return f"{self.artifact} · {self.backend}{accelerator} · {threads}"


@dataclass
class MachineRecommendation:
    """A machine's choice, runner-up, the excluded candidates with reasons, and the Python line for the choice."""

    machine: str
    selftest: str
    choice: Candidate | None = None
    runner_up: Candidate | None = None
    excluded: list[tuple[str, str]] = field(default_factory=list)
    python: str | None = None
    note: str | None = None

    def to_dict(self) -> dict[str, Any]:
        payload = asdict(self)
        payload["excluded"] = [{"candidate": label, "reason": reason} for label, reason in self.excluded]
        return payload


@dataclass
class Machine:
    """What one machine measured: its label, bench rows, its selftest rows (None when it has none), and the bundle path there."""

    label: str
    rows: list[dict[str, Any]]
    selftest: dict[str, dict[str, Any]] | None
    bundle: str
    note: str | None = None


def _read(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise UsageError(f"cannot read {path} ({exc}); re-create it") from exc


def _label(machine: dict[str, Any]) -> str:
    label = machine.get("label") or f"{machine.get('cpu', '?')} ({machine.get('machine', '?')})"
    return label + (" (emulated)" if machine.get("emulated") else "")


def machines_of_run(run: Path, merge: list[str | Path] | None = None, bundle: Path | None = None) -> list[Machine]:
    """The workstation, every device under RUN/devices, and merged bench JSONs, as machines."""
    bundle = bundle or run / "bundle"
    machines = []
    if (run / "bench.json").is_file():
        bench = _read(run / "bench.json")
        machines.append(Machine(_label(bench.get("machine", {})) + " (workstation)", bench.get("rows", []), None, str(bundle),
                                "parity (verify) ran on this machine and stands for its selftest"))
    for folder in sorted(p for p in (run / "devices").glob("*") if p.is_dir()) if (run / "devices").is_dir() else []:
        device = _read(folder / "device.json") if (folder / "device.json").is_file() else {}
        selftest = _read(folder / "selftest.json") if (folder / "selftest.json").is_file() else None
        selftest_rows = {row["artifact"]: row for row in selftest["rows"]} if selftest else {}
        if (folder / "bench.json").is_file():
            bench = _read(folder / "bench.json")
            machines.append(Machine(_label(bench.get("machine", {})), bench.get("rows", []), selftest_rows,
                                    device.get("remote_bundle") or "bundle"))
        else:
            reason = device.get("reason") or "no bench.json"
            machines.append(Machine(folder.name, [], selftest_rows, "bundle", f"no bench from this device: {reason}"))
    for extra in merge or []:
        bench = _read(Path(extra))
        machines.append(Machine(_label(bench.get("machine", {})), bench.get("rows", []), None, "bundle",
                                "merged bench JSON: no selftest from this machine"))
    return machines


def python_line(bundle: str, candidate: Candidate) -> str:
    """The one line that loads the choice with the runtime."""
    arguments = [repr(bundle), f"artifact={candidate.artifact!r}"]
    if candidate.format and candidate.backend != DEFAULT_BACKENDS.get(candidate.format):
        arguments.append(f"backend={candidate.backend!r}")
    if candidate.threads:
        arguments.append(f"threads={candidate.threads}")
    if candidate.accelerator not in DEFAULT_ACCELERATORS:
        if candidate.backend == "onnxruntime":
            arguments.append(f"providers={candidate.accelerator.split(',')!r}")
        else:
            arguments.append(f"delegate={candidate.accelerator!r}")
    return f"Classifier.load({', '.join(arguments)})"


def _sort_key(prefer: str):
    if prefer == "throughput":
        return lambda c: (-c.throughput_ips, c.p50_ms)
    if prefer == "size":
        return lambda c: (c.file_bytes if c.file_bytes is not None else float("inf"), c.p50_ms)
    return lambda c: (c.p50_ms, c.p99_ms)


def recommend_machine(machine: Machine, parity: dict[str, dict[str, Any]], batch: int = 1, prefer: str = "latency",
                      max_latency_ms: float | None = None, min_agreement: float | None = None) -> MachineRecommendation:
    """Judge every candidate of one machine and pick the best and a runner-up."""
    selftest_state = "not run" if machine.selftest is None else "ran"
    result = MachineRecommendation(machine.label, selftest_state, note=machine.note)
    eligible: list[Candidate] = []
    skipped_seen = set()
    for row in machine.rows:
        if row.get("input"):  # an end-to-end row (from a picture) times the same candidate with decoding added
            continue
        status = LEGACY.get(row.get("status", PASS), row.get("status"))
        if status == FAIL and row.get("batch") == batch:
            result.excluded.append((_row_candidate(row).label, f"bench: {row.get('reason')}"))
            continue
        if status != PASS:
            if status != FAIL and row["artifact"] not in skipped_seen:
                skipped_seen.add(row["artifact"])
                result.excluded.append((f"{row['artifact']} · {row.get('backend')}", f"cannot run here: {row.get('reason')}"))
            continue
        if row.get("batch") != batch:
            continue
        candidate = _row_candidate(row)
        reason = _exclusion(candidate, machine, parity, max_latency_ms, min_agreement)
        if reason:
            result.excluded.append((candidate.label, reason))
        else:
            eligible.append(candidate)
    if not machine.rows and not result.note:
        result.note = "no bench rows"
    elif machine.rows and not eligible and not any(row.get("batch") == batch for row in machine.rows):
        result.note = f"no bench rows at batch {batch}; bench with --batch {batch}"
    eligible.sort(key=_sort_key(prefer))
    if eligible:
        result.choice = eligible[0]
        result.runner_up = next((c for c in eligible[1:] if c.artifact != result.choice.artifact), eligible[1] if len(eligible) > 1 else None)
        result.python = python_line(machine.bundle, result.choice)
    return result


def _row_candidate(row: dict[str, Any]) -> Candidate:
    return Candidate(row["artifact"], row["backend"], row.get("accelerator"), row.get("threads"), row["batch"],
                     row["p50_ms"], row["p99_ms"], row["throughput_ips"], row.get("file_bytes"), row.get("format"))


def _exclusion(candidate: Candidate, machine: Machine, parity: dict[str, dict[str, Any]],
               max_latency_ms: float | None, min_agreement: float | None) -> str | None:
    """Why a candidate may not be recommended, or None."""
    if candidate.artifact == "keras":
        return "the Keras reference, not a file to deploy"
    verdict = parity.get(candidate.artifact)
    if verdict is None:
        return "no parity result (not in verify.json)"
    if verdict["status"] != PASS:
        return "parity: " + ("; ".join(verdict.get("failures") or []) or verdict.get("reason") or verdict["status"])
    agreement = (verdict.get("comparison") or {}).get("agreement")
    if min_agreement is not None and agreement is not None and agreement < min_agreement:
        return f"parity agreement {agreement:.2%} < {min_agreement:.2%}"
    if machine.selftest is not None:
        row = machine.selftest.get(candidate.artifact)
        if row is None:
            return "not in this machine's selftest"
        if row["status"] != PASS:
            return f"selftest here: {row['status']}: " + ("; ".join(row.get("failures") or []) or row.get("reason") or "")
        if min_agreement is not None and row.get("agreement") is not None and row["agreement"] < min_agreement:
            return f"selftest agreement here {row['agreement']:.2%} < {min_agreement:.2%}"
    if max_latency_ms is not None and candidate.p99_ms > max_latency_ms:
        return f"p99 {candidate.p99_ms:.3f} ms > {max_latency_ms:g} ms"
    return None


def recommend(run: str | Path, max_latency_ms: float | None = None, min_agreement: float | None = None, batch: int = 1,
              prefer: str = "latency", merge: list[str | Path] | None = None, bundle: str | Path | None = None) -> list[MachineRecommendation]:
    """A recommendation for every machine of a run folder."""
    run = Path(run)
    if prefer not in PREFER:
        raise UsageError(f"--prefer takes one of {', '.join(PREFER)}, got {prefer!r}")
    if batch < 1:
        raise UsageError(f"--batch must be a positive integer, got {batch}")
    if min_agreement is not None and not 0 <= min_agreement <= 1:
        raise UsageError(f"--min-agreement is a fraction from 0 to 1 (e.g. 0.99), got {min_agreement}")
    if max_latency_ms is not None and max_latency_ms <= 0:
        raise UsageError(f"--max-latency-ms must be positive, got {max_latency_ms}")
    if not (run / "verify.json").is_file():
        raise UsageError(f"{run} has no verify.json: run `edgeship verify BUNDLE --json {run}/verify.json` first (the parity gates decide)")
    parity = {row["artifact"]: row for row in _read(run / "verify.json")["rows"]}
    machines = machines_of_run(run, merge, Path(bundle) if bundle else None)
    if not machines:
        raise UsageError(f"{run} has no bench results: run `edgeship bench {run}/bundle --json {run}/bench.json` or `edgeship device run`")
    return [recommend_machine(machine, parity, batch, prefer, max_latency_ms, min_agreement) for machine in machines]


def format_recommendations(recommendations: list[MachineRecommendation], batch: int = 1, prefer: str = "latency") -> str:
    """The recommendation as Markdown: one table of choices, then each machine's exclusions."""
    from edgeship.runtime.tables import markdown_table

    rows = []
    for rec in recommendations:
        choice, runner = rec.choice, rec.runner_up
        rows.append([
            rec.machine,
            choice.label if choice else f"none: {rec.note or 'every candidate was excluded'}",
            f"{choice.p50_ms:.3f} / {choice.p99_ms:.3f}" if choice else None,
            f"{runner.label} ({runner.p50_ms:.3f} ms)" if runner else None,
            f"`{rec.python}`" if rec.python else None,
        ])
    lines = [f"Per machine, at batch {batch}, preferring {prefer}: the best candidate that passed the parity gates and that "
             "machine's selftest.", "",
             markdown_table(["machine", "choice", "p50 / p99 (ms)", "runner-up", "load it with"], rows), ""]
    for rec in recommendations:
        if rec.excluded or rec.note:
            lines.append(f"- **{rec.machine}**" + (f" ({rec.note})" if rec.note else "") + (":" if rec.excluded else ""))
            lines += [f"  - excluded {label}: {reason}" for label, reason in rec.excluded]
    return "\n".join(lines).rstrip() + "\n"
