"""Pure functions that turn storage tools' text output into frozen dataclasses.

Each raises `lab.errors.ParseError` on text it does not understand rather than guess.
"""

from lab.parsers.zpool import (
    DataErrors,
    DataErrorsKind,
    ImportablePool,
    ImportRefusal,
    ImportRefusalKind,
    PoolConfig,
    PoolStatus,
    Scan,
    ScanState,
    Vdev,
    classify_import_refusal,
    parse_scan,
    parse_zpool_import,
    parse_zpool_status,
)

__all__ = [
    "DataErrors",
    "DataErrorsKind",
    "ImportRefusal",
    "ImportRefusalKind",
    "ImportablePool",
    "PoolConfig",
    "PoolStatus",
    "Scan",
    "ScanState",
    "Vdev",
    "classify_import_refusal",
    "parse_scan",
    "parse_zpool_import",
    "parse_zpool_status",
]
