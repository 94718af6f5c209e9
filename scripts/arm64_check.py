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
4. Runs `python -m edgeship.runtime selftest` and `predict --json` on a bundle exported on x86
   (`--bundle`, or one trained and exported here with the dev venv) under
   `qemu-aarch64-static -cpu cortex-a72` (a Raspberry Pi 4's core), and compares the arm64
   probabilities on 1,000 test images with the x86 ones, artifact by artifact: max |dp|, and
   identical argmax required on >= 99.9% of images. tflite-fp32 and tflite-int8 must run and agree;
   another TFLite artifact that the Pi's interpreter cannot load (selftest skips it) is reported.
5. Runs `python -m edgeship.runtime bench` there and labels its JSON as emulated, so the report
   shows an emulated arm64 row. These timings are qemu's, never a Raspberry Pi's.
6. Prints a summary and writes arm64-check.json (agreement, max |dp|, timings, cache hits).

Not testable under emulation (qemu-user is what fails; their aarch64 wheels target real hardware): ai-edge-litert 2.3 (`edgeship[litert]`)
dies with SIGSEGV when it creates its interpreter, and onnxruntime 1.32 (`edgeship[onnx]`) dies with
SIGSEGV while loading its native module, under qemu-user 7.2 with any -cpu model. `--probe-unsupported`
installs those extras into the same root and predicts with them again, to see whether that still holds.

Exit codes: 0 passed; 1 arm64 and x86 disagree beyond the gate, a required artifact does not run on
the Pi's interpreter, or a runtime command fails under emulation; 2 the check could not run; 77 skipped.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
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
REQUIRED_ARTIFACTS = ("tflite-fp32", "tflite-int8")
DEFAULT_EXPORT = ("tflite-fp32", "tflite-fp16", "tflite-dynamic", "tflite-int8")
HOST_PACKAGES = {"qemu-aarch64-static": "qemu-user-static", "debootstrap": "debootstrap", "dpkg-deb": "dpkg"}
NOT_TESTABLE = {
    "litert": "ai-edge-litert 2.3: SIGSEGV in Interpreter() (creating the C++ interpreter) under qemu-user 7.2",
    "onnx": "onnxruntime 1.32: SIGSEGV while loading onnxruntime_pybind11_state under qemu-user 7.2",
}
PROBES = {"litert": ("litert", "tflite"), "onnx": ("onnxruntime", "onnx")}


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
class HostPython:
    """The dev venv's python on this machine, the x86 side of the comparison."""

    def command(self, *arguments: str) -> list[str]:
        return [sys.executable, *arguments]

    def environment(self) -> dict[str, str]:
        return dict(os.environ)


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
    selftest_json: str = ""
    bench_json: str = ""
    emulated_latency: dict[str, dict[str, Any]] = field(default_factory=dict)
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
    """The cached Bookworm arm64 root with python3.11; built (about 20 s) when missing or incomplete."""
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
    run([*edgeship, "export", str(run_folder / "model.keras"), "--formats", ",".join(DEFAULT_EXPORT), "--out", str(path)], "edgeship export", log=log, cwd=REPO)
    return path


def bundle_tflite_artifacts(bundle: Path) -> list[str]:
    """The bundle's TFLite artifacts that exported fine."""
    manifest = json.loads((bundle / "manifest.json").read_text(encoding="utf-8"))
    return [a["name"] for a in manifest["artifacts"] if a.get("format") == "tflite" and a.get("status") == "pass"]


def compare(x86: dict[str, Any], arm64: dict[str, Any], min_agreement: float) -> dict[str, Any]:
    """One artifact's `predict --json` on both machines: max |dp| and the share of images with the same argmax."""
    max_abs_diff, same = 0.0, 0
    for reference, emulated in zip(x86["predictions"], arm64["predictions"], strict=True):
        max_abs_diff = max(max_abs_diff, max(abs(a - b) for a, b in zip(reference["probabilities"], emulated["probabilities"], strict=True)))
        same += _argmax(reference["probabilities"]) == _argmax(emulated["probabilities"])
    count = len(x86["predictions"])
    return {
        "images": count,
        "agreement": same / count,
        "mismatches": count - same,
        "max_abs_diff": max_abs_diff,
        "passed": same / count >= min_agreement,
    }


def _argmax(values: list[float]) -> int:
    return max(range(len(values)), key=values.__getitem__)


def runtime_cli(python: HostPython | Emulator, arguments: list[str], what: str, log: Path) -> dict[str, Any]:
    """Run `python -m edgeship.runtime ...`; its exit code, time and output."""
    start = time.perf_counter()
    completed = run(python.command("-m", "edgeship.runtime", *arguments), what, log=log, check=False, env=python.environment(), cwd=REPO)
    return {
        "returncode": completed.returncode,
        "seconds": round(time.perf_counter() - start, 2),
        "stdout": completed.stdout,
        "output_tail": "\n".join((completed.stdout + completed.stderr).strip().splitlines()[-8:]),
    }


def backend_packages(python: HostPython | Emulator, what: str, log: Path) -> dict[str, str]:
    """`python -m edgeship.runtime backends --json` as {backend: "package version"} for the available ones."""
    outcome = runtime_cli(python, ["backends", "--json"], what, log)
    if outcome["returncode"] != 0:
        raise CheckError(f"{what} failed (exit {outcome['returncode']}):\n{outcome['output_tail']}")
    statuses = json.loads(outcome["stdout"])
    return {name: f"{status['package']} {status['version']}" for name, status in statuses.items() if status["available"]}


def save_test_images(count: int, path: Path, log: Path) -> None:
    """The first `count` test images of the bundled MNIST sample as a .npy, written by the dev venv (numpy lives there)."""
    code = (
        "import sys, numpy; from edgeship.data import load_dataset; "
        "numpy.save(sys.argv[2], load_dataset('mnist-sample').x_test[: int(sys.argv[1])])"
    )
    run([sys.executable, "-c", code, str(count), str(path)], "saving the test images", log=log, cwd=REPO)


def predictions(python: HostPython | Emulator, bundle: Path, artifact: str, images: Path, what: str, log: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    """`predict --json` of one artifact on every test image: the parsed JSON and the command's outcome."""
    outcome = runtime_cli(python, ["predict", str(bundle), str(images), "--artifact", artifact, "--top-k", "1", "--json"], what, log)
    if outcome["returncode"] != 0:
        raise CheckError(f"{what} failed (exit {outcome['returncode']}):\n{outcome['output_tail']}")
    return json.loads(outcome.pop("stdout")), outcome


def emulated_latency(bench: Path) -> dict[str, dict[str, Any]]:
    """Single-image p50 per artifact from the emulated bench JSON (the fewest threads measured)."""
    rows = [row for row in json.loads(bench.read_text(encoding="utf-8"))["rows"] if row["status"] == "pass" and row["batch"] == 1]
    latency = {}
    for row in sorted(rows, key=lambda row: row["threads"] or 0, reverse=True):
        latency[row["artifact"]] = {"p50_ms": row["p50_ms"], "p90_ms": row["p90_ms"], "threads": row["threads"], "batch": 1}
    return latency


def probe_unsupported(root: Path, qemu: str, cpu: str, wheel: Path, bundle: Path, images: Path, wheels: Path, work: Path, log: Path) -> dict[str, dict[str, Any]]:
    """Install edgeship[litert] and edgeship[onnx] into the emulated root and predict with each, to see whether qemu still crashes."""
    manifest = json.loads((bundle / "manifest.json").read_text(encoding="utf-8"))
    findings = {}
    for extra, (backend, file_format) in PROBES.items():
        site = work / f"site-{extra}"
        versions, _ = install_runtime(wheel, extra, site, wheels, log)
        artifact = next((a["name"] for a in manifest["artifacts"] if a.get("format") == file_format and a.get("status") == "pass"), None)
        arguments = ["predict", str(bundle), str(images), "--artifact", artifact, "--backend", backend, "--json"] if artifact else ["backends", "--json"]
        outcome = runtime_cli(Emulator(qemu, cpu, root, site), arguments, f"edgeship[{extra}] under qemu", log)
        findings[extra] = {
            "documented": NOT_TESTABLE[extra],
            "versions": versions,
            "command": " ".join(["python -m edgeship.runtime", *arguments[:1], *(["--artifact", artifact] if artifact else [])]),
            "returncode": outcome["returncode"],
            "crashed": outcome["returncode"] in (-11, 139) or "signal 11" in outcome["output_tail"],
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
    result.host["qemu"] = run([qemu, "--version"], "qemu-aarch64-static --version").stdout.split("\n")[0]
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
    host, emulator = HostPython(), Emulator(qemu, args.cpu, root, work / "site")
    result.emulated = emulator.label
    result.target = {"debian": root_details["debian"], "python": root_details["python"], **versions}
    with timed(result, "bundle"):
        bundle = ensure_bundle(bundle, out, logs / "bundle.log")
        images = work / "images.npy"
        save_test_images(args.images, images, logs / "bundle.log")
    result.bundle = str(bundle)
    artifacts = bundle_tflite_artifacts(bundle)
    if not artifacts:
        raise CheckError(f"{bundle} has no TFLite artifact that exported fine; export tflite-fp32 and tflite-int8")
    runtime_log = logs / "runtime.log"
    with timed(result, "backends"):
        x86_backends = backend_packages(host, "x86 `backends`", runtime_log)
        arm64_backends = backend_packages(emulator, "arm64 `backends` under qemu", runtime_log)
    with timed(result, "selftest"):
        selftest = out / "arm64-selftest.json"
        selftest.unlink(missing_ok=True)
        result.runtime_cli["selftest"] = runtime_cli(emulator, ["selftest", str(bundle), "--json", str(selftest)], "arm64 `selftest` under qemu", runtime_log)
        if not selftest.is_file():
            raise CheckError(f"arm64 `selftest` wrote no JSON (exit {result.runtime_cli['selftest']['returncode']}):\n{result.runtime_cli['selftest']['output_tail']}")
        result.selftest_json = str(selftest)
        selftest_rows = {row["artifact"]: row for row in json.loads(selftest.read_text(encoding="utf-8"))["rows"]}
    runnable = []
    for artifact in artifacts:
        row = selftest_rows.get(artifact, {})
        if row.get("status") == "skipped":
            result.artifacts[artifact] = {"status": "not runnable", "passed": artifact not in REQUIRED_ARTIFACTS, "reason": row.get("reason")}
        else:
            runnable.append(artifact)
    with timed(result, "predict"):
        for artifact in runnable:
            x86, _ = predictions(host, bundle, artifact, images, f"x86 `predict` of {artifact}", runtime_log)
            arm64, outcome = predictions(emulator, bundle, artifact, images, f"arm64 `predict` of {artifact} under qemu", runtime_log)
            figures = compare(x86, arm64, args.min_agreement)
            result.artifacts[artifact] = {
                "status": "compared",
                **figures,
                "x86_backend": x86_backends.get(x86["backend"], x86["backend"]),
                "arm64_backend": arm64_backends.get(arm64["backend"], arm64["backend"]),
                "arm64_predict_seconds": outcome["seconds"],
            }
            result.runtime_cli[f"predict {artifact}"] = outcome
    missing = [name for name in REQUIRED_ARTIFACTS if name not in result.artifacts]
    if missing:
        raise CheckError(f"{bundle} has no {', '.join(missing)}; the check needs both (edgeship export --formats tflite-fp32,tflite-int8)")
    result.images = max((figures.get("images", 0) for figures in result.artifacts.values()), default=0)
    with timed(result, "bench"):
        bench = out / "arm64-emulated-bench.json"
        options = ["--artifact", ",".join(runnable), "--json", str(bench), *args.bench_options.split()]
        result.runtime_cli["bench"] = runtime_cli(emulator, ["bench", str(bundle), *options], "arm64 `bench` under qemu", runtime_log)
        if result.runtime_cli["bench"]["returncode"] == 0:
            label_emulated(bench, emulator)
            result.bench_json = str(bench)
            result.emulated_latency = emulated_latency(bench)
    for outcome in result.runtime_cli.values():
        outcome.pop("stdout", None)
    if args.probe_unsupported:
        with timed(result, "probe_unsupported"):
            result.not_testable_under_emulation = probe_unsupported(root, qemu, args.cpu, wheel, bundle, images, wheels, work, logs / "probe.log")
    problems = [f"`{name}` exited {outcome['returncode']} under emulation" for name, outcome in result.runtime_cli.items() if outcome["returncode"] != 0]
    problems += [
        f"{name} does not run on the Pi's interpreter" if figures["status"] != "compared" else f"{name} argmax agreement {figures['agreement']:.2%} is below the gate"
        for name, figures in result.artifacts.items() if not figures["passed"]
    ]
    result.status, result.reason = ("failed", "; ".join(problems)) if problems else ("passed", "")


def label_emulated(bench: Path, emulator: Emulator) -> None:
    """Mark a bench JSON's machine as emulated, so no report mistakes it for a Pi (the report adds "(emulated)" to the label)."""
    payload = json.loads(bench.read_text(encoding="utf-8"))
    machine = payload.setdefault("machine", {})
    machine["cpu"] = f"{emulator.cpu} emulated by qemu-user (host CPU: {machine.get('cpu', 'unknown')})"
    machine["emulated"] = emulator.label
    machine["label"] = f"arm64 Raspberry Pi OS Bookworm, qemu {emulator.cpu}"
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
        if figures["status"] != "compared":
            lines.append(f"  {name:<14} not runnable with edgeship[tflite] on the Pi{'' if figures['passed'] else ' (REQUIRED)'}: {figures['reason']}")
            continue
        lines.append(
            f"  {name:<14} argmax agreement {figures['agreement']:.2%} ({figures['mismatches']} of {figures['images']} differ; gate {result.min_agreement:.1%})  "
            f"max |dp| {figures['max_abs_diff']:.2e}  [x86 {figures['x86_backend']} vs arm64 {figures['arm64_backend']}]"
        )
    for name, latency in result.emulated_latency.items():
        lines.append(f"  {name:<14} emulated latency p50 {latency['p50_ms']:.3f} ms, p90 {latency['p90_ms']:.3f} ms (batch 1, {latency['threads']} thread(s); qemu, not a Raspberry Pi)")
    for name, outcome in result.runtime_cli.items():
        lines.append(f"  arm64 `{name}`: exit {outcome['returncode']} in {outcome['seconds']:.1f} s")
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
    parser.add_argument("--bench-options", default="--threads 1 --batch 1,32 --seconds 1", help="options passed to the emulated `bench` (default: %(default)s)")
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
