"""`edgeship device run` and `device check` across many devices at once, each one isolated from the others.

asyncio runs every device in one thread; a semaphore bounds how many are worked on at once and each
device has its own time limit, so one device that is down, slow or failing ends as one row of the
table while the others go on. Results land in OUT/NAME/ (selftest.json, bench.json, device.json),
OUT being RUN/devices by default, where `edgeship report RUN` and `edgeship recommend RUN` find them.
"""

from __future__ import annotations

import asyncio
import logging
import re
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

from edgeship.devices.inventory import Device
from edgeship.devices.remote import DeviceSession, Steps, bundle_files
from edgeship.devices.transport import transport_for
from edgeship.devices.wheels import Wheels
from edgeship.errors import DeviceError, EdgeshipError
from edgeship.files import sha256_file
from edgeship.runtime.status import ERROR, FAIL, LEGACY, PASS, label
from edgeship.runtime.tables import markdown_table

log = logging.getLogger(__name__)

SETUP_STAGES = ("connect", "probe", "install", "copy")


@dataclass
class RunOptions:
    """How `device run` works each device."""

    jobs: int = 16
    timeout: float = 900.0
    accept_new_host_keys: bool = False
    bench_options: list[str] = field(default_factory=lambda: ["--threads", "1", "--batch", "1", "--seconds", "1"])
    edgeship_wheel: str | None = None
    picture: Path | None = None
    """A JPEG or PNG to copy to each device and bench end to end from (decode, resize, predict)."""


@dataclass
class DeviceResult:
    """One device's outcome: status pass/fail/error with the reason, and where it stopped."""

    name: str
    address: str
    status: str = ERROR
    reason: str | None = None
    stage: str = "connect"
    selftest: str | None = None
    fastest: str | None = None
    p50_ms: float | None = None
    remote_bundle: str | None = None
    wall_seconds: float = 0.0
    facts: dict[str, Any] = field(default_factory=dict)
    steps: Steps = field(default_factory=Steps)
    files: dict[str, str] = field(default_factory=dict)

    @property
    def setup_failed(self) -> bool:
        """It could not be reached or set up (as opposed to running and failing)."""
        return self.status == ERROR and self.stage in SETUP_STAGES

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def default_out(bundle: Path) -> Path:
    """Where device results go: RUN/devices, RUN being the bundle's parent folder."""
    return bundle.resolve().parent / "devices"


def fastest_row(bench: dict[str, Any]) -> dict[str, Any] | None:
    """The measured model-only row (not an end-to-end one from a picture) with the lowest p50 at the smallest batch."""
    rows = [row for row in bench.get("rows", []) if not row.get("input")
            and LEGACY.get(row.get("status", PASS), row.get("status")) == PASS and row.get("p50_ms") is not None]
    if not rows:
        return None
    smallest = min(row["batch"] for row in rows)
    return min((row for row in rows if row["batch"] == smallest), key=lambda row: row["p50_ms"])


def row_label(row: dict[str, Any]) -> str:
    accelerator = f" {row['accelerator']}" if row.get("accelerator") else ""
    threads = f", {row['threads']}t" if row.get("threads") else ""
    return f"{row['artifact']} ({row['backend']}{accelerator}{threads})"


def label_machine(bench: dict[str, Any], device: Device, emulated: str | None = None) -> dict[str, Any]:
    """Name the bench's machine after the device, so the report shows it as its own machine (and says when it is emulated)."""
    machine = bench.setdefault("machine", {})
    machine["device"] = device.name
    machine["label"] = f"{device.name} ({machine.get('cpu', '?')}, {machine.get('machine', '?')})"
    if emulated:  # the guest reads the host's /proc/cpuinfo: name the emulation instead
        machine["emulated"] = emulated
        machine["label"] = f"{device.name} ({emulated})"
    return bench


def picture_path(workdir: str, picture: Path, sha256: str) -> str:
    """Where a picture to bench from goes on a device: under its content's hash, keeping its name (the end-to-end row shows it)."""
    name = re.sub(r"[^A-Za-z0-9_.-]", "_", picture.name).lstrip(".") or "picture"
    return f"{workdir}/pictures/{sha256[:16]}/{name}"


def selftest_status(local: Path | None) -> str:
    """pass / fail / error from the self-test's JSON: no JSON, or nothing that could run, is an error."""
    import json

    if local is None:
        return ERROR
    report = json.loads(local.read_text(encoding="utf-8"))
    if report.get("passed"):
        return PASS
    return FAIL if any(row.get("status") == FAIL for row in report.get("rows", [])) else ERROR


async def run_device(device: Device, bundle: Path, files: dict[str, str], out: Path, wheels: Wheels, options: RunOptions,
                     locks: dict[tuple, asyncio.Lock], say: Callable[[str], None],
                     picture: tuple[Path, str] | None = None) -> DeviceResult:
    """Every step on one device, within its time limit; never raises for the device's own trouble.

    `picture` (a local file and its sha256) is copied to the device unless it is there already and
    given to the bench, which adds an end-to-end row per artifact.
    """
    import json

    from edgeship.files import atomic_write_json

    result = DeviceResult(device.name, device.address)
    folder = out / device.name
    for stale in ("selftest.json", "bench.json"):
        (folder / stale).unlink(missing_ok=True)
    started = time.perf_counter()

    async def timed(stage: str, work, add: bool = False):
        result.stage = stage
        begun = time.perf_counter()
        try:
            return await work
        finally:
            spent = time.perf_counter() - begun
            result.steps.seconds[stage] = round(spent + (result.steps.seconds.get(stage, 0.0) if add else 0.0), 3)

    async def steps() -> None:
        transport = transport_for(device, options.accept_new_host_keys)
        try:
            await timed("connect", transport.open())
            session = DeviceSession(transport, device, result.steps)
            remote_picture = picture_path(session.workdir, *picture) if picture else None
            pictures = {remote_picture: picture[0]} if picture else {}
            result.facts = await timed("probe", session.arrive(bundle, files, {remote_picture: picture[1]} if picture else {}))
            key = (device.kind, device.host, device.port, device.folder, session.venv)
            async with locks.setdefault(key, asyncio.Lock()):
                result.steps.venv = await timed("install", session.ensure_runtime(wheels, images=picture is not None))
            say(f"{device.name}: runtime {result.steps.venv}")
            result.remote_bundle = await timed("copy", session.sync_bundle(bundle, files))
            remote_bundle = result.remote_bundle
            copied = await timed("copy", session.put_missing(pictures), add=True)
            say(f"{device.name}: bundle in place ({result.steps.bundle_files_copied} of {len(files)} files copied"
                + (f", picture {'copied' if copied else 'in place'})" if pictures else ")"))
            bench_options = options.bench_options + (["--picture", remote_picture] if picture else [])
            done, remote = await timed("selftest+bench", session.selftest_and_bench(remote_bundle, bench_options))
            local_selftest, local_bench = await timed("fetch", asyncio.gather(
                session.fetch(remote["selftest"], folder / "selftest.json", missing_ok=True),
                session.fetch(remote["bench"], folder / "bench.json", missing_ok=True)))
            result.stage = "selftest"
            result.selftest = selftest_status(local_selftest)
            if local_selftest is not None:
                result.files["selftest"] = str(local_selftest)
            say(f"{device.name}: selftest {result.selftest}")
            if result.selftest != PASS:
                result.status, result.reason = result.selftest, f"selftest: {_error_line(done)}"
                if result.selftest == ERROR:
                    return
            result.stage = "bench"
            if local_bench is None:
                result.status, result.reason = ERROR, f"bench: {_error_line(done)}"
                return
            bench = label_machine(json.loads(local_bench.read_text(encoding="utf-8")), device, getattr(transport, "emulated", None))
            atomic_write_json(local_bench, bench)
            result.files["bench"] = str(local_bench)
            best = fastest_row(bench)
            if best:
                result.fastest, result.p50_ms = row_label(best), best["p50_ms"]
            if result.selftest == PASS:
                if done.returncode == 0:
                    result.status, result.reason = PASS, None
                else:
                    result.status, result.reason = (FAIL if done.returncode == 1 else ERROR), f"bench: {_error_line(done)}"
        finally:
            await transport.close()

    try:
        await asyncio.wait_for(steps(), options.timeout)
    except asyncio.TimeoutError:
        result.status, result.reason = ERROR, f"did not finish within {options.timeout:.0f} s (at {result.stage})"
    except EdgeshipError as exc:
        result.status, result.reason = ERROR, str(exc).removeprefix(f"{device.name}: ")
    except Exception as exc:  # one device's surprise must not stop the others; the row says what happened
        log.debug("%s failed", device.name, exc_info=True)
        result.status, result.reason = ERROR, f"{type(exc).__name__}: {exc}"
    result.wall_seconds = round(time.perf_counter() - started, 3)
    if result.status == ERROR:
        say(f"{device.name}: {result.reason}")
    atomic_write_json(folder / "device.json", result.to_dict())
    return result


def _error_line(done) -> str:
    """The one line a runtime command printed about its failure."""
    lines = [line for line in (done.stderr + "\n" + done.stdout).splitlines() if "error" in line.lower()]
    return (lines[-1].split("error: ", 1)[-1] if lines else done.tail()).strip()


async def run_all(devices: list[Device], bundle: Path, out: Path, options: RunOptions, say: Callable[[str], None]) -> list[DeviceResult]:
    """Run every device at once, at most options.jobs at a time."""
    files = bundle_files(bundle)
    picture = (options.picture, sha256_file(options.picture)) if options.picture else None
    wheels = Wheels(options.edgeship_wheel)
    gate = asyncio.Semaphore(options.jobs)
    locks: dict[tuple, asyncio.Lock] = {}

    async def bounded(device: Device) -> DeviceResult:
        async with gate:
            return await run_device(device, bundle, files, out, wheels, options, locks, say, picture)

    return list(await asyncio.gather(*(bounded(device) for device in devices)))


def run_devices(devices: list[Device], bundle: Path, out: Path, options: RunOptions,
                say: Callable[[str], None] | None = None) -> list[DeviceResult]:
    """The synchronous entry: results in the order the devices were given."""
    say = say or (lambda line: print(line, file=sys.stderr, flush=True))
    return asyncio.run(run_all(devices, bundle, out, options, say))


def exit_code(results: list[DeviceResult]) -> int:
    """2 when a device could not be reached or set up, else 1 when a selftest or bench did not pass, else 0."""
    if any(result.setup_failed for result in results):
        return 2
    return 1 if any(result.status != PASS for result in results) else 0


def status_cell(status: str | None) -> str | None:
    return label(status) if status else None


def results_table(results: list[DeviceResult]) -> str:
    """The closing table: device, selftest, fastest artifact, p50, status and reason."""
    rows = [
        [result.name, status_cell(result.selftest), result.fastest, f"{result.p50_ms:.3f}" if result.p50_ms is not None else None,
         status_cell(result.status), result.reason]
        for result in results
    ]
    return markdown_table(["device", "selftest", "fastest artifact", "p50 (ms)", "status", "reason"], rows)


def failure_summary(results: list[DeviceResult]) -> str | None:
    """One line naming the devices that could not be reached or set up, or whose selftest or bench did not pass."""
    unreachable = [result.name for result in results if result.setup_failed]
    failing = [result.name for result in results if result.status != PASS and not result.setup_failed]
    parts = []
    if unreachable:
        parts.append(f"could not reach or set up: {', '.join(unreachable)}")
    if failing:
        parts.append(f"selftest or bench did not pass: {', '.join(failing)}")
    return "; ".join(parts) or None


async def check_all(devices: list[Device], options: RunOptions) -> list[dict[str, Any]]:
    """Facts of every device at once (connect + one helper call each); an unreachable one carries its error."""
    gate = asyncio.Semaphore(options.jobs)

    async def one(device: Device) -> dict[str, Any]:
        async with gate:
            transport = transport_for(device, options.accept_new_host_keys)
            try:
                await asyncio.wait_for(transport.open(), options.timeout)
                session = DeviceSession(transport, device)
                return {"device": device.name, "address": device.address, "extra": device.extra,
                        "facts": await asyncio.wait_for(session.probe(), options.timeout)}
            except (DeviceError, asyncio.TimeoutError) as exc:
                reason = str(exc).removeprefix(f"{device.name}: ") or f"no answer within {options.timeout:.0f} s"
                return {"device": device.name, "address": device.address, "extra": device.extra, "error": reason}
            finally:
                await transport.close()

    return list(await asyncio.gather(*(one(device) for device in devices)))
