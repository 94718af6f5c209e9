"""The platform facts of targets.toml: named targets, and which runtime extra fits a platform (fits, no wheel, or unknown)."""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from typing import Any

from edgeship.devices.inventory import _load_toml
from edgeship.errors import UsageError


@lru_cache(maxsize=1)
def facts() -> dict[str, Any]:
    """targets.toml as loaded (it ships inside the package)."""
    return _load_toml(resources.files("edgeship.devices").joinpath("targets.toml").read_text(encoding="utf-8"))


@dataclass(frozen=True)
class Target:
    """A named platform: machine, Python X.Y and glibc, with where those facts come from."""

    name: str
    description: str
    machine: str
    python: str
    glibc: str
    source: str


def target(name: str) -> Target:
    """A named target, or a UsageError listing the known names."""
    known = facts()["targets"]
    if name not in known:
        raise UsageError(f"unknown target {name!r}; known targets: {', '.join(known)}")
    return Target(name=name, **known[name])


@dataclass(frozen=True)
class PackageFit:
    """Whether one requirement of an extra has a wheel for a platform: fits, no wheel, or unknown."""

    package: str
    status: str
    detail: str
    source: str | None


def _version_tuple(text: str) -> tuple[int, ...]:
    return tuple(int(part) for part in text.split(".") if part.isdigit())


def package_fit(package: str, machine: str, python: str, glibc: str | None) -> PackageFit:
    """One requirement on one platform, from the wheel facts."""
    entry = next((w for w in facts()["wheels"] if w["package"] == package and w["machine"] == machine), None)
    if entry is None:
        return PackageFit(package, "unknown", f"no facts for {package} on {machine}", None)
    if python in entry["no_wheel_pythons"]:
        return PackageFit(package, "no wheel", f"no {machine} wheel for Python {python}", entry["source"])
    if python not in entry["pythons"]:
        return PackageFit(package, "unknown", f"Python {python} on {machine} not checked", entry["source"])
    version = entry["version"][python] if isinstance(entry["version"], dict) else entry["version"]
    if glibc is None:
        return PackageFit(package, "unknown", f"{version} needs glibc {entry['glibc']}; the device's glibc is unknown", entry["source"])
    if _version_tuple(glibc) < _version_tuple(entry["glibc"]):
        return PackageFit(package, "no wheel", f"{version} needs glibc {entry['glibc']}, the device has {glibc}", entry["source"])
    return PackageFit(package, "fits", f"{package.split('<')[0]} {version}", entry["source"])


def extra_fit(extra: str, machine: str, python: str, glibc: str | None) -> tuple[str, list[PackageFit]]:
    """An extra on a platform: 'fits' when every requirement does, 'no wheel' when one has none, else 'unknown'."""
    packages = [package_fit(package, machine, python, glibc) for package in facts()["extras"][extra]]
    statuses = {fit.status for fit in packages}
    overall = "no wheel" if "no wheel" in statuses else "unknown" if "unknown" in statuses else "fits"
    return overall, packages


def fits_summary(machine: str, python: str, glibc: str | None) -> dict[str, str]:
    """Every extra's verdict on a platform, one short line each (e.g. 'fits: onnxruntime 1.32.0, numpy 2.4.6')."""
    summary = {}
    for extra in facts()["extras"]:
        overall, packages = extra_fit(extra, machine, python, glibc)
        if overall == "fits":
            summary[extra] = "fits: " + ", ".join(fit.detail for fit in packages)
        else:
            summary[extra] = f"{overall}: " + "; ".join(fit.detail for fit in packages if fit.status != "fits")
    return summary
