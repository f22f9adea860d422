"""How a file-reference value is written in a table cell: shared by the spec classes
(``scythe.base``) and the compiled schema (``scythe.schema``), with no pydantic to import."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def file_reference_uri(value: Any) -> str | None:
    """The string stored in tables for a file-reference value."""
    if value is None:
        return None
    if isinstance(value, Path):
        return value.as_posix()
    return str(value)
