"""The emulated arm64 root as a device: run a shell command, put a file, get a file, start its Python.

The methods have the shapes of the transports that reach SSH devices (async `open`/`close`,
`run(command, input, timeout) -> Completed`, `put(local, remote)`, `get(remote, local)`,
`rename(source, target)`, `python_command(python)`), so the root can later be one more device
kind behind that interface. `LocalMachine` is a folder of this machine standing for a device's
home; `EmulatedArm64` is that folder with its Python started under qemu-user, from the root's
files, with nothing of the host's Python reaching the guest. qemu-user shares the host's file
system, so `put` and `get` are plain copies.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import platform
import shlex
import shutil
from dataclasses import dataclass
from pathlib import Path

from tools.arm64.process import CheckError
from tools.arm64.rootfs import PYTHON


@dataclass
class Completed:
    """What a command did: its exit status (None when a signal ended it), stdout and stderr."""

    returncode: int | None
    stdout: str
    stderr: str

    def tail(self, lines: int = 3) -> str:
        """The last lines of its output, for an error message."""
        text = (self.stderr.strip() or self.stdout.strip()).splitlines()
        return " | ".join(text[-lines:]) if text else f"exit {self.returncode}, no output"


class LocalMachine:
    """Commands run with /bin/sh in `folder` (the device's home) and `environment`; files are copied in and out."""

    def __init__(self, folder: Path, python: str, environment: dict[str, str] | None = None, name: str = "local") -> None:
        self.folder = Path(folder).resolve()
        self.python = python
        self.environment = dict(os.environ) if environment is None else environment
        self.name = name

    async def __aenter__(self) -> "LocalMachine":
        await self.open()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    async def open(self) -> None:
        """Create the home folder."""
        self.folder.mkdir(parents=True, exist_ok=True)

    async def close(self) -> None:
        """Nothing to let go of."""

    async def run(self, command: str, input: str | None = None, timeout: float | None = None) -> Completed:
        """Run a shell command in the home folder; CheckError when it outlives `timeout` (its whole process group is killed)."""
        process = await asyncio.create_subprocess_exec(
            "/bin/sh", "-c", command, cwd=self.folder, env=self.environment,
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
            start_new_session=True,
        )
        try:
            stdout, stderr = await asyncio.wait_for(process.communicate(input.encode() if input is not None else None), timeout)
        except (asyncio.TimeoutError, asyncio.CancelledError) as exc:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, 9)
            await process.wait()
            if isinstance(exc, asyncio.CancelledError):
                raise
            raise CheckError(f"{self.name}: `{command[:80]}` did not finish within {timeout:.0f} s") from exc
        code = process.returncode
        return Completed(code if code >= 0 else None, stdout.decode(errors="replace"), stderr.decode(errors="replace"))

    def _path(self, remote: str) -> Path:
        return self.folder / remote

    async def put(self, local: Path, remote: str) -> None:
        """Copy a local file to `remote` (relative to the home, or absolute); its folder must exist."""
        try:
            await asyncio.to_thread(shutil.copyfile, local, self._path(remote))
        except OSError as exc:
            raise CheckError(f"{self.name}: cannot write {remote} ({exc.strerror})") from exc

    async def get(self, remote: str, local: Path) -> None:
        """Copy `remote` to a local file."""
        try:
            await asyncio.to_thread(shutil.copyfile, self._path(remote), local)
        except OSError as exc:
            raise CheckError(f"{self.name}: cannot fetch {remote} ({exc.strerror})") from exc

    async def rename(self, source: str, target: str) -> None:
        """Rename a file, replacing `target` (one atomic step)."""
        try:
            os.replace(self._path(source), self._path(target))
        except OSError as exc:
            raise CheckError(f"{self.name}: cannot rename {source} to {target} ({exc.strerror})") from exc

    def python_command(self, python: str) -> str:
        """The shell words that start the Python program at `python`."""
        return shlex.quote(python)


class EmulatedArm64(LocalMachine):
    """The Bookworm arm64 root as a device: qemu-user runs the root's Python with the root as its library prefix.

    `site` (installed with pip --target) is the guest's only import path besides the standard
    library; PATH, HOME and LANG are a clean login's. A venv made inside the root would need
    `--copies`: its symlinks name guest paths, which the host resolves to its own files.
    """

    def __init__(self, root: Path, folder: Path, qemu: str, cpu: str = "cortex-a72", site: Path | None = None) -> None:
        environment = {"PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": os.environ.get("HOME", "/root"), "LANG": "C.UTF-8", "PYTHONNOUSERSITE": "1"}
        if site is not None:
            environment["PYTHONPATH"] = str(site)
        super().__init__(folder, PYTHON, environment, name=f"arm64 (qemu {cpu})")
        self.root = Path(root)
        self.qemu = qemu
        self.cpu = cpu

    @property
    def label(self) -> str:
        """How the emulation is described in results: `qemu-aarch64 cortex-a72 on x86_64`."""
        return f"qemu-aarch64 {self.cpu} on {platform.machine()}"

    def python_command(self, python: str) -> str:
        """qemu-aarch64 starting the guest's `python`: an absolute or bare name is the root's (/usr/bin/...), a relative path the home's."""
        if python.startswith("/"):
            executable = self.root / python.lstrip("/")
        elif "/" not in python:
            executable = self.root / "usr/bin" / python
        else:
            executable = self.folder / python
        return shlex.join([self.qemu, "-cpu", self.cpu, "-L", str(self.root), str(executable)])
