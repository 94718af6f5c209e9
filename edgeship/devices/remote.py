"""The steps on one device, through its transport: facts, the runtime's venv, the bundle, selftest and bench, results.

Every step is a few shell commands built with shlex.quote, or one call of the device-side helper
script (`helper.py`, run by the device's Python from stdin). Nothing needs root: the venv, the
wheels, the bundles and the results live under the device's workdir (default ~/.edgeship).

A run whose venv and bundle are already in place takes two commands on the device: the helper's
`arrive` (facts, the venv's marker, the bundle staged and switched to, old results cleared) and
the runtime's `bench --selftest-json` (self-test, then bench, in one Python process); both
results come back over the SFTP session the connection already holds. Every command costs a login
shell and a process start on the device, which on a small board is most of a short run.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shlex
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edgeship.devices.inventory import Device
from edgeship.devices.transport import Completed, Transport
from edgeship.devices.wheels import Platform, Wheels
from edgeship.errors import DeviceError
from edgeship.files import sha256_file

HELPER = (Path(__file__).with_name("helper.py")).read_text(encoding="utf-8")
MARKER = ".edgeship-wheels.json"
UPLOAD_SUFFIX = ".upload"
PIP_ENV = "PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_INPUT=1 PIP_CONFIG_FILE=/dev/null"


def bundle_files(bundle: Path) -> dict[str, str]:
    """{relative path: sha256} of every file of a bundle folder (hidden files and caches left out)."""
    files = {}
    for path in sorted(bundle.rglob("*")):
        relative = path.relative_to(bundle)
        if path.is_file() and not any(part.startswith(".") or part == "__pycache__" for part in relative.parts):
            files[relative.as_posix()] = sha256_file(path)
    return files


def content_digest(files: dict[str, str]) -> str:
    return hashlib.sha256(json.dumps(files, sort_keys=True).encode()).hexdigest()[:16]


def remote_bundle_name(bundle: Path) -> str:
    """The bundle's name on a device: its run folder and its own name (runs often call their bundle `bundle`)."""
    resolved = bundle.resolve()
    name = f"{resolved.parent.name}-{resolved.name}" if resolved.parent.name else resolved.name
    return re.sub(r"[^A-Za-z0-9_.-]", "_", name).lstrip(".") or "bundle"


@dataclass
class Steps:
    """How long each step took on a device (seconds), and what it did."""

    seconds: dict[str, float] = field(default_factory=dict)
    venv: str | None = None
    files_copied: int = 0
    bytes_copied: int = 0
    bundle_files_copied: int = 0


class DeviceSession:
    """One device's steps over an open transport."""

    def __init__(self, transport: Transport, device: Device, steps: Steps | None = None) -> None:
        self.transport = transport
        self.device = device
        self.steps = steps or Steps()
        self.workdir = device.workdir.rstrip("/") or "."
        self.venv = device.venv_path.rstrip("/")
        self.facts: dict[str, Any] = {}
        self._arrival: tuple[str, str, dict[str, Any]] | None = None
        self._missing: list[str] | None = None

    # -- plumbing -------------------------------------------------------------------------------
    def quote(self, path: str) -> str:
        return shlex.quote(path)

    @property
    def venv_python(self) -> str:
        return self.transport.python_command(f"{self.venv}/bin/python")

    async def helper(self, *arguments: str, timeout: float = 300) -> dict[str, Any]:
        """Run the helper script with the device's Python; its JSON answer, or DeviceError naming the problem.

        `-S`: the helper needs only the standard library, and skipping site-packages (their .pth
        files) saves a Python start most of its time.
        """
        python = self.transport.python_command(self.device.python)
        command = f"{python} -S - {' '.join(shlex.quote(a) for a in arguments)}"
        done = await self.transport.run(command, input=HELPER, timeout=timeout)
        if done.returncode in (126, 127) or (done.returncode != 0 and "not found" in done.stderr and not done.stdout):
            raise DeviceError(f"{self.device.name}: no Python at `{self.device.python}` ({done.tail(1)}); install python3 there "
                              "or set python = \"/path/to/python3\" for this device in the inventory")
        answer = _json_line(done.stdout)
        if done.returncode == 3 and answer and "oserror" in answer:
            raise _os_error(self.device, answer)
        if done.returncode != 0 or answer is None:
            raise DeviceError(f"{self.device.name}: the device's Python `{self.device.python}` failed on `{arguments[0]}`: {done.tail()}")
        return answer

    async def shell(self, command: str, what: str, timeout: float | None = None) -> Completed:
        """Run a command that must succeed; DeviceError with its last lines otherwise (disk full named as such)."""
        done = await self.transport.run(command, timeout=timeout)
        if done.returncode != 0:
            output = done.stdout + done.stderr
            if "No space left on device" in output or "Errno 28" in output:
                raise DeviceError(f"{self.device.name}: no space left on the device while {what}; free some space under {self.workdir} and run again")
            raise DeviceError(f"{self.device.name}: {what} failed: {done.tail()}")
        return done

    async def upload(self, local: Path, remote: str) -> None:
        """Copy a file to a temporary name beside `remote`, then rename it: a cut copy never has the final name."""
        temporary = remote + UPLOAD_SUFFIX
        try:
            await self.transport.put(local, temporary)
        except DeviceError as exc:
            raise await self._explain_write_failure(exc, local) from exc
        await self.transport.rename(temporary, remote)
        self.steps.files_copied += 1
        self.steps.bytes_copied += local.stat().st_size

    async def _explain_write_failure(self, exc: DeviceError, local: Path) -> DeviceError:
        """SFTP says only "Failure" when a write fails: ask the device whether its disk is full, and say so."""
        try:
            free = (await self.helper("facts", self.workdir, self.venv, timeout=60)).get("disk_free_bytes")
        except DeviceError:
            return exc
        if free is not None and free < local.stat().st_size:
            return DeviceError(f"{self.device.name}: no space left on the device: {free / 1024:.0f} KiB free under {self.workdir}, "
                               f"{local.name} needs {local.stat().st_size / 1024:.0f} KiB; free some space there and run again")
        return exc

    # -- steps ----------------------------------------------------------------------------------
    async def probe(self) -> dict[str, Any]:
        """Architecture, OS, Python, disk, CPU frequency, throttling and the venv's marker."""
        self.facts = await self.helper("facts", self.workdir, self.venv, timeout=60)
        return self.facts

    async def arrive(self, bundle: Path, files: dict[str, str], others: dict[str, str] | None = None) -> dict[str, Any]:
        """The first call of a run: the facts (as `probe`), the bundle staged, `others` ({device path: sha256}) checked.

        The staging is kept for `sync_bundle` and the missing others for `put_missing`, so a device
        that has it all needs no further call before its self-test; its previous results are cleared.
        """
        name, digest = remote_bundle_name(bundle), content_digest(files)
        answer = await self.helper("arrive", self.workdir, self.venv, f"{self.workdir}/bundles", name, digest,
                                   json.dumps(files, sort_keys=True), json.dumps(others or {}, sort_keys=True),
                                   json.dumps(sorted(self.result_files(f"{self.workdir}/bundles/{name}").values())), timeout=120)
        self.facts = answer["facts"]
        self._arrival = (name, digest, answer["stage"])
        self._missing = answer.get("missing", list(others or {}))
        return self.facts

    def _marker(self) -> dict[str, Any] | None:
        return self.facts.get("venv_marker") if self.facts.get("venv_python") else None

    async def ensure_runtime(self, wheels: Wheels, images: bool = False) -> str:
        """Make or reuse the venv with edgeship[extra] (and Pillow, `images`, to decode pictures): 'reused', 'updated'
        (edgeship's wheel only) or 'installed'. A venv installed with more (Pillow) serves a run that needs less."""
        platform = Platform.from_facts(self.facts)
        extras = f"{self.device.extra},images" if images else self.device.extra
        wanted = await wheels.marker(platform, extras)
        have = self._marker()
        if not covers(have, wanted):
            await self.probe()  # another device sharing this venv may have just installed it
            have = self._marker()
        if covers(have, wanted):
            return "reused"
        edgeship = await wheels.edgeship_wheel()
        house = await wheels.wheelhouse(platform, extras)
        if getattr(self.transport, "installs_runtime_here", False):
            await self.transport.install_runtime([edgeship, *house], extras, platform.pip_options())
            await self.helper("write", f"{self.venv}/{MARKER}", json.dumps(wanted, indent=2))
            return "installed"
        folder = f"{self.workdir}/wheels"
        same_deps = covers(have, {**wanted, "edgeship": have.get("edgeship")} if have else wanted)
        to_copy = [edgeship] if same_deps else [edgeship, *house]
        await self.helper("prepare", json.dumps([folder]), "[]")
        present = await self.helper("hashes", folder)
        for wheel in to_copy:
            if present.get(wheel.name) != sha256_file(wheel):
                await self.upload(wheel, f"{folder}/{wheel.name}")
        pip = f"{PIP_ENV} {self.venv_python} -m pip install --quiet --no-index --find-links {self.quote(folder)}"
        if same_deps:
            await self.shell(f"{pip} --no-deps --force-reinstall {self.quote(folder + '/' + edgeship.name)}", "installing edgeship's wheel")
            wanted, outcome = {**have, "edgeship": wanted["edgeship"]}, "updated"
        else:
            if not self.facts.get("venv_python"):
                if not self.facts.get("has_venv_module"):
                    raise DeviceError(f"{self.device.name}: `{self.device.python} -m venv` is not available there; "
                                      "install it (Debian/Raspberry Pi OS: sudo apt install python3-venv) and run again")
                python = self.transport.python_command(self.device.python)
                await self.shell(f"{python} -m venv {self.quote(self.venv)}", f"making the venv {self.venv}")
            await self.shell(f"{pip} --force-reinstall {self.quote(f'edgeship[{extras}]')}",
                             f"installing edgeship[{extras}] from the copied wheels")
            outcome = "installed"
        await self.helper("write", f"{self.venv}/{MARKER}", json.dumps(wanted, indent=2))
        await self.helper("prepare", "[]", json.dumps([f"{folder}/{wheel.name}" for wheel in to_copy]))
        return outcome

    async def sync_bundle(self, bundle: Path, files: dict[str, str] | None = None) -> str:
        """Copy the bundle's files whose sha256 differ on the device into a new version folder, then switch to it; the device path."""
        files = files if files is not None else bundle_files(bundle)
        name, digest = remote_bundle_name(bundle), content_digest(files)
        bundles = f"{self.workdir}/bundles"
        wanted = json.dumps(files, sort_keys=True)
        arrival, self._arrival = self._arrival, None
        if arrival is not None and arrival[:2] == (name, digest):
            staged = arrival[2]
            if "oserror" in staged:
                raise _os_error(self.device, staged)
        else:
            staged = await self.helper("stage", bundles, name, digest, wanted)
        self.steps.bundle_files_copied = len(staged["needed"])
        if not staged["needed"]:
            committed = staged
        else:
            for relative in staged["needed"]:
                await self.upload(bundle / relative, f"{staged['partial']}/{relative}")
            committed = await self.helper("commit", bundles, name, digest, wanted)
        if not committed["committed"]:
            raise DeviceError(f"{self.device.name}: the copied bundle does not match on the device ({', '.join(committed['wrong'])}); run again")
        return committed["path"]

    async def put_missing(self, others: dict[str, Path]) -> int:
        """Upload those of `others` ({device path: local file}) that `arrive` found missing; how many."""
        missing = [remote for remote in others if remote in self._missing] if self._missing is not None else list(others)
        for remote in missing:
            await self.upload(others[remote], remote)
        return len(missing)

    def results_folder(self, remote_bundle: str) -> str:
        return f"{self.workdir}/results/{remote_bundle.rsplit('/', 1)[-1]}"

    def result_files(self, remote_bundle: str) -> dict[str, str]:
        """Where the self-test and the bench write their JSON on the device."""
        results = self.results_folder(remote_bundle)
        return {"selftest": f"{results}/selftest.json", "bench": f"{results}/bench.json"}

    async def selftest_and_bench(self, remote_bundle: str, options: list[str], timeout: float | None = None) -> tuple[Completed, dict[str, str]]:
        """`python -m edgeship.runtime bench --selftest-json` on the device, with the inventory's delegate: one process for both.

        Its outcome and where the two JSONs are (`arrive` cleared the previous ones, so a file there is this run's).
        """
        targets = self.result_files(remote_bundle)
        words = list(options) + (["--delegate", self.device.delegate] if self.device.delegate else [])
        command = (f"{self.venv_python} -m edgeship.runtime bench {self.quote(remote_bundle)} "
                   f"--selftest-json {self.quote(targets['selftest'])} --json {self.quote(targets['bench'])} "
                   + " ".join(shlex.quote(word) for word in words))
        return await self.transport.run(command, timeout=timeout), targets

    async def fetch(self, remote: str, local: Path, missing_ok: bool = False) -> Path | None:
        """Copy a result file here, atomically; None when it is not there and `missing_ok`."""
        local.parent.mkdir(parents=True, exist_ok=True)
        temporary = local.with_name(f".{local.name}.{os.getpid()}.part")
        try:
            if not await self.transport.get(remote, temporary, missing_ok=missing_ok):
                return None
            os.replace(temporary, local)
        finally:
            temporary.unlink(missing_ok=True)
        return local


def covers(have: dict[str, Any] | None, wanted: dict[str, Any]) -> bool:
    """Whether a venv's marker has all a run wants: the same platform and edgeship wheel, every extra and dependency wheel."""
    if not have:
        return False
    return (have.get("platform") == wanted["platform"] and have.get("edgeship") == wanted["edgeship"]
            and set(str(have.get("extra", "")).split(",")) >= set(wanted["extra"].split(","))
            and set(have.get("deps") or []) >= set(wanted["deps"]))


def _json_line(text: str) -> dict[str, Any] | None:
    for line in reversed(text.strip().splitlines()):
        try:
            value = json.loads(line)
        except ValueError:
            continue
        if isinstance(value, dict):
            return value
    return None


def _os_error(device: Device, answer: dict[str, Any]) -> DeviceError:
    where = f" ({answer['filename']})" if answer.get("filename") else ""
    if answer.get("oserror") == 28:
        return DeviceError(f"{device.name}: no space left on the device{where}; free some space under {device.workdir} and run again")
    return DeviceError(f"{device.name}: {answer.get('strerror')}{where} on the device; check the permissions of {device.workdir}")
