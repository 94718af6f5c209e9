"""What `pip install 'edgeship[EXTRA]'` puts on a Pi, resolved for manylinux aarch64 / CPython 3.11 and cached.

The wheels land in the cache's wheelhouse the first time and are installed from there with
`--no-index` afterwards, so a warm check needs no network.
"""

from __future__ import annotations

import shutil
import sys
import tomllib
from pathlib import Path

from tools.arm64 import REPO
from tools.arm64.process import run, say
from tools.arm64.rootfs import TARGET_GLIBC_MINOR, TARGET_PYTHON


def target_platform_options() -> list[str]:
    """pip options for Bookworm arm64: every manylinux tag glibc 2.36 accepts (pip does not expand them)."""
    abi = f"cp{TARGET_PYTHON.replace('.', '')}"
    options = ["--only-binary=:all:", "--python-version", TARGET_PYTHON, "--implementation", "cp", "--abi", abi]
    options += ["--platform", "manylinux2014_aarch64"]
    for minor in range(17, TARGET_GLIBC_MINOR + 1):
        options += ["--platform", f"manylinux_2_{minor}_aarch64"]
    return options


def pip(*arguments: str) -> list[str]:
    """A pip command of the dev venv."""
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
    """A wheel of this checkout (and whether its build requirements were cached), built from a copy so the tree gets no build/ folder."""
    source = work / "source"
    shutil.copytree(REPO / "edgeship", source / "edgeship", ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
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
    """`pip install 'edgeship[extra]'` as a Pi would get it (aarch64, CPython 3.11) into `site`: {package: version} and a cache hit."""
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
