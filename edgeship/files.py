"""Atomic writes and file hashing: an interrupted run never leaves a half-written file or bundle.

Every writer writes to a temporary name in the destination folder and renames it into place,
so readers see either the old complete file or the new complete file.
"""

from __future__ import annotations

import contextlib
import errno
import glob
import hashlib
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any, Iterator

from edgeship.errors import OutputError


def _current_umask() -> int:
    """The process umask (read by setting and restoring it), so atomic files get the usual permissions."""
    mask = os.umask(0)
    os.umask(mask)
    return mask


_UMASK = _current_umask()


def sha256_file(path: str | os.PathLike, chunk_bytes: int = 1 << 20) -> str:
    """Hex sha256 of a file, read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as stream:
        for chunk in iter(lambda: stream.read(chunk_bytes), b""):
            digest.update(chunk)
    return digest.hexdigest()


def ensure_directory(path: str | os.PathLike) -> Path:
    """Create a folder (and parents) or raise OutputError naming why it cannot be one."""
    folder = Path(path)
    if folder.exists() and not folder.is_dir():
        raise OutputError(f"{folder} is a file, not a folder; choose another output path")
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise output_error(folder, exc) from exc
    if not os.access(folder, os.W_OK):
        raise not_writable(folder)
    return folder


def check_writable(path: str | os.PathLike, folder: bool = False) -> Path:
    """Refuse an output path that cannot be written, before any work is done and without creating anything.

    Writers put a temporary file or folder beside `path`, so the nearest existing folder above it
    must be writable; `folder` says whether `path` itself is to be a folder or a file.
    """
    target = Path(path)
    if target.exists() and target.is_dir() != folder:
        kinds = ("a folder", "a file") if target.is_dir() else ("a file", "a folder")
        raise OutputError(f"{target} is {kinds[0]}, not {kinds[1]}; choose another output path")
    existing = target.parent
    while not existing.exists():
        existing = existing.parent
    if not existing.is_dir():
        raise OutputError(f"cannot write {target}: a part of the path is a file ({existing}); choose another output path")
    if not os.access(existing, os.W_OK):
        raise not_writable(existing)
    return target


def not_writable(folder: Path) -> OutputError:
    """The error for a folder that cannot be written to, saying when the whole file system is read-only."""
    try:
        read_only = bool(os.statvfs(folder).f_flag & os.ST_RDONLY)
    except OSError:
        read_only = False
    reason = "is on a read-only file system" if read_only else "is not writable"
    return OutputError(f"{folder} {reason}; choose a folder you can write to")


def output_error(path: Path, exc: OSError) -> OutputError:
    """Translate an OSError during writing into one clear line."""
    if exc.errno == errno.ENOSPC:
        return OutputError(f"no space left on the device while writing {path}; free some space and run again")
    if exc.errno == errno.EROFS:
        return OutputError(f"cannot write {path}: the file system is read-only; choose a folder you can write to")
    if exc.errno in (errno.EACCES, errno.EPERM):
        return OutputError(f"cannot write {path}: {exc.strerror}; choose a folder you can write to")
    if exc.errno == errno.ENOTDIR:
        return OutputError(f"cannot write {path}: a part of the path is a file, not a folder")
    return OutputError(f"cannot write {path}: {exc.strerror or exc}")


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, suffix: str = ".tmp") -> Iterator[Path]:
    """Yield a temporary path beside `path`; on success rename it onto `path`, on failure delete it.

    `suffix` is for writers that insist on an extension (Keras saves only to `*.keras`).
    """
    target = Path(path)
    ensure_directory(target.parent)
    try:
        handle, temporary_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=suffix, dir=target.parent)
    except OSError as exc:
        raise output_error(target, exc) from exc
    os.close(handle)
    temporary = Path(temporary_name)
    try:
        yield temporary
        os.chmod(temporary, 0o666 & ~_UMASK)
        os.replace(temporary, target)
    except OSError as exc:
        temporary.unlink(missing_ok=True)
        raise output_error(target, exc) from exc
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    """Write bytes to `path` atomically."""
    with atomic_path(path) as temporary:
        with open(temporary, "wb") as stream:
            stream.write(data)
            stream.flush()
            os.fsync(stream.fileno())
    return Path(path)


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    """Write UTF-8 text to `path` atomically."""
    return atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: str | os.PathLike, payload: Any) -> Path:
    """Write `payload` as indented JSON to `path` atomically."""
    return atomic_write_text(path, json.dumps(payload, indent=2, sort_keys=False, default=_json_default) + "\n")


def _json_default(value: Any) -> Any:
    """Serialise numpy scalars and arrays, which json does not know."""
    if hasattr(value, "tolist"):
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"cannot serialise {type(value).__name__} to JSON")


@contextlib.contextmanager
def atomic_directory(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a fresh staging folder beside `path`; on success it replaces `path` as a whole.

    A crash while staging leaves the previous folder untouched. The swap is two renames; a crash
    between them leaves no folder at `path` (and the old one under a hidden name), never a mix.
    The hidden names carry the process id, so a later run removes what a killed one left behind.
    """
    target = Path(path)
    if target.exists() and not target.is_dir():
        raise OutputError(f"{target} is a file, not a folder; choose another output path")
    ensure_directory(target.parent)
    _remove_leftovers(target)
    try:
        staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.{os.getpid()}.", suffix=".staging", dir=target.parent))
        os.chmod(staging, 0o777 & ~_UMASK)
    except OSError as exc:
        raise output_error(target.parent, exc) from exc
    try:
        yield staging
        previous = None
        if target.exists():
            previous = target.with_name(f".{target.name}.{os.getpid()}.old")
            os.replace(target, previous)
        os.replace(staging, target)
        if previous is not None:
            shutil.rmtree(previous, ignore_errors=True)
    except OSError as exc:
        shutil.rmtree(staging, ignore_errors=True)
        raise output_error(target, exc) from exc
    except OutputError as exc:
        shutil.rmtree(staging, ignore_errors=True)
        # Name the file where the user will look for it, not inside the hidden staging folder.
        raise OutputError(str(exc).replace(str(staging), str(target))) from exc
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


def _remove_leftovers(target: Path) -> None:
    """Delete the staging and swapped-out folders beside `target` whose process is gone (killed mid-export)."""
    if os.name != "posix":
        return
    prefix = f".{target.name}."
    for leftover in target.parent.glob(glob.escape(prefix) + "*"):
        owner = leftover.name[len(prefix):].split(".")[0]
        if leftover.suffix in (".staging", ".old") and owner.isdigit() and not _process_alive(int(owner)):
            shutil.rmtree(leftover, ignore_errors=True)


def _process_alive(pid: int) -> bool:
    """Whether a process with this id runs (signal 0 checks without sending anything)."""
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


@contextlib.contextmanager
def exclusive_lock(path: str | os.PathLike) -> Iterator[None]:
    """Hold an exclusive lock on `path` (created if missing) while building something several processes may build at once.

    POSIX `flock`: released when the block ends or the process dies, so a killed builder never leaves it held.
    """
    import fcntl

    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    with open(target, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
