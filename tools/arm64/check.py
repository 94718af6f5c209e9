"""Check that the slim runtime on an emulated Raspberry Pi OS (Bookworm arm64) answers as on x86: `python -m tools.arm64.check`.

On a bundle exported on x86 (`--bundle`, or the seed MLP trained and exported here with the dev
venv), copied into the emulated root's home as onto a device: `python -m edgeship.runtime
selftest`, then `predict --json` of every TFLite artifact on 1,000 test images on both machines,
compared with the runtime's comparator (max |dp|, argmax agreement >= 99.9% by default);
tflite-fp32 and tflite-int8 must run and agree, another TFLite artifact the Pi's interpreter
cannot load (selftest skips it) is reported. Then `bench --machine-label ... --emulated`, so the
report shows an emulated arm64 row: these timings are qemu's, never a Raspberry Pi's. Prints a
summary and writes arm64-check.json (statuses pass/fail/error/skipped, agreement, max |dp|,
timings, cache hits).

Not testable under emulation (qemu-user is what fails; their aarch64 wheels target real hardware):
ai-edge-litert 2.3 (`edgeship[litert]`) dies with SIGSEGV when it creates its interpreter, and
onnxruntime 1.32 (`edgeship[onnx]`) dies with SIGSEGV while loading its native module, under
qemu-user 7.2 with any -cpu model. `--probe-unsupported` installs those extras into the same root
and predicts with them again, to see whether that still holds.

Exit codes: 0 passed; 1 arm64 and x86 disagree beyond the gate, a required artifact does not run on
the Pi's interpreter, or a runtime command fails under emulation; 2 the check could not run; 77 skipped.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import shlex
import shutil
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any, Iterator

import numpy as np

from edgeship.devices.inventory import Device
from edgeship.devices.transport import LocalTransport, QemuArm64Transport
from edgeship.errors import DeviceError, EdgeshipError
from edgeship.files import atomic_path, atomic_write_json
from edgeship.runtime.bundle import Bundle
from edgeship.runtime.compare import compare, judge
from edgeship.runtime.gates import Gate
from edgeship.runtime.status import ERROR, FAIL, PASS, SKIPPED, label
from tools.arm64 import REPO
from tools.arm64.process import CheckError, Skip, append_log, run, say, tail
from tools.arm64.rootfs import DEFAULT_CACHE, PYTHON, cache_lock, debian_mirror, ensure_host_tools, ensure_root
from tools.arm64.wheels import build_edgeship_wheel, install_runtime

SKIP_EXIT = 77
GATE_EXIT = 1
ERROR_EXIT = 2
EXIT_CODES = {PASS: 0, FAIL: GATE_EXIT, SKIPPED: SKIP_EXIT}
DEFAULT_OUT = REPO / "artifacts" / "arm64-check"
REQUIRED_ARTIFACTS = ("tflite-fp32", "tflite-int8")
DEFAULT_EXPORT = ("tflite-fp32", "tflite-fp16", "tflite-dynamic", "tflite-int8")
NOT_TESTABLE = {
    "litert": "ai-edge-litert 2.3: SIGSEGV in Interpreter() (creating the C++ interpreter) under qemu-user 7.2",
    "onnx": "onnxruntime 1.32: SIGSEGV while loading onnxruntime_pybind11_state under qemu-user 7.2",
}
PROBES = {"litert": ("litert", "tflite"), "onnx": ("onnxruntime", "onnx")}
SELFTEST_JSON = "arm64-selftest.json"
BENCH_JSON = "arm64-emulated-bench.json"


@dataclass
class Result:
    """Everything the check measured, written as arm64-check.json."""

    status: str = ERROR
    reason: str = ""
    emulated: str = ""
    host: dict[str, str] = field(default_factory=dict)
    target: dict[str, str] = field(default_factory=dict)
    mirror: str = ""
    bundle: str = ""
    images: int = 0
    min_agreement: float = 0.999
    artifacts: dict[str, dict[str, Any]] = field(default_factory=dict)
    runtime_cli: dict[str, dict[str, Any]] = field(default_factory=dict)
    selftest_json: str = ""
    bench_json: str = ""
    emulated_latency: dict[str, dict[str, Any]] = field(default_factory=dict)
    not_testable_under_emulation: dict[str, dict[str, Any]] = field(default_factory=dict)
    cache: dict[str, bool] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)


@dataclass
class Target:
    """The prepared emulated Pi: the cached root and its details, the wheel cache, edgeship's wheel and the installed packages."""

    root: Path
    details: dict[str, str]
    wheels: Path
    wheel: Path
    versions: dict[str, str]


@contextlib.contextmanager
def timed(result: Result, stage: str) -> Iterator[None]:
    """Record how long a stage took."""
    start = time.perf_counter()
    try:
        yield
    finally:
        result.timings[stage] = round(time.perf_counter() - start, 2)


def x86_machine() -> LocalTransport:
    """This machine as the reference device: the dev venv's Python in the checkout, with the environment the check runs in."""
    return LocalTransport(Device("x86", kind="local", folder=str(REPO), python=sys.executable), environment=dict(os.environ))


def emulated_pi(root: Path, home: Path, cpu: str, extra: str, site: Path) -> QemuArm64Transport:
    """The Bookworm root as the device `edgeship device run` reaches for kind "qemu-arm64", its runtime in `site`."""
    device = Device("emulated-pi", kind="qemu-arm64", folder=str(home), root=str(root), cpu=cpu, python=PYTHON, extra=extra)
    return QemuArm64Transport(device, site=site)


def bench_label(cpu: str) -> str:
    """The machine label of the emulated bench JSON; the report adds "(emulated)"."""
    return f"arm64 Raspberry Pi OS Bookworm, qemu {cpu}"


async def runtime_cli(machine: LocalTransport, arguments: list[str], what: str, log: Path) -> dict[str, Any]:
    """Run `python -m edgeship.runtime ...` on a machine: its exit code (None: killed by a signal), time and output."""
    command = f"{machine.python_command(machine.device.python)} -m edgeship.runtime {shlex.join(arguments)}"
    start = time.perf_counter()
    done = await machine.run(command)
    append_log(log, command, done.stdout + done.stderr, done.returncode)
    return {
        "returncode": done.returncode,
        "seconds": round(time.perf_counter() - start, 2),
        "stdout": done.stdout,
        "output_tail": tail(done.stdout + done.stderr, 8),
    }


def exit_text(returncode: int | None) -> str:
    return "killed by a signal" if returncode is None else f"exit {returncode}"


def succeeded(outcome: dict[str, Any], what: str) -> dict[str, Any]:
    """The outcome of a runtime command that must succeed, else CheckError with its last lines."""
    if outcome["returncode"] != 0:
        raise CheckError(f"{what} failed ({exit_text(outcome['returncode'])}):\n{outcome['output_tail']}")
    return outcome


async def backend_packages(machine: LocalTransport, what: str, log: Path) -> dict[str, str]:
    """`python -m edgeship.runtime backends --json` as {backend: "package version"} for the available ones."""
    outcome = succeeded(await runtime_cli(machine, ["backends", "--json"], what, log), what)
    statuses = json.loads(outcome["stdout"])
    return {name: f"{status['package']} {status['version']}" for name, status in statuses.items() if status["available"]}


def save_test_set(count: int, path: Path) -> np.ndarray:
    """Save the first `count` test images of the bundled MNIST sample as a .npy; return their labels."""
    from edgeship.data import load_dataset

    dataset = load_dataset("mnist-sample")
    np.save(path, dataset.x_test[:count])
    return dataset.y_test[:count]


async def predictions(machine: LocalTransport, bundle: str, artifact: str, images: str, what: str, log: Path) -> tuple[np.ndarray, str, dict[str, Any]]:
    """`predict --json` of one artifact on every test image: the probabilities, the backend and the command's outcome."""
    outcome = succeeded(await runtime_cli(machine, ["predict", bundle, images, "--artifact", artifact, "--top-k", "1", "--json"], what, log), what)
    payload = json.loads(outcome.pop("stdout"))
    return np.array([row["probabilities"] for row in payload["predictions"]], dtype=np.float64), payload["backend"], outcome


def compare_artifact(x86: np.ndarray, arm64: np.ndarray, labels: np.ndarray, class_names: list[str], min_agreement: float) -> dict[str, Any]:
    """The runtime's comparison of arm64 with x86 on the same images, judged on argmax agreement: status, reason, figures."""
    if x86.shape != arm64.shape:
        raise CheckError(f"x86 gave probabilities of shape {x86.shape}, arm64 {arm64.shape}; they must answer for the same images")
    comparison = compare(x86, arm64, labels, class_names)
    failures = judge(comparison, Gate(min_agreement=min_agreement), accuracy=False)
    return {
        "status": FAIL if failures else PASS,
        "reason": "; ".join(failures) or None,
        "images": comparison.images,
        "agreement": comparison.agreement,
        "mismatches": round((1 - comparison.agreement) * comparison.images),
        "max_abs_diff": comparison.max_abs_diff,
        "mean_abs_diff": comparison.mean_abs_diff,
        "accuracy_delta_pp": comparison.accuracy_delta_pp,
    }


def emulated_latency(bench: Path) -> dict[str, dict[str, Any]]:
    """Single-image p50 per artifact from the emulated bench JSON (the fewest threads measured)."""
    rows = [row for row in json.loads(bench.read_text(encoding="utf-8"))["rows"] if row["status"] == PASS and row["batch"] == 1]
    latency = {}
    for row in sorted(rows, key=lambda row: row["threads"] or 0, reverse=True):
        latency[row["artifact"]] = {"p50_ms": row["p50_ms"], "p90_ms": row["p90_ms"], "threads": row["threads"], "batch": 1}
    return latency


def given_bundle(bundle: str | None) -> Path | None:
    """The --bundle folder, checked before any slow step."""
    if bundle is None:
        return None
    path = Path(bundle).resolve()
    if not (path / "manifest.json").is_file():
        raise CheckError(f"--bundle {bundle} is not a bundle (no manifest.json); give a folder written by `edgeship export`")
    return path


def ensure_bundle(bundle: Path | None, out: Path, log: Path) -> Bundle:
    """The bundle to check: the one given, or the seed MLP trained and exported here with the dev venv."""
    if bundle is None:
        run_folder, bundle = out / "mlp-run", out / "bundle"
        say("training the seed MLP and exporting its TFLite bundle with the dev venv")
        edgeship = [sys.executable, "-m", "edgeship.cli"]
        run([*edgeship, "train", "--model", "mlp", "--dataset", "mnist-sample", "--epochs", "5", "--seed", "0", "--out", str(run_folder)],
            "edgeship train", log=log, cwd=REPO)
        run([*edgeship, "export", str(run_folder / "model.keras"), "--formats", ",".join(DEFAULT_EXPORT), "--out", str(bundle)],
            "edgeship export", log=log, cwd=REPO)
    try:
        return Bundle.open(bundle)
    except EdgeshipError as exc:
        raise CheckError(f"{bundle}: {exc}") from exc


async def put_bundle(machine: LocalTransport, bundle: Bundle, remote: str = "bundle") -> str:
    """Copy the files a device needs (manifest, exported artifacts, golden set) into `remote` on the machine, as onto a device."""
    manifest = bundle.manifest
    names = ["manifest.json", *(artifact.file for artifact in manifest.artifacts if artifact.has_file)]
    if manifest.golden:
        names.append(manifest.golden["file"])
    folders = sorted({str(PurePosixPath(remote, name).parent) for name in names})
    done = await machine.run(f"mkdir -p {shlex.join(folders)}")
    if done.returncode != 0:
        raise CheckError(f"{machine.device.name}: cannot create {remote}/ ({done.tail()})")
    for name in names:
        await machine.put(bundle.folder / name, f"{remote}/{name}")
    return remote


async def fetch(machine: LocalTransport, remote: str, local: Path) -> Path:
    """Copy a file the machine wrote to `local`, atomically."""
    with atomic_path(local) as temporary:
        await machine.get(remote, temporary)
    return local


async def probe_unsupported(target: Target, cpu: str, bundle: Bundle, remote_bundle: str, images: str, work: Path, log: Path) -> dict[str, dict[str, Any]]:
    """Install edgeship[litert] and edgeship[onnx] into the emulated root and predict with each, to see whether qemu still crashes."""
    findings = {}
    for extra, (backend, file_format) in PROBES.items():
        site = work / f"site-{extra}"
        versions, _ = install_runtime(target.wheel, extra, site, target.wheels, log)
        artifact = next((a.name for a in bundle.manifest.artifacts if a.format == file_format and a.status == PASS), None)
        arguments = ["predict", remote_bundle, images, "--artifact", artifact, "--backend", backend, "--json"] if artifact else ["backends", "--json"]
        outcome = await runtime_cli(emulated_pi(target.root, work / "home", cpu, extra, site), arguments, f"edgeship[{extra}] under qemu", log)
        findings[extra] = {
            "documented": NOT_TESTABLE[extra],
            "versions": versions,
            "command": " ".join(["python -m edgeship.runtime", *arguments[:1], *(["--artifact", artifact] if artifact else [])]),
            "returncode": outcome["returncode"],
            "crashed": outcome["returncode"] in (None, 139) or "signal 11" in outcome["output_tail"],
            "output_tail": outcome["output_tail"],
        }
    return findings


def prepare(args: argparse.Namespace, result: Result, work: Path, logs: Path) -> Target:
    """Host tools, the Bookworm root and `edgeship[tflite]` for arm64 in work/site, from the cache where it has them."""
    with timed(result, "host_tools"):
        installed = ensure_host_tools()
    result.cache["host_tools"] = not installed
    qemu = shutil.which("qemu-aarch64-static")
    result.host["qemu"] = run([qemu, "--version"], "qemu-aarch64-static --version").stdout.split("\n")[0]
    result.mirror = debian_mirror()
    cache = Path(args.cache).expanduser()
    with cache_lock(cache):
        with timed(result, "root"):
            root, result.cache["root"], details = ensure_root(cache, result.mirror, qemu, logs)
        wheels = cache / "wheels"
        wheels.mkdir(exist_ok=True)
        with timed(result, "edgeship_wheel"):
            wheel, result.cache["build_wheels"] = build_edgeship_wheel(wheels, work, logs / "pip.log")
        with timed(result, "install_runtime"):
            versions, result.cache["runtime_wheels"] = install_runtime(wheel, "tflite", work / "site", wheels, logs / "pip.log")
    return Target(root, details, wheels, wheel, versions)


async def runnable_artifacts(emulator: QemuArm64Transport, bundle: Bundle, remote_bundle: str, result: Result, out: Path, log: Path) -> list[str]:
    """Run selftest on the emulated Pi; the TFLite artifacts it runs (those it skips are recorded: an error when required)."""
    artifacts = [a.name for a in bundle.manifest.artifacts if a.format == "tflite" and a.status == PASS]
    if not artifacts:
        raise CheckError(f"{bundle.folder} has no TFLite artifact that exported fine; export tflite-fp32 and tflite-int8")
    outcome = await runtime_cli(emulator, ["selftest", remote_bundle, "--json", SELFTEST_JSON], "arm64 `selftest` under qemu", log)
    result.runtime_cli["selftest"] = outcome
    try:
        selftest = await fetch(emulator, SELFTEST_JSON, out / SELFTEST_JSON)
    except DeviceError as exc:
        raise CheckError(f"arm64 `selftest` wrote no JSON ({exit_text(outcome['returncode'])}):\n{outcome['output_tail']}") from exc
    result.selftest_json = str(selftest)
    rows = {row["artifact"]: row for row in json.loads(selftest.read_text(encoding="utf-8"))["rows"]}
    runnable = []
    for artifact in artifacts:
        row = rows.get(artifact, {})
        if row.get("status") == SKIPPED:
            status = ERROR if artifact in REQUIRED_ARTIFACTS else SKIPPED
            result.artifacts[artifact] = {"status": status, "reason": f"not runnable with edgeship[tflite] on the Pi: {row.get('reason')}"}
        else:
            runnable.append(artifact)
    return runnable


async def check(args: argparse.Namespace, result: Result, out: Path, work: Path) -> None:
    """The whole check; fills `result` as it goes."""
    logs, runtime_log = out / "logs", out / "logs" / "runtime.log"
    given = given_bundle(args.bundle)
    result.min_agreement = args.min_agreement
    result.host = {"machine": platform.machine(), "python": platform.python_version(), "cpus": str(os.cpu_count())}
    result.not_testable_under_emulation = {extra: {"documented": text} for extra, text in NOT_TESTABLE.items()}
    target = prepare(args, result, work, logs)
    host = x86_machine()
    emulator = emulated_pi(target.root, work / "home", args.cpu, "tflite", work / "site")
    result.emulated = emulator.emulated
    result.target = {"debian": target.details["debian"], "python": target.details["python"], **target.versions}
    async with emulator:
        with timed(result, "bundle"):
            bundle = ensure_bundle(given, out, logs / "bundle.log")
            images = work / "images.npy"
            labels = save_test_set(args.images, images)
            remote_bundle = await put_bundle(emulator, bundle)
            await emulator.put(images, images.name)
        result.bundle = str(bundle.folder)
        with timed(result, "backends"):
            x86_backends = await backend_packages(host, "x86 `backends`", runtime_log)
            arm64_backends = await backend_packages(emulator, "arm64 `backends` under qemu", runtime_log)
        with timed(result, "selftest"):
            runnable = await runnable_artifacts(emulator, bundle, remote_bundle, result, out, runtime_log)
        with timed(result, "predict"):
            for artifact in runnable:
                x86, x86_backend, _ = await predictions(host, str(bundle.folder), artifact, str(images), f"x86 `predict` of {artifact}", runtime_log)
                arm64, arm64_backend, outcome = await predictions(emulator, remote_bundle, artifact, images.name,
                                                                  f"arm64 `predict` of {artifact} under qemu", runtime_log)
                result.artifacts[artifact] = {
                    **compare_artifact(x86, arm64, labels, bundle.manifest.labels, args.min_agreement),
                    "x86_backend": x86_backends.get(x86_backend, x86_backend),
                    "arm64_backend": arm64_backends.get(arm64_backend, arm64_backend),
                    "arm64_predict_seconds": outcome["seconds"],
                }
                result.runtime_cli[f"predict {artifact}"] = outcome
        missing = [name for name in REQUIRED_ARTIFACTS if name not in result.artifacts]
        if missing:
            raise CheckError(f"{bundle.folder} has no {', '.join(missing)}; the check needs both (edgeship export --formats tflite-fp32,tflite-int8)")
        result.images = max((figures.get("images", 0) for figures in result.artifacts.values()), default=0)
        with timed(result, "bench"):
            options = ["--artifact", ",".join(runnable), "--json", BENCH_JSON, "--machine-label", bench_label(args.cpu), "--emulated",
                       *args.bench_options.split()]
            result.runtime_cli["bench"] = await runtime_cli(emulator, ["bench", remote_bundle, *options], "arm64 `bench` under qemu", runtime_log)
            if result.runtime_cli["bench"]["returncode"] == 0:
                bench = await fetch(emulator, BENCH_JSON, out / BENCH_JSON)
                result.bench_json = str(bench)
                result.emulated_latency = emulated_latency(bench)
        for outcome in result.runtime_cli.values():
            outcome.pop("stdout", None)
        if args.probe_unsupported:
            with timed(result, "probe_unsupported"):
                result.not_testable_under_emulation = await probe_unsupported(
                    target, args.cpu, bundle, remote_bundle, images.name, work, logs / "probe.log")
    result.status, result.reason = verdict(result)


def verdict(result: Result) -> tuple[str, str]:
    """pass, or fail naming every runtime command that failed under emulation and every artifact that failed or did not run."""
    problems = [f"`{name}` {exit_text(outcome['returncode'])} under emulation" for name, outcome in result.runtime_cli.items() if outcome["returncode"] != 0]
    problems += [
        f"{name} does not run on the Pi's interpreter" if figures["status"] == ERROR else f"{name}: {figures['reason']}"
        for name, figures in result.artifacts.items() if figures["status"] in (FAIL, ERROR)
    ]
    return (FAIL, "; ".join(problems)) if problems else (PASS, "")


def summary(result: Result) -> str:
    """The lines a person reads at the end."""
    lines = [f"arm64 check: {label(result.status, result.reason)}"]
    if result.emulated:
        lines.append(f"  target: Debian {result.target.get('debian', '?')} arm64, Python {result.target.get('python', '?')}, "
                     f"numpy {result.target.get('numpy', '?')}, tflite-runtime {result.target.get('tflite-runtime', '?')}; {result.emulated}")
    for name, figures in result.artifacts.items():
        if figures["status"] in (SKIPPED, ERROR):
            lines.append(f"  {name:<14} {label(figures['status'], figures['reason'])}{' (REQUIRED)' if figures['status'] == ERROR else ''}")
            continue
        lines.append(
            f"  {name:<14} argmax agreement {figures['agreement']:.2%} ({figures['mismatches']} of {figures['images']} differ; gate {result.min_agreement:.1%})  "
            f"max |dp| {figures['max_abs_diff']:.2e}  [x86 {figures['x86_backend']} vs arm64 {figures['arm64_backend']}]"
            + ("" if figures["status"] == PASS else f"  {label(figures['status'], figures['reason'])}")
        )
    for name, latency in result.emulated_latency.items():
        lines.append(f"  {name:<14} emulated latency p50 {latency['p50_ms']:.3f} ms, p90 {latency['p90_ms']:.3f} ms (batch 1, {latency['threads']} thread(s); qemu, not a Raspberry Pi)")
    for name, outcome in result.runtime_cli.items():
        lines.append(f"  arm64 `{name}`: {exit_text(outcome['returncode'])} in {outcome['seconds']:.1f} s")
    if result.bench_json:
        lines.append(f"  emulated bench JSON (qemu timings, not a Raspberry Pi's): {result.bench_json}")
    for extra, finding in result.not_testable_under_emulation.items():
        observed = f"; probed now: {'crashed' if finding['crashed'] else 'ran, ' + exit_text(finding['returncode'])}" if "crashed" in finding else ""
        lines.append(f"  not testable under emulation: edgeship[{extra}] ({finding['documented']}){observed}")
    if result.cache:
        lines.append("  cache: " + ", ".join(f"{name} {'hit' if hit else 'miss'}" for name, hit in result.cache.items()))
    if result.timings:
        lines.append("  seconds: " + ", ".join(f"{stage} {seconds:.1f}" for stage, seconds in result.timings.items()))
    return "\n".join(lines)


def export_as_device(result: Result, folder: Path) -> None:
    """The emulated Pi's results in the layout `edgeship device run` writes: selftest.json, bench.json, device.json."""
    bench = json.loads(Path(result.bench_json).read_text(encoding="utf-8"))
    bench["machine"]["device"] = folder.name
    selftest = json.loads(Path(result.selftest_json).read_text(encoding="utf-8"))
    status = PASS if selftest.get("passed") else FAIL
    atomic_write_json(folder / "selftest.json", selftest)
    atomic_write_json(folder / "bench.json", bench)
    atomic_write_json(folder / "device.json", {"name": folder.name, "address": result.emulated, "status": status, "selftest": status,
                                               "remote_bundle": result.bundle})


def parse_arguments(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m tools.arm64.check", description=__doc__.splitlines()[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--bundle", help="a bundle exported on x86 (default: train and export the seed MLP here)")
    parser.add_argument("--out", default=str(DEFAULT_OUT), help=f"where results go (default {DEFAULT_OUT.relative_to(REPO)})")
    parser.add_argument("--cache", default=os.environ.get("EDGESHIP_ARM64_CACHE", str(DEFAULT_CACHE)), help="the root and wheel cache (default ~/.cache/edgeship/arm64-bookworm)")
    parser.add_argument("--cpu", default="cortex-a72", help="qemu CPU model (cortex-a72 = Raspberry Pi 4)")
    parser.add_argument("--images", type=int, default=1000, help="test images to compare (default 1000)")
    parser.add_argument("--min-agreement", type=float, default=0.999, help="share of images whose argmax must match (default 0.999)")
    parser.add_argument("--bench-options", default="--threads 1 --batch 1,32 --seconds 1", help="options passed to the emulated `bench` (default: %(default)s)")
    parser.add_argument("--device-out", metavar="DIR", help="also put the emulated selftest and bench JSONs in DIR/emulated-pi/ as "
                        "`edgeship device run` does (give RUN/devices, and `edgeship report RUN` shows the emulated Pi as a machine)")
    parser.add_argument("--probe-unsupported", action="store_true", help="also install edgeship[litert] and edgeship[onnx] and see whether they still crash under qemu")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_arguments(argv)
    out = Path(args.out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    shutil.rmtree(out / "logs", ignore_errors=True)
    for stale in (SELFTEST_JSON, BENCH_JSON):
        (out / stale).unlink(missing_ok=True)
    result = Result()
    with tempfile.TemporaryDirectory(prefix="edgeship-arm64-") as work, timed(result, "total"):
        try:
            asyncio.run(check(args, result, out, Path(work)))
        except Skip as skip:
            result.status, result.reason = SKIPPED, str(skip)
        except (CheckError, DeviceError) as error:
            result.status, result.reason = ERROR, str(error)
    atomic_write_json(out / "arm64-check.json", asdict(result))
    if args.device_out and result.selftest_json and result.bench_json:
        export_as_device(result, Path(args.device_out) / "emulated-pi")
    if result.status == SKIPPED:
        print(f"SKIP: {result.reason}")
    print(summary(result))
    print(f"  result: {out / 'arm64-check.json'}")
    return EXIT_CODES.get(result.status, ERROR_EXIT)


if __name__ == "__main__":
    sys.exit(main())
