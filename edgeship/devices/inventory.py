"""The inventory: named devices in a TOML file, one `[devices.NAME]` table each.

Looked for in `--inventory FILE`, else `./devices.toml`, else the user config folder
($XDG_CONFIG_HOME or ~/.config)/edgeship/devices.toml. Keys of a device:

    kind           "ssh" (default), "local" (commands run in a folder of this machine, `folder`), or
                   "qemu-arm64" (an emulated arm64 Debian root, `root`, run under qemu-user in `folder`)
    host, port     where sshd listens (port 22 by default)
    user           the login (default: this user's name)
    identity_file  a private key; without one, the SSH agent's keys and ~/.ssh/id_* are tried
    known_hosts    the known_hosts file its host key is checked against (default ~/.ssh/known_hosts)
    python         the device's Python (default python3), used to make the runtime's venv
    extra          the runtime to install: litert, tflite or onnx (default litert)
    delegate       a LiteRT delegate for bench (e.g. xnnpack, edgetpu); optional
    workdir        the device folder edgeship works in (default .edgeship, under the login's home)
    venv           the runtime's venv on the device (default WORKDIR/venv-EXTRA)
    root, cpu      for kind "qemu-arm64": the arm64 root (default ~/.cache/edgeship/arm64-bookworm/root, as
                   `make test-arm64` builds it) and qemu's CPU model (default cortex-a72, a Raspberry Pi 4's)

Passwords have no key on purpose: keys come from the agent or the inventory, never a command line.
"""

from __future__ import annotations

import getpass
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edgeship.errors import MissingDependencyError, UsageError

KINDS = ("ssh", "local", "qemu-arm64")
EXTRAS = ("litert", "tflite", "onnx")
KEYS = ("kind", "host", "port", "user", "identity_file", "known_hosts", "python", "extra", "delegate", "workdir", "venv", "folder",
        "root", "cpu")
NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
INVENTORY_NAME = "devices.toml"


@dataclass(frozen=True)
class Device:
    """One device of the inventory, its defaults filled in."""

    name: str
    kind: str = "ssh"
    host: str | None = None
    port: int = 22
    user: str | None = None
    identity_file: str | None = None
    known_hosts: str | None = None
    python: str = "python3"
    extra: str = "litert"
    delegate: str | None = None
    workdir: str = ".edgeship"
    venv: str | None = None
    folder: str | None = None
    root: str | None = None
    cpu: str = "cortex-a72"

    @property
    def venv_path(self) -> str:
        return self.venv or f"{self.workdir}/venv-{self.extra}"

    @property
    def address(self) -> str:
        """Where the device is, for messages: user@host:port, or the local folder."""
        if self.kind == "local":
            return f"local folder {self.folder}"
        if self.kind == "qemu-arm64":
            return f"qemu-aarch64 {self.cpu} in {self.folder}"
        return f"{self.user}@{self.host}:{self.port}"


def _load_toml(text: str) -> dict[str, Any]:
    """tomllib (standard library from Python 3.11), else the tomli backport."""
    try:
        import tomllib
    except ImportError:
        try:
            import tomli as tomllib  # type: ignore[no-redef]
        except ImportError as exc:
            raise MissingDependencyError("reading devices.toml on Python 3.10 needs tomli: pip install 'edgeship[devices]'") from exc
    return tomllib.loads(text)


def default_inventory_paths() -> list[Path]:
    """Where the inventory is looked for, in order, when --inventory is not given."""
    config = Path(os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config")
    return [Path.cwd() / INVENTORY_NAME, config / "edgeship" / INVENTORY_NAME]


def find_inventory(path: str | os.PathLike | None = None) -> Path:
    """The inventory file to read: the one given, or the first default that exists."""
    if path is not None:
        given = Path(path).expanduser()
        if not given.is_file():
            raise UsageError(f"inventory {given} not found; give an existing devices.toml with --inventory")
        return given
    for candidate in default_inventory_paths():
        if candidate.is_file():
            return candidate
    looked = " or ".join(str(p) for p in default_inventory_paths())
    raise UsageError(f"no inventory: {looked} does not exist; write one with a [devices.NAME] table per device, or give --inventory FILE")


def load_inventory(path: str | os.PathLike | None = None) -> dict[str, Device]:
    """Every device of the inventory by name, each entry checked."""
    found = find_inventory(path)
    try:
        raw = _load_toml(found.read_text(encoding="utf-8"))
    except UnicodeDecodeError as exc:
        raise UsageError(f"{found} is not UTF-8 text ({exc}); save it as UTF-8") from exc
    except ValueError as exc:  # tomllib.TOMLDecodeError is a ValueError
        raise UsageError(f"{found} is not valid TOML: {exc}; fix that line") from exc
    devices = raw.get("devices")
    if not isinstance(devices, dict) or not devices:
        raise UsageError(f"{found} has no devices; add a table per device like [devices.pi4] with host = \"pi4.local\"")
    return {name: parse_device(name, entry, found) for name, entry in devices.items()}


def parse_device(name: str, entry: Any, source: Path | str = "inventory") -> Device:
    """One `[devices.NAME]` table as a Device, or UsageError naming the entry, the key and the fix."""
    where = f"{source}: [devices.{name}]"
    if not NAME_PATTERN.match(name):
        raise UsageError(f"{where}: a device name takes letters, digits, '.', '_' and '-' only")
    if not isinstance(entry, dict):
        raise UsageError(f"{where} must be a table of keys (host, user, ...), got {entry!r}")
    unknown = sorted(set(entry) - set(KEYS))
    if unknown:
        hint = " (passwords are not taken: use a key, from the agent or identity_file)" if "password" in unknown else ""
        raise UsageError(f"{where}: unknown key {', '.join(unknown)}{hint}; known keys: {', '.join(KEYS)}")
    for key, value in entry.items():
        if key == "port":
            if not isinstance(value, int) or isinstance(value, bool) or not 0 < value < 65536:
                raise UsageError(f"{where}: port must be a whole number from 1 to 65535, got {value!r}")
        elif not isinstance(value, str) or not value.strip():
            raise UsageError(f"{where}: {key} must be a non-empty string, got {value!r}")
    kind = entry.get("kind", "ssh")
    if kind not in KINDS:
        raise UsageError(f"{where}: kind must be one of {', '.join(KINDS)}, got {kind!r}")
    extra = entry.get("extra", "litert")
    if extra not in EXTRAS:
        raise UsageError(f"{where}: extra must be one of {', '.join(EXTRAS)}, got {extra!r}")
    if kind == "ssh" and "host" not in entry:
        raise UsageError(f"{where} has no host; add host = \"NAME-OR-ADDRESS\"")
    if kind in ("local", "qemu-arm64") and "folder" not in entry:
        raise UsageError(f"{where} is kind = \"{kind}\" and needs folder = \"/a/folder\" to run in")
    fields = dict(entry)
    if kind == "qemu-arm64":
        fields.setdefault("root", str(Path.home() / ".cache" / "edgeship" / "arm64-bookworm" / "root"))
    for key in ("identity_file", "known_hosts", "folder", "root"):
        if key in fields:
            fields[key] = str(Path(fields[key]).expanduser())
    for key in ("workdir", "venv"):
        if key in fields:
            fields[key] = _device_path(fields[key])
    if kind == "ssh":
        fields.setdefault("user", getpass.getuser())
    if "identity_file" in fields and not Path(fields["identity_file"]).is_file():
        raise UsageError(f"{where}: identity_file {fields['identity_file']} does not exist; give the path of a private key")
    return Device(name=name, **fields)


def _device_path(path: str) -> str:
    """A path on the device: `~/x` becomes `x` (relative paths start in the login's home there)."""
    if path == "~":
        return "."
    return path[2:] if path.startswith("~/") else path


def select(devices: dict[str, Device], names: list[str] | None, everything: bool = False) -> list[Device]:
    """The devices named (in the order given), or all of them; UsageError for a name not in the inventory."""
    if everything:
        return list(devices.values())
    if not names:
        raise UsageError("name the devices with --on NAME[,NAME...] or take every one with --all")
    unknown = [name for name in names if name not in devices]
    if unknown:
        raise UsageError(f"no device named {', '.join(unknown)} in the inventory; known: {', '.join(devices)}")
    return [devices[name] for name in dict.fromkeys(names)]
