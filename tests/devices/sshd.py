"""A real OpenSSH server for the device tests: Debian's sshd on a free localhost port, with temporary host and user keys.

Its config lives in a temporary folder (no PAM, StrictModes off, AuthorizedKeysFile pointing at the
temporary key), so it needs nothing of the machine's own sshd setup. Used by tests/devices and
benchmarks/devices_scale.py.

Commands run as the user running the tests, through their login shell. Debian's bash reads
~/.bashrc for every command sshd hands it (it is built with SSH_SOURCE_BASHRC) unless it is a
nested shell; a device's own ~/.bashrc (Debian's and Raspberry Pi OS's /etc/skel one) returns at
once when not interactive, but a developer's may not (one running `pyenv init` costs 0.1-0.8 s of
CPU per command). So by default this sshd sets SHLVL=1 for its sessions (`SetEnv`, OpenSSH 7.8+),
which makes bash skip ~/.bashrc as a device's would; `shell_rc=True` keeps it.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

SSHD = Path("/usr/sbin/sshd")


def sshd_missing_reason() -> str | None:
    """Why no sshd can be started here (None when it can): installs Debian's openssh-server first when root."""
    if not SSHD.is_file() and shutil.which("apt-get") and os.geteuid() == 0:
        environment = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        install = ["apt-get", "install", "-y", "--no-install-recommends", "openssh-server"]
        if subprocess.run(install, capture_output=True, env=environment).returncode != 0:
            subprocess.run(["apt-get", "update"], capture_output=True, env=environment)
            subprocess.run(install, capture_output=True, env=environment)
    if not SSHD.is_file():
        return "/usr/sbin/sshd is missing; install Debian's openssh-server (apt-get install openssh-server)"
    if shutil.which("ssh-keygen") is None:
        return "ssh-keygen is missing; install openssh-client"
    return None


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def keygen(path: Path) -> Path:
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", path.name, "-f", str(path)], check=True)
    return path


@dataclass
class SSHServer:
    """One running sshd: where it listens, the user key it accepts and a known_hosts with its host key."""

    folder: Path
    port: int
    process: subprocess.Popen
    user_key: Path
    other_key: Path
    known_hosts: Path

    def device(self, name: str, workdir: Path, **keys: object) -> str:
        """An inventory table for a device served by this sshd."""
        values = {"host": "127.0.0.1", "port": self.port, "identity_file": str(self.user_key),
                  "known_hosts": str(self.known_hosts), "python": getattr(sys, "_base_executable", sys.executable),
                  "extra": "onnx", "workdir": str(workdir), **keys}
        lines = [f"[devices.{name}]"] + [f"{key} = {value!r}" if isinstance(value, int) else f'{key} = "{value}"' for key, value in values.items()]
        return "\n".join(lines) + "\n"

    def session_processes(self) -> list[int]:
        """The per-connection sshd processes (children of the listener), found through /proc."""
        children = []
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == self.process.pid:
                children.append(int(entry.name))
        return children

    def kill_sessions(self) -> int:
        """Kill every open connection's sshd process, as a dropped link or a device losing power would."""
        killed = 0
        for pid in self.session_processes():
            try:
                os.kill(pid, signal.SIGKILL)
                killed += 1
            except ProcessLookupError:
                pass
        return killed

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def start_sshd(folder: Path, shell_rc: bool = False) -> SSHServer:
    """Start sshd in the foreground on a free port; returns once it accepts connections (see the module for `shell_rc`)."""
    folder.mkdir(parents=True, exist_ok=True)
    host_key = keygen(folder / "host_ed25519")
    user_key = keygen(folder / "user_ed25519")
    other_key = keygen(folder / "other_ed25519")
    (folder / "authorized_keys").write_text((folder / "user_ed25519.pub").read_text())
    if os.geteuid() == 0:
        Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)  # sshd's privilege separation folder, needed when root runs it
    port = free_port()
    config = folder / "sshd_config"
    config.write_text("\n".join([
        f"Port {port}", "ListenAddress 127.0.0.1", f"HostKey {host_key}", f"PidFile {folder / 'sshd.pid'}",
        f"AuthorizedKeysFile {folder / 'authorized_keys'}", "StrictModes no", "UsePAM no", "PasswordAuthentication no",
        "KbdInteractiveAuthentication no", "PubkeyAuthentication yes", "PermitRootLogin prohibit-password",
        "MaxStartups 200", "MaxSessions 200", "Subsystem sftp internal-sftp", "LogLevel ERROR",
        *([] if shell_rc else ["SetEnv SHLVL=1"]), "",
    ]))
    log = open(folder / "sshd.log", "w")
    process = subprocess.Popen([str(SSHD), "-D", "-e", "-f", str(config)], stdout=log, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"sshd exited {process.returncode}: {(folder / 'sshd.log').read_text()}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            break
        except OSError:
            time.sleep(0.05)
    else:
        process.kill()
        raise RuntimeError("sshd did not start listening within 20 s")
    algorithm, encoded = (folder / "host_ed25519.pub").read_text().split()[:2]
    known_hosts = folder / "known_hosts"
    known_hosts.write_text(f"[127.0.0.1]:{port} {algorithm} {encoded}\n")
    return SSHServer(folder, port, process, user_key, other_key, known_hosts)
