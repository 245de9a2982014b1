"""The service report: figures about how fast and how well the tickets of a period were
answered, counted by the database (`make_report`), as a typed `core.report.Report` that the
command line prints as a table, JSON or CSV."""

from mailbridge.reports.make import make_report

__all__ = ["make_report"]
