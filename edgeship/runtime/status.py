"""The one status vocabulary of edgeship: manifest artifacts, export, verify, selftest, bench rows, reports and tables.

Stdlib only, so the device speaks it too. Every status but `pass` carries a reason.
"""

from __future__ import annotations

PASS = "pass"
"""Made or run, and within every gate that applies (a bench row with no budget passes by running)."""
FAIL = "fail"
"""Made or run, but a gate was missed; the reason names the numbers and the bounds."""
UNCHECKED = "unchecked"
"""Made, but no gate could be applied here (e.g. an Edge TPU file measured only on its accelerator)."""
ERROR = "error"
"""Could not be made or run; the reason says why."""
SKIPPED = "skipped"
"""Not attempted here (a tool or backend is not installed, or the options rule it out); the reason says which."""

STATUSES = (PASS, FAIL, UNCHECKED, ERROR, SKIPPED)
HAS_RESULT = (PASS, FAIL, UNCHECKED)
"""Statuses of something that exists and produced numbers or a file."""

SYMBOLS = {PASS: "✅", FAIL: "❌", UNCHECKED: "❔", ERROR: "⚠️", SKIPPED: "⏭️"}
"""One symbol a status; a failed gate is a red cross, which no font draws as a pass."""

LEGACY = {"ok": PASS, "failed": ERROR}
"""What the statuses of bundle schema 1 mean in this vocabulary."""


def label(status: str, reason: str | None = None) -> str:
    """`✅ pass`, or `❌ fail: agreement 97.00% < 99.00%`: the symbol, the status and the reason."""
    text = f"{SYMBOLS.get(status, '')} {status}".strip()
    return f"{text}: {reason}" if reason else text
