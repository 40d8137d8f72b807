"""Paper-style tables and figures from the results store (JSON records written by the probe runner)."""

from echojepa.report.build import build_report, print_tables
from echojepa.report.records import RecordError, load_records
from echojepa.report.tables import Table, build_tables, complete

__all__ = ["RecordError", "Table", "build_report", "build_tables", "complete", "load_records", "print_tables"]
