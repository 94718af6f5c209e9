"""The timing loop, the same on a workstation and on a device: latency percentiles, throughput, load time, memory.

Each row is one artifact x backend x threads x batch (x accelerator): the first, cold call timed
on its own, warm-up calls (not counted), then timed calls until a time budget is spent (at least
`min_runs`), p50/p90/p99 and the coefficient of variation (std/mean) from the per-call times.
Between calls, outside the timed region, the CPU clock is read from /sys/devices/system/cpu/*/cpufreq
(and `vcgencmd get_throttled` on a Raspberry Pi): a row measured while the CPU ran below its rated
clock or was throttled says so in `flags`, since such numbers are not the machine's. With a latency
budget (`--budget-ms`) a row whose p99 exceeds it fails. Peak RSS is the process's high-water mark
after the row (getrusage), so it only grows across rows. `time_callable` and `bench_callable` take any predict function, so other
references (a Keras model) get rows of the same shape.
"""

from __future__ import annotations

import glob
import os
import platform
import re
import shutil
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable

import numpy as np

from edgeship.errors import BackendUnavailableError, GateFailedError, UsageError
from edgeship.files import atomic_write_json
from edgeship.runtime.backends import FORMAT_BACKENDS, available_backends, backend_module
from edgeship.runtime.bundle import Bundle
from edgeship.runtime.classifier import Classifier
from edgeship.runtime.options import BenchOptions, ModelOptions, takes_accelerators
from edgeship.runtime.status import FAIL, HAS_RESULT, PASS, SKIPPED, label
from edgeship.runtime.tables import cell, markdown_table

BENCH_SCHEMA = "edgeship.bench/2"
"""Version 2 speaks the one status vocabulary (rows: pass/skipped); version 1 rows said ok."""


@dataclass
class Timing:
    """Per-call latency percentiles (milliseconds) and images per second over the timed runs."""

    runs: int
    p50_ms: float
    p90_ms: float
    p99_ms: float
    mean_ms: float
    throughput_ips: float
    cv: float
    first_ms: float


@dataclass
class BenchRow:
    """One measured configuration (status pass); status skipped rows carry the reason instead of numbers."""

    artifact: str
    format: str | None
    precision: str | None
    backend: str
    accelerator: str | None
    threads: int | None
    batch: int
    status: str = PASS
    runs: int | None = None
    p50_ms: float | None = None
    p90_ms: float | None = None
    p99_ms: float | None = None
    mean_ms: float | None = None
    throughput_ips: float | None = None
    cv: float | None = None
    first_ms: float | None = None
    cpu_mhz: float | None = None
    cpu_max_mhz: float | None = None
    flags: list[str] = field(default_factory=list)
    load_seconds: float | None = None
    peak_rss_mb: float | None = None
    file_bytes: int | None = None
    package: str | None = None
    version: str | None = None
    reason: str | None = None
    input: str | None = None
    """None: raw pixels given to predict; else the picture each call decodes and resizes first (the end-to-end row)."""

    @property
    def label(self) -> str:
        """The artifact, and for an end-to-end row the picture it starts from."""
        return self.artifact if self.input is None else f"{self.artifact} from {self.input}"


def time_callable(
    run: Callable[[], object], batch: int, seconds: float = 1.0, min_runs: int = 10, max_runs: int = 100_000,
    between: Callable[[], None] | None = None,
) -> Timing:
    """Time the first call alone, warm up (a tenth of the budget, at least 3 calls), then time calls until `seconds`
    and `min_runs` are both reached; `between` runs about every 0.2 s outside the timed calls."""
    started = time.perf_counter()
    run()
    first_ms = (time.perf_counter() - started) * 1e3
    warm_until = time.perf_counter() + seconds / 10
    for count in range(max_runs):
        run()
        if count >= 2 and time.perf_counter() >= warm_until:
            break
    durations = []
    clock = time.perf_counter
    deadline = clock() + seconds
    next_look = clock() + 0.2
    while len(durations) < max_runs:
        started = clock()
        run()
        finished = clock()
        durations.append(finished - started)
        if finished >= deadline and len(durations) >= min_runs:
            break
        if between is not None and finished >= next_look:
            between()
            next_look = clock() + 0.2
    values = np.array(durations) * 1e3
    p50, p90, p99 = np.percentile(values, [50, 90, 99])
    mean = float(values.mean())
    cv = float(values.std() / mean) if mean > 0 else 0.0
    return Timing(len(values), float(p50), float(p90), float(p99), mean, batch * 1e3 / mean, round(cv, 4), first_ms)


class CpuWatch:
    """The CPU clock and throttling seen while a row runs: sysfs cpufreq on Linux, `vcgencmd get_throttled` on a Pi.

    `flags()` names what makes the row's numbers not the machine's: a clock below 90% of the rated
    maximum, or throttling (under-voltage, frequency capping, temperature) now or new during the row.
    """

    THROTTLE_BITS = {0: "under-voltage", 1: "frequency capped", 2: "throttled", 3: "soft temperature limit"}

    def __init__(self, cpu_root: str = "/sys/devices/system/cpu", vcgencmd: str | None = "vcgencmd") -> None:
        self.current = sorted(glob.glob(os.path.join(glob.escape(cpu_root), "cpu[0-9]*", "cpufreq", "scaling_cur_freq")))
        self.rated = max((_read_khz(path.replace("scaling_cur_freq", "cpuinfo_max_freq")) or 0 for path in self.current), default=0) or None
        self.vcgencmd = shutil.which(vcgencmd) if vcgencmd else None
        self.lowest: float | None = None
        self.throttled_start = self._throttled()
        self.throttled_seen = 0

    def look(self) -> None:
        """Read every CPU's current clock (and the Pi's throttle state) once."""
        clocks = [khz for khz in (_read_khz(path) for path in self.current) if khz]
        if clocks:
            self.lowest = min(clocks) if self.lowest is None else min(self.lowest, *clocks)
        self.throttled_seen |= self._throttled() or 0

    def _throttled(self) -> int | None:
        if not self.vcgencmd:
            return None
        try:
            output = subprocess.run([self.vcgencmd, "get_throttled"], capture_output=True, text=True, timeout=5).stdout
        except (OSError, subprocess.SubprocessError):
            return None
        match = re.search(r"0x[0-9a-fA-F]+", output)
        return int(match.group(0), 16) if match else None

    def flags(self) -> list[str]:
        found = []
        if self.lowest is not None and self.rated and self.lowest < 0.9 * self.rated:
            found.append(f"CPU clock {self.lowest / 1000:.0f} of {self.rated / 1000:.0f} MHz")
        now = self.throttled_seen & 0xF
        new = (self.throttled_seen >> 16) & ~((self.throttled_start or 0) >> 16) & 0xF
        for bit, name in self.THROTTLE_BITS.items():
            if now >> bit & 1:
                found.append(f"{name} now")
            elif new >> bit & 1:
                found.append(f"{name} during the run")
        return found


def _read_khz(path: str) -> int | None:
    try:
        with open(path, encoding="ascii") as stream:
            return int(stream.read().strip())
    except (OSError, ValueError):
        return None


def peak_rss_mb() -> float | None:
    """The process's peak resident memory in MiB (None where the platform cannot say)."""
    try:
        import resource
    except ImportError:
        return None
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (1 << 20) if sys.platform == "darwin" else peak / 1024


def cpu_model() -> str:
    """The CPU's name: /proc/cpuinfo's model name (x86) or board model (Raspberry Pi), else platform's guess."""
    try:
        text = Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace")
    except OSError:
        text = ""
    for key in ("model name", "Model", "Hardware", "cpu model"):
        for line in text.splitlines():
            name, _, value = line.partition(":")
            if name.strip() == key and value.strip():
                return value.strip()
    return platform.processor() or platform.machine()


def machine_info() -> dict[str, Any]:
    """Where the numbers were measured: platform, CPU, cores, Python, numpy and every backend's version."""
    backends = {
        name: (f"{status.package} {status.version}" if status.available else None)
        for name, status in available_backends().items()
    }
    return {
        "platform": platform.platform(),
        "machine": platform.machine(),
        "cpu": cpu_model(),
        "cpu_count": os.cpu_count(),
        "python": platform.python_version(),
        "numpy": np.__version__,
        "backends": backends,
    }


def bench_callable(
    predict: Callable[[np.ndarray], object],
    images: np.ndarray,
    batches: Iterable[int],
    seconds: float = 1.0,
    **row_fields: Any,
) -> list[BenchRow]:
    """Rows for any predict function (one a batch size); row_fields fill the rest (artifact, backend, ...)."""
    rows = []
    for batch in batches:
        inputs = batch_of(images, batch)
        watch = CpuWatch()
        watch.look()
        timing = time_callable(lambda: predict(inputs), batch, seconds, between=watch.look)
        watch.look()
        rows.append(BenchRow(batch=batch, **row_fields, **asdict(timing), peak_rss_mb=peak_rss_mb(),
                             cpu_mhz=watch.lowest and round(watch.lowest / 1000), cpu_max_mhz=watch.rated and round(watch.rated / 1000),
                             flags=watch.flags()))
    return rows


def apply_budget(rows: list[BenchRow], budget_ms: float | None) -> list[BenchRow]:
    """Fail every measured row whose p99 exceeds the latency budget (a CI gate, as accuracy gates are)."""
    if budget_ms is not None:
        for row in rows:
            if row.status == PASS and row.p99_ms > budget_ms:
                row.status, row.reason = FAIL, f"p99 {row.p99_ms:.3f} ms > budget {budget_ms:g} ms"
    return rows


def raise_if_over_budget(rows: list[BenchRow]) -> None:
    """GateFailedError naming each row over the latency budget."""
    failing = [f"{row.artifact} ({row.backend}, {row.threads or 'default'} threads, batch {row.batch}): {row.reason}"
               for row in rows if row.status == FAIL]
    if failing:
        raise GateFailedError("latency budget exceeded by " + "; ".join(failing))


def batch_of(images: np.ndarray, batch: int) -> np.ndarray:
    """`batch` images, repeating the given ones if there are fewer."""
    if batch < 1:
        raise UsageError(f"batch sizes must be positive, got {batch}")
    repeats = -(-batch // len(images))
    return np.ascontiguousarray(np.concatenate([images] * repeats)[:batch] if repeats > 1 else images[:batch])


def bench_model(
    bundle_or_file: str | Path,
    artifacts: list[str] | None = None,
    backend: str | None = None,
    threads: Iterable[int | None] = (None,),
    batches: Iterable[int] = (1,),
    delegate: str | None = None,
    providers: list[str] | None = None,
    delegate_options: dict[str, Any] | None = None,
    seconds: float = 1.0,
    images: np.ndarray | None = None,
    verify: bool = True,
    progress: Callable[[str], None] | None = None,
    accelerator: str | None = None,
    accelerator_options: dict[str, str] | None = None,
    require_full_acceleration: bool = False,
    picture: str | Path | None = None,
) -> list[BenchRow]:
    """Bench every runnable artifact of a bundle (or one bare file) for each thread count and batch size.

    `accelerator` and its options name a litert-compiled accelerator (cpu, gpu, npu). With `picture`
    (a JPEG or PNG), each artifact and thread count gains an end-to-end row at batch 1: the picture
    decoded and brought to the model's size by the recorded rule, then classified.
    """
    accelerators = {"accelerator": accelerator, "accelerator_options": accelerator_options,
                    "require_full_acceleration": require_full_acceleration}
    path = Path(bundle_or_file)
    threads, batches = list(threads), list(batches)
    if path.is_dir():
        manifest = Bundle.open(path).manifest
        names = artifacts or [a.name for a in manifest.artifacts]
        targets = [manifest.artifact(name) for name in names]
        if images is None:
            images = golden_images(path)
    else:
        if artifacts:
            raise UsageError("artifacts name files inside a bundle; give the bundle folder, not a model file")
        targets = [None]
    rows: list[BenchRow] = []
    backends = available_backends()
    for artifact in targets:
        name = artifact.name if artifact else path.name
        if artifact is not None:
            skipped = _skip_reason(artifact, backend, delegate, backends)
            if skipped:
                rows.append(BenchRow(name, artifact.format, artifact.precision, backend or FORMAT_BACKENDS.get(artifact.format, "?"),
                                     delegate, None, 0, status=SKIPPED, reason=skipped))
                continue
        for thread_count in threads:
            started = time.perf_counter()
            options = {"artifact": artifact.name} if artifact else {}
            with Classifier.load(path, backend=backend, threads=thread_count, delegate=delegate, providers=providers,
                                 delegate_options=delegate_options, verify=verify, **accelerators, **options) as classifier:
                load_seconds = time.perf_counter() - started
                if images is None:
                    images = _blank_images(classifier)
                info = classifier.info()
                fields = {
                    "artifact": name, "format": info["format"], "precision": info["precision"], "backend": info["backend"],
                    "accelerator": info["accelerator"], "threads": thread_count, "load_seconds": round(load_seconds, 4),
                    "file_bytes": classifier.runner.path.stat().st_size, "package": info["package"], "version": info["version"],
                }
                measured = bench_callable(classifier.predict, images, batches, seconds, **fields)
                if picture is not None:
                    measured.append(_end_to_end_row(classifier, Path(picture), seconds, fields))
                for row in measured:
                    rows.append(row)
                    if progress:
                        progress(f"  {row.label} {row.backend} threads={thread_count} batch={row.batch}: "
                                 f"p50 {row.p50_ms:.3f} ms, {row.throughput_ips:,.0f} images/s")
    return rows


def _end_to_end_row(classifier: Classifier, picture: Path, seconds: float, fields: dict[str, Any]) -> BenchRow:
    """One picture file to a class, as a camera app would run it: decode, resize by the bundle's rule, predict."""
    from edgeship.runtime.images import PictureRule, load_picture
    from edgeship.runtime.preprocess import image_geometry

    height, width, _ = image_geometry(classifier.input_spec)
    rule = PictureRule.from_spec(classifier.input_spec, height, width)
    first = load_picture(picture, rule)
    width_then, height_then = first.original_size
    (row,) = bench_callable(lambda _: classifier.predict(load_picture(picture, rule).pixels), first.pixels[None], [1], seconds,
                            **fields, input=f"{picture.name} ({width_then}×{height_then})")
    return row


def bench_options(model: ModelOptions, bench: BenchOptions, progress: Callable[[str], None] | None = None) -> list[BenchRow]:
    """The rows for parsed command-line options: every artifact x backend x delegate x threads x batch.

    Backends and delegates are dimensions like threads and batch (litert,litert-compiled puts the
    Interpreter beside CompiledModel); the accelerator options go to the backends that take them.
    """
    rows: list[BenchRow] = []
    for backend in model.backends:
        accelerators = model.accelerators if takes_accelerators(backend) else {}
        for delegate in model.delegates:
            rows += bench_model(
                model.model, artifacts=model.artifacts, backend=backend, threads=model.threads, batches=bench.batches,
                delegate=delegate, providers=model.providers, delegate_options=model.delegate_options, seconds=bench.seconds,
                verify=model.verify, progress=progress, picture=bench.picture, **accelerators,
            )
    return apply_budget(rows, bench.budget_ms)


def _skip_reason(artifact: Any, backend: str | None, delegate: str | None, backends: dict[str, Any]) -> str | None:
    """Why an artifact cannot be benched with these options, or None."""
    if not artifact.has_file:
        return f"not exported: {artifact.reason or artifact.status}"
    name = backend or FORMAT_BACKENDS.get(artifact.format)
    if name is None or artifact.format not in backend_module(name).FORMATS:
        return f"the {name} backend does not run {artifact.format} files"
    if not backends[name].available:
        return backends[name].reason
    if artifact.format == "edgetpu" and delegate != "edgetpu":
        return "an edgetpu artifact runs only with --delegate edgetpu"
    return None


def golden_images(bundle: Path) -> np.ndarray:
    """The bundle's golden images, the inputs every bench row uses."""
    return Bundle.open(bundle).golden(verify=False)["images"]


def _blank_images(classifier: Classifier) -> np.ndarray:
    """Mid-grey images of the model's input shape, for a bare file with no images given."""
    return np.full((8, *classifier.input_spec.shape), 128, dtype=np.uint8)


def bench_payload(rows: list[BenchRow], machine: dict[str, Any] | None = None) -> dict[str, Any]:
    """The JSON form of a bench: schema, machine, rows."""
    return {"schema": BENCH_SCHEMA, "machine": machine or machine_info(), "rows": [asdict(row) for row in rows]}


def write_bench_json(path: str | Path, rows: list[BenchRow], machine: dict[str, Any] | None = None) -> Path:
    """Write the bench JSON atomically."""
    return atomic_write_json(path, bench_payload(rows, machine))


def format_bench_table(rows: list[BenchRow]) -> str:
    """The rows as a Markdown table."""
    table = []
    for row in rows:
        if row.status not in HAS_RESULT:
            table.append((row.label, row.backend, row.accelerator, None, None, None, None, None, None, None, None, None, None, None,
                          label(row.status, row.reason)))
            continue
        notes = "; ".join(([row.reason] if row.reason else []) + list(row.flags)) or None
        table.append((
            row.label, row.backend, row.accelerator, row.threads or "default", row.batch, cell(row.p50_ms, ".3f"),
            cell(row.p90_ms, ".3f"), cell(row.p99_ms, ".3f"), cell(row.cv, ".2f"), cell(row.first_ms, ".3f"),
            cell(row.throughput_ips, ",.0f"), cell(row.load_seconds, ".3f"), cell(row.peak_rss_mb, ".0f"), cell(row.file_bytes, ","),
            label(row.status, notes),
        ))
    return markdown_table(
        ("artifact", "backend", "accel", "threads", "batch", "p50 ms", "p90 ms", "p99 ms", "CV", "1st call ms", "images/s", "load s",
         "peak RSS MiB", "bytes", "status"),
        table,
    )


def check_runnable(rows: list[BenchRow]) -> None:
    """BackendUnavailableError when no row could run at all."""
    if rows and all(row.status not in HAS_RESULT for row in rows):
        reasons = "; ".join(sorted({f"{row.artifact}: {row.reason}" for row in rows}))
        raise BackendUnavailableError(f"nothing could be benched here: {reasons}")
