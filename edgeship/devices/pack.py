"""`edgeship device pack`: everything an offline device needs in one folder: the bundle, a wheelhouse, an install script.

The wheelhouse holds edgeship's own wheel and the runtime extra's wheels for the target's platform
and Python (from targets.toml), so copying the folder and running `sh install.sh` makes a venv
with the runtime on a device with no internet and no SSH.
"""

from __future__ import annotations

import asyncio
import shutil
from pathlib import Path

from edgeship.devices.targets import extra_fit, target
from edgeship.devices.wheels import Platform, Wheels
from edgeship.errors import UsageError
from edgeship.files import atomic_directory, check_writable
from edgeship.manifest import load_manifest

EXTRA_ORDER = ("tflite", "litert", "onnx")
INSTALL_SCRIPT = """#!/bin/sh
# Makes a venv (default ~/edgeship, or the folder given) with edgeship[{extra}] from ./wheels, offline; written by `edgeship device pack`.
set -e; here="$(cd "$(dirname "$0")" && pwd)"; venv="${{1:-$HOME/edgeship}}"; python3 -m venv "$venv" || {{ echo "python3 -m venv failed: install python3-venv (sudo apt install python3-venv)" >&2; exit 1; }}; "$venv/bin/pip" install --quiet --no-index --find-links "$here/wheels" 'edgeship[{extra}]' && echo "ready: $venv/bin/python -m edgeship.runtime selftest $here/bundle"
"""


def choose_extra(name: str, extra: str | None) -> str:
    """The extra asked for, or the first of tflite, litert, onnx whose wheels all exist for the target."""
    chosen = target(name)
    if extra is not None:
        overall, packages = extra_fit(extra, chosen.machine, chosen.python, chosen.glibc)
        if overall == "no wheel":
            reasons = "; ".join(fit.detail for fit in packages if fit.status == "no wheel")
            raise UsageError(f"edgeship[{extra}] has no wheels for {name} ({reasons}); choose another --extra")
        return extra
    for candidate in EXTRA_ORDER:
        if extra_fit(candidate, chosen.machine, chosen.python, chosen.glibc)[0] == "fits":
            return candidate
    raise UsageError(f"no runtime extra is known to have wheels for {name}; give --extra to try one anyway")


def pack_bundle(bundle: Path, target_name: str, out: Path, extra: str | None = None, edgeship_wheel: str | None = None) -> dict:
    """Write OUT/bundle, OUT/wheels and OUT/install.sh; return what was written."""
    load_manifest(bundle)
    chosen = target(target_name)
    extra = choose_extra(target_name, extra)
    check_writable(out, folder=True)
    platform = Platform(chosen.machine, chosen.python, chosen.glibc)
    wheels = Wheels(edgeship_wheel)

    async def gather() -> list[Path]:
        return [await wheels.edgeship_wheel(), *await wheels.wheelhouse(platform, extra)]

    files = asyncio.run(gather())
    with atomic_directory(out) as staging:
        shutil.copytree(bundle, staging / "bundle", ignore=shutil.ignore_patterns(".*", "__pycache__"))
        (staging / "wheels").mkdir()
        for wheel in files:
            shutil.copy2(wheel, staging / "wheels" / wheel.name)
        script = staging / "install.sh"
        script.write_text(INSTALL_SCRIPT.format(extra=extra), encoding="utf-8")
        script.chmod(0o755)
    return {"out": out, "wheels": len(files), "platform": f"{target_name} (Python {chosen.python}, {chosen.machine})", "extra": extra}
