"""Prove the slim runtime on Raspberry Pi OS without a Pi: an emulated Debian Bookworm arm64 userland.

What it does, in order (standard library only; run it with the dev venv's python, `make test-arm64`):

1. Makes sure `qemu-user-static` and `debootstrap` are installed (`apt-get install` when missing
   and running as root). Where they truly cannot be installed it prints `SKIP: <reason>` and exits
   77; it never passes silently.
2. Builds, once, a minimal Debian Bookworm arm64 root with Python 3.11 under
   ~/.cache/edgeship/arm64-bookworm, from the Debian mirror apt uses on this machine:
   `debootstrap --foreign --variant=minbase --include=python3` downloads and verifies the packages
   and unpacks the essential ones; the rest (Python and its libraries) are unpacked with
   `dpkg-deb`. The second stage is skipped on purpose: it needs binfmt_misc (a kernel-wide
   registration that containers seldom allow) and only runs maintainer scripts Python does not need.
3. Installs what `pip install 'edgeship[tflite]'` installs on a Pi: a wheel built from this
   checkout plus the aarch64 wheels of its `tflite` extra (numpy<2, tflite-runtime 2.14), resolved
   for manylinux aarch64 / CPython 3.11 and cached, so a warm run needs no network.
4. Runs `python -m edgeship.runtime selftest` and `predict` on a bundle exported on x86 (`--bundle`,
   or one trained and exported here with the dev venv) under `qemu-aarch64-static -cpu cortex-a72`,
   and compares the arm64 probabilities on the test images with the x86 ones for every TFLite
   artifact: max |dp| per artifact, identical argmax required on >= 99.9% of images.
5. Runs `python -m edgeship.runtime bench` there and labels its JSON as emulated, so the report
   shows an emulated arm64 row. These timings are qemu's, never a Raspberry Pi's.
6. Prints a summary and writes arm64-check.json (agreement, max |dp|, timings, cache hits).

Not testable under emulation (they run on real arm64 hardware): ai-edge-litert 2.3 (`edgeship[litert]`)
dies with SIGSEGV when it creates its interpreter, and onnxruntime 1.32 (`edgeship[onnx]`) dies with
SIGSEGV while loading its native module, under qemu-user 7.2 with any -cpu model. `--probe-unsupported`
installs those extras into the same root and runs selftest with them again, to see whether that still holds.

Exit codes: 0 passed, 1 arm64 and x86 disagree beyond the gate, 2 the check could not run, 77 skipped.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import hashlib
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import time
import tomllib
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Iterator

REPO = Path(__file__).resolve().parent.parent
SKIP_EXIT = 77
GATE_EXIT = 1
ERROR_EXIT = 2
SUITE = "bookworm"
TARGET_PYTHON = "3.11"
TARGET_GLIBC_MINOR = 36
DEFAULT_MIRROR = "http://deb.debian.org/debian"
DEFAULT_CACHE = Path.home() / ".cache" / "edgeship" / "arm64-bookworm"
DEFAULT_OUT = REPO / "artifacts" / "arm64-check"
TFLITE_ARTIFACTS = ("tflite-fp32", "tflite-int8")
HOST_PACKAGES = {"qemu-aarch64-static": "qemu-user-static", "debootstrap": "debootstrap", "dpkg-deb": "dpkg"}
NOT_TESTABLE = {
    "litert": "ai-edge-litert 2.3: SIGSEGV in Interpreter() (creating the C++ interpreter) under qemu-user 7.2",
    "onnx": "onnxruntime 1.32: SIGSEGV while loading onnxruntime_pybind11_state under qemu-user 7.2",
}
PROBE_BACKENDS = {"litert": "litert", "onnx": "onnxruntime"}


class Skip(Exception):
    """The check cannot run on this machine for a reason outside the project (exit 77)."""


class CheckError(Exception):
    """The check could not run to the end (exit 2); the message says which step and why."""


@dataclass
class Emulator:
    """How to start the emulated Bookworm python: qemu-user with the root as its library prefix."""

    qemu: str
    cpu: str
    root: Path
    site: Path

    @property
    def label(self) -> str:
        return f"qemu-aarch64 {self.cpu} on {platform.machine()}"

    def command(self, *arguments: str) -> list[str]:
        return [self.qemu, "-cpu", self.cpu, "-L", str(self.root), str(self.root / "usr/bin/python3.11"), *arguments]

    def environment(self) -> dict[str, str]:
        """A clean environment: nothing of the host's Python or library paths may reach the guest."""
        return {
            "PATH": "/usr/local/bin:/usr/bin:/bin",
            "HOME": os.environ.get("HOME", "/root"),
            "LANG": "C.UTF-8",
            "PYTHONPATH": str(self.site),
            "PYTHONNOUSERSITE": "1",
        }


@dataclass
class Result:
    """Everything the check measured, written as arm64-check.json."""

    status: str = "error"
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
    bench_json: str = ""
    not_testable_under_emulation: dict[str, dict[str, Any]] = field(default_factory=dict)
    cache: dict[str, bool] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)


def say(message: str) -> None:
    """Progress for the person running the check."""
    print(f"arm64-check: {message}", file=sys.stderr, flush=True)


def run(command: list[str], what: str, log: Path | None = None, check: bool = True, **options: Any) -> subprocess.CompletedProcess:
    """Run a command, keep its output in `log`, and raise CheckError naming `what` when it fails."""
    completed = subprocess.run(command, capture_output=True, text=True, **options)
    if log is not None:
        log.parent.mkdir(parents=True, exist_ok=True)
        with open(log, "a", encoding="utf-8") as stream:
            stream.write(f"$ {' '.join(command)}\n{completed.stdout}{completed.stderr}[exit {completed.returncode}]\n\n")
    if check and completed.returncode != 0:
        tail = "\n".join((completed.stdout + completed.stderr).strip().splitlines()[-15:])
        raise CheckError(f"{what} failed (exit {completed.returncode}):\n{tail}")
    return completed


@contextlib.contextmanager
def timed(result: Result, stage: str) -> Iterator[None]:
    """Record how long a stage took."""
    start = time.perf_counter()
    try:
        yield
    finally:
        result.timings[stage] = round(time.perf_counter() - start, 2)


@contextlib.contextmanager
def cache_lock(cache: Path) -> Iterator[None]:
    """One check at a time builds the cache (a test run and `make test-arm64` may overlap)."""
    cache.mkdir(parents=True, exist_ok=True)
    with open(cache / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def ensure_host_tools() -> dict[str, str]:
    """qemu-user-static, debootstrap and dpkg-deb, installed with apt-get when missing; Skip when impossible."""
    missing = sorted({package for tool, package in HOST_PACKAGES.items() if shutil.which(tool) is None})
    if not missing:
        return {}
    if shutil.which("apt-get") is None:
        raise Skip(f"{', '.join(missing)} missing and this machine has no apt-get to install them")
    if os.geteuid() != 0:
        raise Skip(f"{', '.join(missing)} missing; install them with `sudo apt-get install -y {' '.join(missing)}` (this check runs apt-get only as root)")
    say(f"installing {', '.join(missing)} with apt-get")
    environment = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    install = ["apt-get", "install", "-y", "--no-install-recommends", *missing]
    if subprocess.run(install, capture_output=True, env=environment).returncode != 0:
        subprocess.run(["apt-get", "update"], capture_output=True, env=environment)
        attempt = subprocess.run(install, capture_output=True, text=True, env=environment)
        if attempt.returncode != 0:
            tail = (attempt.stdout + attempt.stderr).strip().splitlines()[-3:]
            raise Skip(f"apt-get could not install {', '.join(missing)}: {' | '.join(tail)}")
    still_missing = [tool for tool in HOST_PACKAGES if shutil.which(tool) is None]
    if still_missing:
        raise Skip(f"{', '.join(still_missing)} still missing after apt-get install {' '.join(missing)}")
    return {package: "installed" for package in missing}


def debian_mirror(apt: Path = Path("/etc/apt")) -> str:
    """The Debian mirror apt uses here for Bookworm (deb822 .sources or one-line .list), else deb.debian.org."""
    override = os.environ.get("EDGESHIP_DEBIAN_MIRROR")
    if override:
        return override.rstrip("/")
    for path in sorted(apt.glob("sources.list.d/*.sources")):
        for stanza in re.split(r"\n\s*\n", path.read_text(encoding="utf-8", errors="replace")):
            fields = dict(
                (key.strip().lower(), value.strip())
                for key, _, value in (line.partition(":") for line in stanza.splitlines() if line and not line.startswith(("#", " ")))
            )
            if _is_debian_main(fields.get("types", ""), fields.get("uris", ""), fields.get("suites", ""), fields.get("components", "")):
                return fields["uris"].split()[0].rstrip("/")
    for path in [apt / "sources.list", *sorted(apt.glob("sources.list.d/*.list"))]:
        if not path.is_file():
            continue
        for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
            words = re.sub(r"\[[^\]]*\]", "", line).split()
            if len(words) >= 4 and _is_debian_main(words[0], words[1], words[2], " ".join(words[3:])):
                return words[1].rstrip("/")
    return DEFAULT_MIRROR


def _is_debian_main(types: str, uris: str, suites: str, components: str) -> bool:
    """A `deb` source carrying Bookworm's main component (not security, not a third-party suite)."""
    return "deb" in types.split() and SUITE in suites.split() and "main" in components.split() and "security" not in uris


def ensure_root(cache: Path, mirror: str, qemu: str, logs: Path) -> tuple[Path, bool, dict[str, str]]:
    """The cached Bookworm arm64 root with python3.11; built (about 30 s) when missing or incomplete."""
    root = cache / "root"
    stamp = root / ".edgeship-root.json"
    if stamp.is_file() and (root / "usr/bin/python3.11").is_file():
        return root, True, json.loads(stamp.read_text(encoding="utf-8"))
    partial = cache / "root.partial"
    shutil.rmtree(partial, ignore_errors=True)
    shutil.rmtree(root, ignore_errors=True)
    say(f"building the Bookworm arm64 root from {mirror} (first run only)")
    run(
        ["debootstrap", "--foreign", "--arch=arm64", "--variant=minbase", "--include=python3", SUITE, str(partial), mirror],
        f"debootstrap from {mirror} (set EDGESHIP_DEBIAN_MIRROR to another Debian mirror if this one is unreachable)",
        log=logs / "debootstrap.log",
    )
    archives = partial / "var/cache/apt/archives"
    for package in (partial / "debootstrap/base").read_text(encoding="utf-8").split():
        for deb in archives.glob(f"{package}_*.deb"):
            unpack_deb(deb, partial)
    for deb in archives.glob("*.deb"):
        deb.unlink()
    probe = run(
        [qemu, "-L", str(partial), str(partial / "usr/bin/python3.11"), "-c",
         "import platform, ssl, sqlite3, ctypes; print(platform.python_version(), platform.machine())"],
        "starting the emulated python3.11", log=logs / "debootstrap.log",
    )
    python_version, machine = probe.stdout.split()
    debian_version = (partial / "etc/debian_version").read_text(encoding="utf-8").strip()
    details = {"python": python_version, "machine": machine, "debian": debian_version, "mirror": mirror, "built": time.strftime("%Y-%m-%dT%H:%M:%S")}
    (partial / ".edgeship-root.json").write_text(json.dumps(details, indent=2) + "\n", encoding="utf-8")
    partial.rename(root)
    return root, False, details


def unpack_deb(deb: Path, root: Path) -> None:
    """Unpack a .deb's files into `root`, keeping the merged-/usr symlinks (/bin -> usr/bin) intact."""
    with subprocess.Popen(["dpkg-deb", "--fsys-tarfile", str(deb)], stdout=subprocess.PIPE) as payload:
        unpacked = subprocess.run(["tar", "-x", "--keep-directory-symlink", "-C", str(root)], stdin=payload.stdout, capture_output=True, text=True)
    if payload.returncode != 0 or unpacked.returncode != 0:
        raise CheckError(f"unpacking {deb.name} failed: {unpacked.stderr.strip()}")


def target_platform_options() -> list[str]:
    """pip options for Bookworm arm64: every manylinux tag glibc 2.36 accepts (pip does not expand them)."""
    options = ["--only-binary=:all:", "--python-version", TARGET_PYTHON, "--implementation", "cp", "--abi", "cp311"]
    options += ["--platform", "manylinux2014_aarch64"]
    for minor in range(17, TARGET_GLIBC_MINOR + 1):
        options += ["--platform", f"manylinux_2_{minor}_aarch64"]
    return options


def pip(*arguments: str) -> list[str]:
    return [sys.executable, "-m", "pip", "--disable-pip-version-check", *arguments]


def cached_or_download(offline: list[str], download: list[str], what: str, log: Path) -> bool:
    """Run `offline` against the wheel cache; on a miss, download into the cache and run it again. True on a hit."""
    if run(offline, what, log=log, check=False).returncode == 0:
        return True
    say(f"{what}: not all wheels are cached yet, downloading them")
    run(download, f"downloading the wheels for {what}", log=log)
    run(offline, what, log=log)
    return False


def build_edgeship_wheel(wheels: Path, work: Path, log: Path) -> tuple[Path, bool]:
    """A wheel of this checkout, built from a copy so the working tree gets no build/ folder."""
    source = work / "source"
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    shutil.copytree(REPO / "edgeship", source / "edgeship", ignore=ignore)
    for name in ("pyproject.toml", "README.md", "LICENSE"):
        if (REPO / name).is_file():
            shutil.copy2(REPO / name, source / name)
    build_requires = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))["build-system"]["requires"]
    dist = work / "dist"
    hit = cached_or_download(
        pip("wheel", "--no-deps", "--no-index", "--find-links", str(wheels), "-w", str(dist), str(source)),
        pip("download", "--dest", str(wheels), "--only-binary=:all:", *build_requires),
        "building the edgeship wheel", log,
    )
    return next(dist.glob("edgeship-*.whl")), hit


def install_runtime(wheel: Path, extra: str, site: Path, wheels: Path, log: Path) -> tuple[dict[str, str], bool]:
    """`pip install 'edgeship[extra]'` as a Pi would get it (aarch64, CPython 3.11) into `site`."""
    requirement = f"edgeship[{extra}] @ {wheel.as_uri()}"
    hit = cached_or_download(
        pip("install", "--no-index", "--find-links", str(wheels), "--target", str(site), *target_platform_options(), requirement),
        pip("download", "--dest", str(wheels), *target_platform_options(), requirement),
        f"installing edgeship[{extra}] for arm64", log,
    )
    for stale in wheels.glob("edgeship-*.whl"):
        stale.unlink()
    versions = {}
    for info in sorted(site.glob("*.dist-info")):
        name, _, version = info.name[: -len(".dist-info")].partition("-")
        versions[name.lower().replace("_", "-")] = version
    return versions, hit


def given_bundle(bundle: str | None) -> Path | None:
    """The --bundle folder, checked before any slow step."""
    if bundle is None:
        return None
    path = Path(bundle).resolve()
    if not (path / "manifest.json").is_file():
        raise CheckError(f"--bundle {bundle} is not a bundle (no manifest.json); give a folder written by `edgeship export`")
    return path


def ensure_bundle(bundle: Path | None, out: Path, log: Path) -> Path:
    """The bundle to check: the one given, or the seed MLP trained and exported here with the dev venv."""
    if bundle is not None:
        return bundle
    run_folder, path = out / "mlp-run", out / "bundle"
    say("training the seed MLP and exporting its TFLite bundle with the dev venv")
    edgeship = [sys.executable, "-m", "edgeship.cli"]
    run([*edgeship, "train", "--model", "mlp", "--dataset", "mnist-sample", "--epochs", "5", "--seed", "0", "--out", str(run_folder)], "edgeship train", log=log, cwd=REPO)
    run([*edgeship, "export", str(run_folder / "model.keras"), "--formats", ",".join(TFLITE_ARTIFACTS), "--out", str(path)], "edgeship export", log=log, cwd=REPO)
    return path


def bundle_tflite_artifacts(bundle: Path) -> list[str]:
    """The bundle's TFLite artifacts that exported fine."""
    manifest = json.loads((bundle / "manifest.json").read_text(encoding="utf-8"))
    return [a["name"] for a in manifest["artifacts"] if a.get("format") == "tflite" and a.get("status") == "ok"]


def compare(x86: dict[str, Any], arm64: dict[str, Any], min_agreement: float) -> dict[str, dict[str, Any]]:
    """Per artifact: max |dp| and the share of images with the same argmax on both machines."""
    figures = {}
    for name, reference in x86["artifacts"].items():
        emulated = arm64["artifacts"][name]
        max_abs_diff, same = 0.0, 0
        for p_x86, p_arm in zip(reference["probabilities"], emulated["probabilities"]):
            max_abs_diff = max(max_abs_diff, max(abs(a - b) for a, b in zip(p_x86, p_arm)))
            same += _argmax(p_x86) == _argmax(p_arm)
        count = len(reference["probabilities"])
        figures[name] = {
            "agreement": same / count,
            "mismatches": count - same,
            "max_abs_diff": max_abs_diff,
            "passed": same / count >= min_agreement,
            "x86_backend": reference["backend"],
            "arm64_backend": emulated["backend"],
            "arm64_seconds_per_image": emulated["seconds"] / count,
            "x86_seconds_per_image": reference["seconds"] / count,
        }
    return figures


def _argmax(values: list[float]) -> int:
    return max(range(len(values)), key=values.__getitem__)


def runtime_cli(emulator: Emulator, arguments: list[str], what: str, log: Path) -> dict[str, Any]:
    """Run `python -m edgeship.runtime ...` on the emulated Pi; its exit code and time."""
    start = time.perf_counter()
    completed = run(emulator.command("-m", "edgeship.runtime", *arguments), what, log=log, check=False, env=emulator.environment())
    return {
        "returncode": completed.returncode,
        "seconds": round(time.perf_counter() - start, 2),
        "output_tail": "\n".join((completed.stdout + completed.stderr).strip().splitlines()[-8:]),
    }


def probe_unsupported(root: Path, qemu: str, cpu: str, wheel: Path, bundle: Path, wheels: Path, work: Path, log: Path) -> dict[str, dict[str, Any]]:
    """Install edgeship[litert] and edgeship[onnx] into the emulated root and run selftest with each, to see whether qemu still crashes."""
    findings = {}
    for extra, backend in PROBE_BACKENDS.items():
        site = work / f"site-{extra}"
        versions, _ = install_runtime(wheel, extra, site, wheels, log)
        emulator = Emulator(qemu, cpu, root, site)
        outcome = runtime_cli(emulator, ["selftest", str(bundle), "--backend", backend], f"selftest with edgeship[{extra}]", log)
        crashed = outcome["returncode"] in (-11, 139) or "signal 11" in outcome["output_tail"]
        findings[extra] = {
            "documented": NOT_TESTABLE[extra],
            "versions": versions,
            "returncode": outcome["returncode"],
            "crashed": crashed,
            "output_tail": outcome["output_tail"],
        }
    return findings


def check(args: argparse.Namespace, result: Result, out: Path, work: Path) -> None:
    """The whole check; fills `result` as it goes."""
    cache, logs = Path(args.cache).expanduser(), out / "logs"
    bundle = given_bundle(args.bundle)
    result.min_agreement = args.min_agreement
    result.host = {"machine": platform.machine(), "python": platform.python_version(), "cpus": str(os.cpu_count())}
    result.not_testable_under_emulation = {extra: {"documented": text} for extra, text in NOT_TESTABLE.items()}
    with timed(result, "host_tools"):
        installed = ensure_host_tools()
    result.cache["host_tools"] = not installed
    qemu = shutil.which("qemu-aarch64-static")
    result.mirror = debian_mirror()
    with cache_lock(cache):
        with timed(result, "root"):
            root, result.cache["root"], root_details = ensure_root(cache, result.mirror, qemu, logs)
        wheels = cache / "wheels"
        wheels.mkdir(exist_ok=True)
        with timed(result, "edgeship_wheel"):
            wheel, result.cache["build_wheels"] = build_edgeship_wheel(wheels, work, logs / "pip.log")
        with timed(result, "install_runtime"):
            versions, result.cache["runtime_wheels"] = install_runtime(wheel, "tflite", work / "site", wheels, logs / "pip.log")
    emulator = Emulator(qemu, args.cpu, root, work / "site")
    result.emulated = emulator.label
    result.target = {"debian": root_details["debian"], "python": root_details["python"], **versions}
    with timed(result, "bundle"):
        bundle = ensure_bundle(bundle, out, logs / "bundle.log")
    result.bundle = str(bundle)
    artifacts = bundle_tflite_artifacts(bundle)
    if not artifacts:
        raise CheckError(f"{bundle} has no TFLite artifact that exported fine; export tflite-fp32 and tflite-int8")
    predictions = REPO / "scripts" / "arm64_predictions.py"
    images = work / "images.npy"
    common = ["--bundle", str(bundle), "--artifacts", ",".join(artifacts)]
    with timed(result, "x86_predictions"):
        run([sys.executable, str(predictions), *common, "--sample", str(args.images), "--save-images", str(images), "--json", str(out / "x86-predictions.json")],
            "x86 predictions", log=logs / "predictions.log", cwd=REPO)
    with timed(result, "arm64_predictions"):
        run(emulator.command(str(predictions), *common, "--images", str(images), "--json", str(out / "arm64-predictions.json")),
            "arm64 predictions under qemu", log=logs / "predictions.log", env=emulator.environment())
    x86 = json.loads((out / "x86-predictions.json").read_text(encoding="utf-8"))
    arm64 = json.loads((out / "arm64-predictions.json").read_text(encoding="utf-8"))
    result.images = len(next(iter(x86["artifacts"].values()))["probabilities"])
    result.artifacts = compare(x86, arm64, args.min_agreement)
    with timed(result, "arm64_runtime_cli"):
        result.runtime_cli["selftest"] = runtime_cli(emulator, ["selftest", str(bundle)], "selftest", logs / "runtime.log")
        result.runtime_cli["predict"] = runtime_cli(emulator, ["predict", str(bundle), str(images), "--artifact", artifacts[0]], "predict", logs / "runtime.log")
    with timed(result, "arm64_bench"):
        bench = out / "arm64-emulated-bench.json"
        result.runtime_cli["bench"] = runtime_cli(emulator, ["bench", str(bundle), "--json", str(bench), *args.bench_options.split()], "bench", logs / "runtime.log")
        if result.runtime_cli["bench"]["returncode"] == 0:
            label_emulated(bench, emulator)
            result.bench_json = str(bench)
    if args.probe_unsupported:
        with timed(result, "probe_unsupported"):
            result.not_testable_under_emulation = probe_unsupported(root, qemu, args.cpu, wheel, bundle, cache / "wheels", work, logs / "probe.log")
    failed_cli = [name for name, outcome in result.runtime_cli.items() if outcome["returncode"] != 0]
    failed_gate = [name for name, figures in result.artifacts.items() if not figures["passed"]]
    if failed_gate:
        result.status, result.reason = "failed", f"arm64 and x86 disagree beyond the gate on {', '.join(failed_gate)}"
    elif failed_cli:
        result.status, result.reason = "error", f"`python -m edgeship.runtime {'/'.join(failed_cli)}` failed under emulation (see logs/runtime.log)"
    else:
        result.status = "passed"


def label_emulated(bench: Path, emulator: Emulator) -> None:
    """Mark a bench JSON's machine as emulated, so no report mistakes it for a Pi."""
    payload = json.loads(bench.read_text(encoding="utf-8"))
    machine = payload.setdefault("machine", {})
    machine["emulated"] = emulator.label
    machine["label"] = f"arm64 Raspberry Pi OS Bookworm, emulated ({emulator.label})"
    write_json(bench, payload)


def write_json(path: Path, payload: Any) -> None:
    """Write JSON atomically (temporary name in the same folder, then rename)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.tmp")
    temporary.write_text(json.dumps(payload, indent=2) + "\n", encoding="utf-8")
    os.replace(temporary, path)


def summary(result: Result) -> str:
    """The lines a person reads at the end."""
    lines = [f"arm64 check: {result.status.upper()}" + (f" ({result.reason})" if result.reason else "")]
    if result.emulated:
        lines.append(f"  target: Debian {result.target.get('debian', '?')} arm64, Python {result.target.get('python', '?')}, "
                     f"numpy {result.target.get('numpy', '?')}, tflite-runtime {result.target.get('tflite-runtime', '?')}; {result.emulated}")
    for name, figures in result.artifacts.items():
        lines.append(
            f"  {name:<14} agreement {figures['agreement']:.2%} ({figures['mismatches']} of {result.images} differ, gate {result.min_agreement:.1%})  "
            f"max |dp| {figures['max_abs_diff']:.2e}  emulated {figures['arm64_seconds_per_image'] * 1e3:.2f} ms/image  "
            f"[{figures['x86_backend']} x86 vs {figures['arm64_backend']} arm64]"
        )
    for name, outcome in result.runtime_cli.items():
        lines.append(f"  runtime {name:<9} exit {outcome['returncode']}  {outcome['seconds']:.1f} s")
    if result.bench_json:
        lines.append(f"  emulated bench JSON (qemu timings, not a Raspberry Pi's): {result.bench_json}")
    for extra, finding in result.not_testable_under_emulation.items():
        observed = f"; probed now: {'crashed' if finding['crashed'] else 'ran, exit ' + str(finding['returncode'])}" if "crashed" in finding else ""
        lines.append(f"  not testable under emulation: edgeship[{extra}] ({finding['documented']}){observed}")
    if result.cache:
        lines.append("  cache: " + ", ".join(f"{name} {'hit' if hit else 'miss'}" for name, hit in result.cache.items()))
    if result.timings:
        lines.append("  seconds: " + ", ".join(f"{stage} {seconds:.1f}" for stage, seconds in result.timings.items()))
    return "\n".join(lines)


def parse_arguments(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--bundle", help="a bundle exported on x86 (default: train and export the seed MLP here)")
    parser.add_argument("--out", default=str(DEFAULT_OUT), help=f"where results go (default {DEFAULT_OUT.relative_to(REPO)})")
    parser.add_argument("--cache", default=os.environ.get("EDGESHIP_ARM64_CACHE", str(DEFAULT_CACHE)), help="the root and wheel cache (default ~/.cache/edgeship/arm64-bookworm)")
    parser.add_argument("--cpu", default="cortex-a72", help="qemu CPU model (cortex-a72 = Raspberry Pi 4)")
    parser.add_argument("--images", type=int, default=1000, help="test images to compare (default 1000)")
    parser.add_argument("--min-agreement", type=float, default=0.999, help="share of images whose argmax must match (default 0.999)")
    parser.add_argument("--bench-options", default="--threads 1 --batch 1", help="options passed to the emulated `bench`")
    parser.add_argument("--probe-unsupported", action="store_true", help="also install edgeship[litert] and edgeship[onnx] and see whether they still crash under qemu")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_arguments(argv)
    out = Path(args.out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    shutil.rmtree(out / "logs", ignore_errors=True)
    result = Result()
    exit_code = ERROR_EXIT
    with tempfile.TemporaryDirectory(prefix="edgeship-arm64-") as work, timed(result, "total"):
        try:
            check(args, result, out, Path(work))
            exit_code = {"passed": 0, "failed": GATE_EXIT}.get(result.status, ERROR_EXIT)
        except Skip as skip:
            result.status, result.reason, exit_code = "skipped", str(skip), SKIP_EXIT
        except CheckError as error:
            result.status, result.reason = "error", str(error)
    write_json(out / "arm64-check.json", asdict(result))
    if result.status == "skipped":
        print(f"SKIP: {result.reason}")
    print(summary(result))
    print(f"  result: {out / 'arm64-check.json'}")
    return exit_code


if __name__ == "__main__":
    sys.exit(main())
