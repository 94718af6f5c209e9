"""Reliability fixtures: the shared bundle, bad model files made once a session, and a runner for the real command lines.

Every refusal is checked the same way: exit 2, exactly one line on stderr that starts with the
program's `error:` prefix and names the problem, and no traceback.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

PROGRAMS = {
    "edgeship": ([sys.executable, "-m", "edgeship.cli"], "edgeship: error: "),
    "runtime": ([sys.executable, "-m", "edgeship.runtime"], "python -m edgeship.runtime: error: "),
}


def run_cli(program: str, *args: object, timeout: float = 180) -> subprocess.CompletedProcess:
    """Run `edgeship ...` or `python -m edgeship.runtime ...` as a real subprocess and capture its output."""
    command, _ = PROGRAMS[program]
    return subprocess.run([*command, *map(str, args)], capture_output=True, text=True, timeout=timeout)


def assert_refused(
    result: subprocess.CompletedProcess, program: str, *words: str, code: int = 2, after_progress: bool = False
) -> str:
    """The command failed with `code` and one stderr line naming the problem (each of `words`); returns that line.

    `after_progress`: the failure came mid-work (a full disk), so progress lines may precede the
    error line, which must then be the last line and the only one with the error prefix.
    """
    _, prefix = PROGRAMS[program]
    lines = result.stderr.strip().splitlines()
    assert "Traceback" not in result.stderr, result.stderr
    assert result.returncode == code, (result.returncode, result.stderr)
    if after_progress:
        assert [line for line in lines if "error:" in line] == lines[-1:], result.stderr
    else:
        assert len(lines) == 1, result.stderr
    line = lines[-1]
    assert line.startswith(prefix), line
    for word in words:
        assert word.lower() in line.lower(), (word, line)
    return line


def tree(folder: Path) -> dict[str, bytes]:
    """Every file below `folder` (hidden ones included) with its content, to prove nothing was written or changed."""
    return {str(path.relative_to(folder)): path.read_bytes() for path in sorted(folder.rglob("*")) if path.is_file()}


@pytest.fixture(scope="session")
def cli():
    """run_cli: run `edgeship ...` ("edgeship") or `python -m edgeship.runtime ...` ("runtime") as a subprocess."""
    return run_cli


@pytest.fixture(scope="session")
def refused():
    """assert_refused: exit 2 (or `code`), one stderr line with the program's error prefix and the words given, no traceback."""
    return assert_refused





@pytest.fixture
def digit_npy(tmp_path, test_images) -> Path:
    """One real test digit as a .npy file of raw uint8 pixels."""
    path = tmp_path / "digit.npy"
    np.save(path, test_images[0])
    return path
