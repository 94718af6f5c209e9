"""The wheels a device installs, made on the workstation: edgeship's own wheel and the runtime extra's wheels for the device.

edgeship is not on a package index, so its wheel is built here from the sources this edgeship runs
from (cached by their hash). The extra's dependencies are downloaded by pip for the device's
platform and Python, not this machine's (`pip download --only-binary=:all: --platform
manylinux_2_X_ARCH --python-version X.Y --implementation cp --abi cpXY`), so a device without
internet gets everything by copy. Both are cached under ~/.cache/edgeship (or $EDGESHIP_CACHE),
the wheelhouse keyed on the platform, the Python and the extra's requirements: a second run, or a
second device of the same kind, downloads nothing.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import shutil
import sys
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

from edgeship.errors import DeviceError, UsageError

OLDEST_MANYLINUX = 17
MANYLINUX_ARCHES = ("x86_64", "aarch64", "armv7l", "i686", "ppc64le", "s390x")


def cache_root() -> Path:
    return Path(os.environ.get("EDGESHIP_CACHE") or Path.home() / ".cache" / "edgeship")


@dataclass(frozen=True)
class Platform:
    """What pip needs to pick a device's wheels: machine, Python X.Y and glibc."""

    machine: str
    python: str
    glibc: str | None

    @classmethod
    def from_facts(cls, facts: dict) -> "Platform":
        libc = facts.get("libc") or ["", ""]
        glibc = libc[1] if libc and libc[0] == "glibc" else None
        return cls(facts["machine"], ".".join(facts["python"].split(".")[:2]), glibc)

    @property
    def tag(self) -> str:
        return f"cp{self.python.replace('.', '')}-{self.machine}-glibc{self.glibc or 'none'}"

    def pip_options(self) -> list[str]:
        """pip download options for this platform: every manylinux tag its glibc accepts (pip does not expand them)."""
        if self.machine not in MANYLINUX_ARCHES or not self.glibc:
            raise DeviceError(f"no manylinux wheels fit a {self.machine} device with {'glibc ' + self.glibc if self.glibc else 'no glibc'}; "
                              "install the runtime there by hand (see the README) and run again")
        abi = f"cp{self.python.replace('.', '')}"
        options = ["--only-binary=:all:", "--python-version", self.python, "--implementation", "cp", "--abi", abi]
        minor = int(self.glibc.split(".")[1])
        options += ["--platform", f"manylinux2014_{self.machine}"]
        for version in range(OLDEST_MANYLINUX, minor + 1):
            options += ["--platform", f"manylinux_2_{version}_{self.machine}"]
        return options


def _sources(root: Path) -> list[Path]:
    files = [p for p in sorted((root / "edgeship").rglob("*")) if p.is_file() and "__pycache__" not in p.parts and p.suffix != ".pyc"]
    return files + [root / name for name in ("pyproject.toml", "README.md") if (root / name).is_file()]


def source_root() -> Path:
    """The checkout this edgeship runs from (pyproject.toml beside the package), or a UsageError saying how to give a wheel."""
    import edgeship

    root = Path(edgeship.__file__).resolve().parent.parent
    if not (root / "pyproject.toml").is_file():
        raise UsageError("edgeship's sources are not here (no pyproject.toml beside the package), so its wheel cannot be built; "
                         "build one in your checkout with `pip wheel --no-deps -w dist .` and give it with --edgeship-wheel")
    return root


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as stream:
        for chunk in iter(lambda: stream.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


async def _run(command: list[str], what: str) -> None:
    process = await asyncio.create_subprocess_exec(*command, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
                                                   cwd=tempfile.gettempdir())
    output, _ = await process.communicate()
    if process.returncode != 0:
        tail = " | ".join(output.decode(errors="replace").strip().splitlines()[-4:])
        raise DeviceError(f"{what} failed: {tail}")


def requirements_of(wheel: Path) -> list[str]:
    """The Requires-Dist lines of a wheel's METADATA (what an extra pulls in)."""
    with zipfile.ZipFile(wheel) as archive:
        name = next(n for n in archive.namelist() if n.endswith(".dist-info/METADATA"))
        text = archive.read(name).decode("utf-8")
    return [line.split(":", 1)[1].strip() for line in text.splitlines() if line.startswith("Requires-Dist:")]


class Wheels:
    """Builds edgeship's wheel once and downloads each platform's wheelhouse once, however many devices ask at once."""

    def __init__(self, edgeship_wheel: str | os.PathLike | None = None, cache: Path | None = None) -> None:
        self.cache = cache or cache_root()
        self.given = Path(edgeship_wheel) if edgeship_wheel else None
        if self.given is not None and not (self.given.is_file() and self.given.name.startswith("edgeship-") and self.given.suffix == ".whl"):
            raise UsageError(f"--edgeship-wheel {self.given} is not an edgeship wheel file (edgeship-*.whl)")
        self._edgeship: Path | None = None
        self._locks: dict[str, asyncio.Lock] = {}
        self._houses: dict[str, list[Path]] = {}

    def _lock(self, key: str) -> asyncio.Lock:
        return self._locks.setdefault(key, asyncio.Lock())

    async def edgeship_wheel(self) -> Path:
        """edgeship's wheel: the one given, else one built from the sources (cached by their hash)."""
        async with self._lock("edgeship"):
            if self._edgeship is None:
                self._edgeship = self.given or await self._build()
            return self._edgeship

    async def _build(self) -> Path:
        root = source_root()
        digest = hashlib.sha256()
        for path in _sources(root):
            digest.update(str(path.relative_to(root)).encode())
            digest.update(path.read_bytes())
        folder = self.cache / "wheels" / digest.hexdigest()[:16]
        built = sorted(folder.glob("edgeship-*.whl"))
        if built:
            return built[0]
        with tempfile.TemporaryDirectory() as scratch:
            copy = Path(scratch) / "src"
            shutil.copytree(root / "edgeship", copy / "edgeship", ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
            for name in ("pyproject.toml", "README.md"):
                if (root / name).is_file():
                    shutil.copy2(root / name, copy / name)
            dist = Path(scratch) / "dist"
            await _run([sys.executable, "-m", "pip", "wheel", "--quiet", "--disable-pip-version-check", "--no-deps", "-w", str(dist), str(copy)],
                       "building edgeship's wheel")
            folder.mkdir(parents=True, exist_ok=True)
            wheel = next(dist.glob("edgeship-*.whl"))
            staged = folder / f".{wheel.name}.{os.getpid()}"
            shutil.copy2(wheel, staged)
            os.replace(staged, folder / wheel.name)
        return folder / wheel.name

    async def wheelhouse(self, platform: Platform, extra: str) -> list[Path]:
        """The extra's dependency wheels for a platform (edgeship's own wheel not among them)."""
        wheel = await self.edgeship_wheel()
        requirements = hashlib.sha256("\n".join(requirements_of(wheel)).encode()).hexdigest()[:12]
        key = f"{extra}-{platform.tag}-{requirements}"
        async with self._lock(key):
            if key not in self._houses:
                self._houses[key] = await self._download(key, platform, extra, wheel)
            return self._houses[key]

    async def _download(self, key: str, platform: Platform, extra: str, wheel: Path) -> list[Path]:
        folder = self.cache / "wheelhouse" / key
        stamp = folder / ".complete.json"
        if stamp.is_file():
            names = json.loads(stamp.read_text(encoding="utf-8"))["wheels"]
            if all((folder / name).is_file() for name in names):
                return [folder / name for name in names]
        options = platform.pip_options()
        with tempfile.TemporaryDirectory(dir=self.cache if self.cache.is_dir() else None) as scratch:
            command = [sys.executable, "-m", "pip", "download", "--quiet", "--disable-pip-version-check", "--dest", scratch,
                       *options, f"edgeship[{extra}] @ {wheel.resolve().as_uri()}"]
            await _run(command, f"downloading the edgeship[{extra}] wheels for Python {platform.python} on {platform.machine} "
                                f"(glibc {platform.glibc})")
            folder.mkdir(parents=True, exist_ok=True)
            names = []
            for found in sorted(Path(scratch).glob("*.whl")):
                if found.name.startswith("edgeship-"):
                    continue
                os.replace(found, folder / found.name)
                names.append(found.name)
        staged = folder / f".complete.{os.getpid()}"
        staged.write_text(json.dumps({"wheels": names, "platform": platform.tag, "extra": extra}, indent=2), encoding="utf-8")
        os.replace(staged, stamp)
        return [folder / name for name in names]

    async def marker(self, platform: Platform, extra: str) -> dict:
        """What a venv with these wheels installed records: the extra, the dependency wheels, edgeship's wheel hash."""
        wheel = await self.edgeship_wheel()
        house = await self.wheelhouse(platform, extra)
        return {"extra": extra, "platform": platform.tag, "deps": sorted(p.name for p in house), "edgeship": _sha256(wheel)}
