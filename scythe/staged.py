"""A data file a terminal node staged into a table, named in its node manifest until the
root commits it (``scythe.tables`` writes and commits it)."""

from __future__ import annotations

from pydantic import BaseModel


class StagedFile(BaseModel):
    """A data file written into a table's directory, not yet committed."""

    path: str
    size: int
    rows: int
    modification_time: int
    stats: str
