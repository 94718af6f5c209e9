"""One small interface to reach a device: run a shell command, put a file, get a file.

Three kinds share it, so every step above (install, copy, selftest, bench) is one code path:
- `SSHTransport`, over asyncssh. Chosen over Fabric (Paramiko, threads) because asyncio runs many
  devices at once in one thread with a semaphore as the bound, and asyncssh carries SFTP, known_hosts
  checking and the SSH agent itself. Host keys are checked against known_hosts; an unknown host is
  refused unless `accept_new_host_keys` (then its key is written to known_hosts, as OpenSSH's
  StrictHostKeyChecking=accept-new does); a changed key is always refused. Keys come from the
  inventory's identity_file, else the agent and ~/.ssh; passwords and keyboard-interactive are off.
- `LocalTransport`: the commands run in a folder of this machine, which stands for the device's
  home.
- `QemuArm64Transport`: that folder with the Python of an emulated arm64 Debian root, started by
  qemu-user (kind "qemu-arm64"). `make test-arm64` (tools/arm64/check.py) drives its emulated Pi
  and its x86 side through these two classes too, so the check and `edgeship device run` share them.

Remote paths are relative to the login's home (the folder for a local device) or absolute, and are
always shell-quoted by the caller with `shlex.quote`.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import logging
import os
import platform
import shlex
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path

from edgeship.devices.inventory import Device
from edgeship.errors import DeviceError, MissingDependencyError

CONNECT_SECONDS = 20


@dataclass
class Completed:
    """What a remote command did: its exit status (None when a signal ended it), stdout and stderr."""

    returncode: int | None
    stdout: str
    stderr: str

    def tail(self, lines: int = 3) -> str:
        """The last lines of its output, for an error message."""
        text = (self.stderr.strip() or self.stdout.strip()).splitlines()
        return " | ".join(text[-lines:]) if text else f"exit {self.returncode}, no output"


class Transport:
    """Run commands and move files on one device; use as an async context manager."""

    def __init__(self, device: Device) -> None:
        self.device = device

    async def __aenter__(self) -> "Transport":
        await self.open()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    async def open(self) -> None:
        """Connect (or check the folder); DeviceError naming the device and the fix when it cannot."""

    async def close(self) -> None:
        """Let go of the connection; never raises."""

    async def run(self, command: str, input: str | None = None, timeout: float | None = None) -> Completed:
        raise NotImplementedError

    async def put(self, local: Path, remote: str) -> None:
        raise NotImplementedError

    async def get(self, remote: str, local: Path, missing_ok: bool = False) -> bool:
        """Copy a device file here; False when it does not exist and `missing_ok` (else DeviceError)."""
        raise NotImplementedError

    async def rename(self, source: str, target: str) -> None:
        """Rename a file on the device, replacing `target` (one atomic step)."""
        raise NotImplementedError

    def python_command(self, python: str) -> str:
        """The shell words that start the Python program at `python` on the device."""
        return shlex.quote(python)


def _asyncssh():
    try:
        import asyncssh
    except ImportError as exc:
        raise MissingDependencyError("asyncssh is not installed; install it with: pip install 'edgeship[devices]'") from exc
    logging.getLogger("asyncssh").setLevel(logging.WARNING)
    return asyncssh


def _host_pattern(host: str, port: int) -> str:
    """How known_hosts names a host: `host`, or `[host]:port` off port 22."""
    return host if port == 22 else f"[{host}]:{port}"


class SSHTransport(Transport):
    """A device over SSH (asyncssh): one connection, one SFTP session, commands through the login shell."""

    def __init__(self, device: Device, accept_new_host_keys: bool = False, connect_timeout: float = CONNECT_SECONDS) -> None:
        super().__init__(device)
        self.accept_new_host_keys = accept_new_host_keys
        self.connect_timeout = connect_timeout
        self._connection = None
        self._sftp = None

    @property
    def known_hosts_path(self) -> Path:
        return Path(self.device.known_hosts or Path.home() / ".ssh" / "known_hosts")

    async def open(self) -> None:
        asyncssh = _asyncssh()
        device = self.device
        known_hosts = self.known_hosts_path
        learn = self.accept_new_host_keys and not self._host_is_known(asyncssh, known_hosts)
        if not learn and not known_hosts.is_file():
            raise DeviceError(
                f"{device.name}: known_hosts file {known_hosts} does not exist, so the host key of {device.host} cannot be checked; "
                f"run once with --accept-new-host-keys, or add the key with `ssh-keyscan -p {device.port} {device.host} >> {known_hosts}`"
            )
        options = dict(
            port=device.port,
            username=device.user,
            known_hosts=None if learn else str(known_hosts),
            client_keys=[device.identity_file] if device.identity_file else (),
            password=None,
            kbdint_auth=False,
            preferred_auth="publickey",
            connect_timeout=self.connect_timeout,
            login_timeout=self.connect_timeout,
        )
        try:
            self._connection = await asyncssh.connect(device.host, **options)
        except asyncssh.HostKeyNotVerifiable as exc:
            raise self._host_key_error(asyncssh, known_hosts, exc) from exc
        except asyncssh.PermissionDenied as exc:
            key = f"the key {device.identity_file}" if device.identity_file else "the agent's keys and ~/.ssh/id_*"
            raise DeviceError(
                f"{device.name}: {device.user}@{device.host}:{device.port} refused {key}; "
                f"add the public key to ~/.ssh/authorized_keys there, or set identity_file in the inventory"
            ) from exc
        except (asyncio.TimeoutError, TimeoutError) as exc:
            raise DeviceError(f"{device.name}: no answer from {device.host}:{device.port} within {self.connect_timeout:.0f} s; "
                              "is the device on and on this network?") from exc
        except (OSError, asyncssh.Error) as exc:
            reason = getattr(exc, "strerror", None) or getattr(exc, "reason", None) or str(exc) or type(exc).__name__
            raise DeviceError(f"{device.name}: cannot connect to {device.host}:{device.port} ({reason}); "
                              "is the device on and sshd running on that port?") from exc
        if learn:
            self._remember_host_key(self._connection.get_server_host_key(), known_hosts)
        self._sftp = await self._connection.start_sftp_client()

    def _host_is_known(self, asyncssh, known_hosts: Path) -> bool:
        """Whether known_hosts has any key (or CA) for this host and port."""
        if not known_hosts.is_file():
            return False
        try:
            matches = asyncssh.read_known_hosts(str(known_hosts)).match(self.device.host, "", self.device.port)
        except (OSError, ValueError, asyncssh.Error):
            return True  # an unreadable file is not a licence to trust a new key: let the connect fail on it
        return bool(matches[0] or matches[1])

    def _host_key_error(self, asyncssh, known_hosts: Path, exc: Exception) -> DeviceError:
        device = self.device
        pattern = _host_pattern(device.host, device.port)
        if self._host_is_known(asyncssh, known_hosts):
            return DeviceError(
                f"{device.name}: the host key of {pattern} does not match the one in {known_hosts} (changed key: a reinstalled "
                f"device, or someone in between); if the device was reinstalled, remove the old key with "
                f"`ssh-keygen -R '{pattern}' -f {known_hosts}` and run again with --accept-new-host-keys"
            )
        return DeviceError(
            f"{device.name}: {pattern} is not in {known_hosts}, so its host key cannot be checked; "
            "run with --accept-new-host-keys to trust it on first use"
        )

    def _remember_host_key(self, key, known_hosts: Path) -> None:
        """Append the host's key to known_hosts (under a lock: many devices may learn at once)."""
        known_hosts.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        algorithm, encoded = key.export_public_key("openssh").decode().split()[:2]
        line = f"{_host_pattern(self.device.host, self.device.port)} {algorithm} {encoded}\n"
        with open(known_hosts, "a", encoding="utf-8") as stream:
            fcntl.flock(stream, fcntl.LOCK_EX)
            stream.write(line)

    async def close(self) -> None:
        if self._sftp is not None:
            self._sftp.exit()
            self._sftp = None
        if self._connection is not None:
            self._connection.close()
            with contextlib.suppress(Exception):
                await self._connection.wait_closed()
            self._connection = None

    def _lost(self, what: str, exc: Exception) -> DeviceError:
        return DeviceError(f"{self.device.name}: connection to {self.device.host}:{self.device.port} lost while {what} ({exc}); run again")

    async def run(self, command: str, input: str | None = None, timeout: float | None = None) -> Completed:
        asyncssh = _asyncssh()
        try:
            result = await self._connection.run(command, input=input, check=False, timeout=timeout)
        except asyncssh.TimeoutError as exc:
            raise DeviceError(f"{self.device.name}: `{command[:80]}` did not finish within {timeout:.0f} s") from exc
        except (OSError, asyncssh.Error) as exc:
            raise self._lost(f"running `{command[:60]}`", exc) from exc
        return Completed(result.exit_status if result.exit_signal is None else None, str(result.stdout or ""), str(result.stderr or ""))

    async def put(self, local: Path, remote: str) -> None:
        asyncssh = _asyncssh()
        try:
            await self._sftp.put(str(local), remote)
        except asyncssh.SFTPFailure as exc:
            raise DeviceError(f"{self.device.name}: cannot write {remote} ({exc.reason}); is the disk full? free some space there") from exc
        except (OSError, asyncssh.Error) as exc:
            raise self._lost(f"copying {local.name}", exc) from exc

    async def get(self, remote: str, local: Path, missing_ok: bool = False) -> bool:
        asyncssh = _asyncssh()
        try:
            await self._sftp.get(remote, str(local))
        except asyncssh.SFTPNoSuchFile as exc:
            if missing_ok:
                return False
            raise DeviceError(f"{self.device.name}: {remote} is not on the device") from exc
        except (OSError, asyncssh.Error) as exc:
            raise self._lost(f"fetching {remote}", exc) from exc
        return True

    async def rename(self, source: str, target: str) -> None:
        asyncssh = _asyncssh()
        try:
            await self._sftp.posix_rename(source, target)
        except asyncssh.SFTPFailure as exc:
            raise DeviceError(f"{self.device.name}: cannot rename {source} to {target} ({exc.reason})") from exc
        except (OSError, asyncssh.Error) as exc:
            raise self._lost(f"renaming {source}", exc) from exc


class LocalTransport(Transport):
    """A device that is a folder of this machine: commands run there with /bin/sh, files are copied in and out.

    Commands get a clean login's variables, unless `environment` gives them all (the arm64 check's
    x86 side runs this machine's own Python, which needs the workstation's environment as it is).
    """

    def __init__(self, device: Device, environment: dict[str, str] | None = None) -> None:
        super().__init__(device)
        self.folder = Path(device.folder or ".").resolve()
        self.environment = environment

    async def open(self) -> None:
        if not self.folder.is_dir():
            raise DeviceError(f"{self.device.name}: folder {self.folder} does not exist; create it or fix folder in the inventory")

    def _path(self, remote: str) -> Path:
        return self.folder / remote

    def _environment(self) -> dict[str, str]:
        """What a login would have: no virtualenv or PYTHONPATH of the workstation's own Python leaks in."""
        if self.environment is not None:
            return self.environment
        keep = ("PATH", "HOME", "LANG", "LC_ALL", "TMPDIR", "USER", "LOGNAME")
        return {key: os.environ[key] for key in keep if key in os.environ}

    async def run(self, command: str, input: str | None = None, timeout: float | None = None) -> Completed:
        process = await asyncio.create_subprocess_exec(
            "/bin/sh", "-c", command, cwd=self.folder, env=self._environment(),
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
            raise DeviceError(f"{self.device.name}: `{command[:80]}` did not finish within {timeout:.0f} s") from exc
        code = process.returncode
        return Completed(code if code >= 0 else None, stdout.decode(errors="replace"), stderr.decode(errors="replace"))

    async def put(self, local: Path, remote: str) -> None:
        try:
            await asyncio.to_thread(shutil.copyfile, local, self._path(remote))
        except OSError as exc:
            raise DeviceError(f"{self.device.name}: cannot write {remote} ({exc.strerror}); is the disk full? free some space there") from exc

    async def get(self, remote: str, local: Path, missing_ok: bool = False) -> bool:
        try:
            await asyncio.to_thread(shutil.copyfile, self._path(remote), local)
        except FileNotFoundError as exc:
            if missing_ok:
                return False
            raise DeviceError(f"{self.device.name}: {remote} is not on the device") from exc
        except OSError as exc:
            raise DeviceError(f"{self.device.name}: cannot fetch {remote} ({exc.strerror})") from exc
        return True

    async def rename(self, source: str, target: str) -> None:
        try:
            os.replace(self._path(source), self._path(target))
        except OSError as exc:
            raise DeviceError(f"{self.device.name}: cannot rename {source} to {target} ({exc.strerror})") from exc


class QemuArm64Transport(LocalTransport):
    """An emulated arm64 Debian root as a device: commands run in `folder`, Python is the root's under qemu-user.

    The minimal root has neither pip nor the venv module, and qemu-user cannot start a guest program
    from a guest program without binfmt_misc (a kernel-wide registration), so the runtime's "venv"
    is a folder VENV/site that pip fills from this machine (`pip install --target`, for the
    device's platform, from the same wheels an SSH device gets), found through PYTHONPATH. `site`
    puts that folder elsewhere (the arm64 check fills its own, outside the device's home).
    """

    installs_runtime_here = True

    def __init__(self, device: Device, site: Path | None = None) -> None:
        super().__init__(device)
        self.root = Path(device.root or "")
        self.qemu = shutil.which("qemu-aarch64-static")
        self.venv = device.venv_path.rstrip("/")
        self.site = self.folder / self.venv / "site" if site is None else Path(site)
        self.emulated = f"qemu-aarch64 {device.cpu} on {platform.machine()}"

    async def open(self) -> None:
        if self.qemu is None:
            raise DeviceError(f"{self.device.name}: qemu-aarch64-static is not installed; install it with `apt-get install qemu-user-static`")
        if not (self.root / "usr" / "bin" / "python3").exists():
            raise DeviceError(f"{self.device.name}: no arm64 root with Python at {self.root}; build it with `make test-arm64`, "
                              "or set root in the inventory")
        self.folder.mkdir(parents=True, exist_ok=True)

    def _environment(self) -> dict[str, str]:
        """A clean login's variables: nothing of the host's Python reaches the guest but the runtime's site folder."""
        return {"PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": os.environ.get("HOME", "/"), "LANG": "C.UTF-8",
                "PYTHONNOUSERSITE": "1", "PYTHONPATH": str(self.site)}

    def python_command(self, python: str) -> str:
        """qemu-aarch64 starting the root's Python: the venv's python is the root's python3 with the site folder on its path."""
        if python == f"{self.venv}/bin/python":
            executable = self.root / "usr" / "bin" / "python3"
        elif python.startswith("/"):
            executable = self.root / python.lstrip("/")
        elif "/" not in python:
            executable = self.root / "usr" / "bin" / python
        else:
            executable = self.folder / python
        return shlex.join([self.qemu, "-cpu", self.device.cpu, "-L", str(self.root), str(executable)])

    async def install_runtime(self, wheels: list[Path], extra: str, pip_options: list[str]) -> None:
        """edgeship[extra] from `wheels` into VENV/site, by pip on this machine for the device's platform; replaced whole."""
        staging = self.site.with_name(".site.partial")
        await asyncio.to_thread(shutil.rmtree, staging, True)
        links = [option for folder in sorted({str(wheel.parent) for wheel in wheels}) for option in ("--find-links", folder)]
        command = [sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check", "--no-index", *links,
                   "--target", str(staging), *pip_options, f"edgeship[{extra}]"]
        process = await asyncio.create_subprocess_exec(*command, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
                                                       env={**os.environ, "PIP_CONFIG_FILE": os.devnull})
        output, _ = await process.communicate()
        if process.returncode != 0:
            tail = " | ".join(output.decode(errors="replace").strip().splitlines()[-3:])
            raise DeviceError(f"{self.device.name}: installing edgeship[{extra}] for the emulated root failed: {tail}")
        await asyncio.to_thread(shutil.rmtree, self.site, True)
        os.replace(staging, self.site)


def transport_for(device: Device, accept_new_host_keys: bool = False) -> Transport:
    """The transport of a device's kind."""
    if device.kind == "local":
        return LocalTransport(device)
    if device.kind == "qemu-arm64":
        return QemuArm64Transport(device)
    return SSHTransport(device, accept_new_host_keys=accept_new_host_keys)
