"""The report stage: one Markdown page, its JSON twin and PNG charts from a run folder's files."""

from edgeship.report.build import build_report

__all__ = ["build_report"]
