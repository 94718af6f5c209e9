"""Markdown tables, the one writer every command, report and device uses (stdlib only)."""

from __future__ import annotations

from typing import Any, Iterable, Sequence

EMPTY = "–"
"""What an empty cell shows: a value that does not apply or was not measured."""


def cell(value: Any, fmt: str = "") -> str:
    """A value as table text: None is EMPTY, numbers take `fmt`, and '|' or line breaks cannot break the row."""
    if value is None:
        return EMPTY
    text = format(value, fmt) if fmt else str(value)
    return text.replace("\\", "\\\\").replace("|", "\\|").replace("\r", " ").replace("\n", " ") or EMPTY


def markdown_table(headers: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    """A GitHub-flavoured Markdown table; cells are strings already formatted, or values shown with str()."""
    lines = ["| " + " | ".join(cell(header) for header in headers) + " |", "|" + "---|" * len(headers)]
    for row in rows:
        if len(row) != len(headers):
            raise ValueError(f"a table row has {len(row)} cells for {len(headers)} headers")
        lines.append("| " + " | ".join(cell(value) for value in row) + " |")
    return "\n".join(lines)
