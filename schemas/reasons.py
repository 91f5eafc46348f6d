"""DLQ reason codes (SPEC.md, "DLQ reason codes"): machine-readable, one per kind of rejection."""

from __future__ import annotations

from enum import StrEnum


class Reason(StrEnum):
    MALFORMED_JSON = "malformed_json"
    SCHEMA_VIOLATION = "schema_violation"
    UNKNOWN_SCHEMA = "unknown_schema"
    BAD_SIGNATURE = "bad_signature"
    UNKNOWN_DEVICE = "unknown_device"
    CLOCK_SKEW = "clock_skew"
    OVERSIZED = "oversized"
    LATE_BEYOND_WINDOW = "late_beyond_window"
    SINK_REJECTED = "sink_rejected"
