"""report/: the validation report — numbers as a DataFrame, and a self-contained HTML file with charts."""

from numerflow.report.html import write_html_report
from numerflow.report.scoring import (
    ValidationScores,
    files_beside,
    read_table,
    score_files,
    score_validation,
    validation_report,
)

__all__ = [
    "ValidationScores",
    "files_beside",
    "read_table",
    "score_files",
    "score_validation",
    "validation_report",
    "write_html_report",
]
