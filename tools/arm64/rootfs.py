"""The emulated Raspberry Pi OS: a minimal Debian Bookworm arm64 root with Python 3.11, built once and cached.

`debootstrap --foreign --variant=minbase --include=python3` downloads and verifies the packages
from the Debian mirror apt uses on this machine and unpacks the essential ones; the rest (Python
and its libraries) are unpacked with `dpkg-deb`. The second stage is skipped on purpose: it needs
binfmt_misc (a kernel-wide registration that containers seldom allow) and only runs maintainer
scripts Python does not need.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
import shutil
import subprocess
import time
from pathlib import Path
from typing import Iterator

from tools.arm64.process import CheckError, Skip, run, say

SUITE = "bookworm"
TARGET_PYTHON = "3.11"
TARGET_GLIBC_MINOR = 36
PYTHON = f"/usr/bin/python{TARGET_PYTHON}"
"""The root's Python, as the guest names it."""
DEFAULT_MIRROR = "http://deb.debian.org/debian"
DEFAULT_CACHE = Path.home() / ".cache" / "edgeship" / "arm64-bookworm"
HOST_PACKAGES = {"qemu-aarch64-static": "qemu-user-static", "debootstrap": "debootstrap", "dpkg-deb": "dpkg"}


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
            last_lines = (attempt.stdout + attempt.stderr).strip().splitlines()[-3:]
            raise Skip(f"apt-get could not install {', '.join(missing)}: {' | '.join(last_lines)}")
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
    """The cached Bookworm arm64 root with python3.11 (and whether it was cached); built (about 20 s) when missing or incomplete."""
    root = cache / "root"
    stamp = root / ".edgeship-root.json"
    if stamp.is_file() and (root / PYTHON.lstrip("/")).is_file():
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
        [qemu, "-L", str(partial), str(partial / PYTHON.lstrip("/")), "-c",
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
