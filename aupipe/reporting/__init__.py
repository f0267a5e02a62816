"""The report: one self-contained HTML page (and a summary PNG) per video, from its tables (docs/report.md)."""
