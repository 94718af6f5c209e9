"""A bundle folder opened for the runtime: its manifest, its files checked by sha256, the artifact to run, the golden set.

Paths inside a bundle are checked before anything is opened (no absolute names, no `..`, no
symlinks that lead out), and a file's sha256 is compared with the manifest's before it is loaded.
"""

from __future__ import annotations

import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edgeship.errors import BackendUnavailableError, BundleError, IntegrityError, ModelError, UsageError
from edgeship.files import sha256_file
from edgeship.manifest import Artifact, Manifest, load_manifest, resolve_in_bundle
from edgeship.runtime.backends import FORMAT_BACKENDS, backend_for_format, backend_module, installed
from edgeship.runtime.status import FAIL

PREFERENCE = (
    "tflite-int8", "tflite-fp32", "onnx", "tflite-dynamic", "tflite-fp16", "onnx-int8", "tflite-int8-uint8io",
    "onnx-ort", "onnx-ort-int8", "tflite-int16x8", "edgetpu",
)
"""Default artifact order: the fastest faithful file first."""

GOLDEN_ARRAYS = ("images", "probabilities")
"""What golden.npz must hold: uint8 test images and the Keras model's probabilities for them (plus `labels`)."""


@dataclass
class Bundle:
    """A bundle folder and its validated manifest."""

    folder: Path
    manifest: Manifest

    @classmethod
    def open(cls, folder: str | Path) -> "Bundle":
        """Read and validate folder/manifest.json."""
        folder = Path(folder)
        return cls(folder, load_manifest(folder))

    def file(self, name: str, sha256: str | None, verify: bool = True) -> Path:
        """The path of a file the manifest names, inside the bundle and (unless verify=False) matching its sha256."""
        path = resolve_in_bundle(self.folder, name)
        if not path.is_file():
            raise ModelError(f"{name} is missing from the bundle {self.folder}; copy the whole bundle folder")
        if verify:
            verify_file(path, sha256 or "")
        return path

    def artifact_path(self, artifact: Artifact, verify: bool = True) -> Path:
        """An exported artifact's file, checked."""
        return self.file(artifact.file or "", artifact.sha256, verify)

    def choose(self, name: str | None = None, backend: str | None = None, delegate: str | None = None) -> Artifact:
        """The artifact named, else the best one an installed backend runs (see choose_artifact)."""
        return choose_artifact(self.manifest, name, backend, delegate)

    def golden(self, verify: bool = True) -> dict[str, np.ndarray]:
        """The golden images, the Keras model's probabilities and the labels, sha256-checked unless verify=False."""
        record = self.manifest.golden
        if not record:
            raise BundleError(f"{self.folder} has no golden set (manifest.golden); re-export it with this edgeship to self-test")
        path = resolve_in_bundle(self.folder, record["file"])
        if not path.is_file():
            raise BundleError(f"{record['file']} is missing from {self.folder}; copy the whole bundle folder")
        if verify:
            verify_file(path, record["sha256"])
        try:
            with np.load(path, allow_pickle=False) as golden:
                arrays = {key: golden[key] for key in golden.files}
        except (ValueError, OSError, EOFError, zipfile.BadZipFile, zlib.error) as exc:
            raise BundleError(f"{path} is not a readable .npz ({exc}); re-export the bundle") from exc
        missing = [key for key in GOLDEN_ARRAYS if key not in arrays]
        if missing:
            raise BundleError(f"{path} lacks {', '.join(missing)}; re-export the bundle")
        return arrays


def verify_file(path: Path, expected: str) -> None:
    """IntegrityError unless the file's sha256 is the one the manifest recorded."""
    actual = sha256_file(path)
    if actual != expected:
        raise IntegrityError(
            f"{path.name} does not match its manifest (sha256 {actual[:12]}... but the manifest records {expected[:12]}...); "
            "it was changed or damaged in transit: copy the bundle again, or pass --no-verify (verify=False) to run it anyway"
        )


def choose_artifact(manifest: Manifest, name: str | None, backend: str | None, delegate: str | None) -> Artifact:
    """The artifact named, else the first in PREFERENCE that passed its gates and whose backend is installed.

    An Edge TPU file is only chosen with its delegate; a file that failed its gates only when named.
    """
    if name is not None:
        chosen = manifest.artifact(name)
        if not chosen.has_file:
            runnable = ", ".join(a.name for a in manifest.artifacts if a.has_file) or "none"
            raise BundleError(f"artifact {name!r} was not exported ({chosen.reason or chosen.status}); this bundle has: {runnable}")
        if backend is not None and chosen.format not in backend_module(backend).FORMATS:
            raise UsageError(f"the {backend} backend cannot run {name} ({chosen.format}); use {backend_for_format(chosen.format)}")
        return chosen
    candidates = [a for a in manifest.artifacts if a.has_file and a.status != FAIL and a.format in FORMAT_BACKENDS]
    if backend is not None:
        formats = backend_module(backend).FORMATS
        candidates = [a for a in candidates if a.format in formats]
    if delegate == "edgetpu":
        candidates = [a for a in candidates if a.format == "edgetpu"]
        if not candidates:
            reasons = "; ".join(f"{a.name}: {a.reason}" for a in manifest.artifacts if a.format == "edgetpu" and a.reason)
            raise BundleError(
                "this bundle has no exported edgetpu artifact" + (f" ({reasons})" if reasons else "")
                + "; re-export it where edgetpu_compiler is installed, or name an artifact with --artifact"
            )
    else:
        candidates = [a for a in candidates if a.format != "edgetpu"]
    runnable = [a for a in candidates if installed(FORMAT_BACKENDS[a.format])]
    if not runnable:
        names = ", ".join(f"{a.name} ({a.format})" for a in candidates) or "none that fit the options given"
        raise BackendUnavailableError(
            f"no backend installed here runs this bundle's artifacts: {names}; "
            "install one with pip install 'edgeship[litert]' or 'edgeship[onnx]'"
        )
    order = {artifact_name: position for position, artifact_name in enumerate(PREFERENCE)}
    return min(runnable, key=lambda a: order.get(a.name, len(order)))
