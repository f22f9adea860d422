"""Delta Lake tables: create them with their compiled schema, stage validated
batches as data files, commit staged files once, read them back validated.

Every Delta read and write of Scythe goes through this module. deltalake and
pandera are imported on first use.

Staging and committing are split on purpose: terminal nodes stage data files
(anywhere, in parallel, retried at will) and hand up only small
:class:`~scythe.staged.StagedFile` references; the root commits every table once, under a
Delta app-transaction id that makes a repeated commit a no-op (invariant 2).
"""

from __future__ import annotations

import hashlib
import io
import json
import math
import time
import uuid
from collections.abc import Sequence
from datetime import date, datetime
from typing import TYPE_CHECKING, Any

import polars as pl

from scythe.errors import ResultValidationError, TableError, TableMissingError
from scythe.schema import TableSchema, describe, failure_cases
from scythe.storage import Store

if TYPE_CHECKING:
    from deltalake import DeltaTable
    from deltalake.transaction import AddAction

    from scythe.staged import StagedFile

# One transaction id version per committing node: a node commits at most once.
COMMIT_VERSION = 1


def _add_action(staged: StagedFile) -> AddAction:
    """The Delta log's add action of a staged file."""
    from deltalake.transaction import AddAction

    return AddAction(
        path=staged.path,
        size=staged.size,
        partition_values={},
        modification_time=staged.modification_time,
        data_change=True,
        stats=staged.stats,
    )


def _open(store: Store, key: str, version: int | None = None) -> DeltaTable:
    from deltalake import DeltaTable
    from deltalake.exceptions import TableNotFoundError

    uri = store.table_uri(key)
    try:
        return DeltaTable(uri, version=version, storage_options=store.storage_options())
    except TableNotFoundError as err:
        raise _missing(uri, err) from None


def _missing(uri: str, err: Exception) -> TableMissingError:
    return TableMissingError(f"no Delta table at {uri}: it was deleted or never created ({err})")


# The casts polars' own Delta scan allows, so that a data file whose dtype differs from
# the table's Delta schema (narrower integers, another datetime unit) reads as Delta has it.
_DELTA_CASTS = pl.ScanCastOptions(
    integer_cast="upcast",
    float_cast=["upcast", "downcast"],
    datetime_cast=("nanosecond-downcast", "millisecond-upcast", "convert-timezone"),
    missing_struct_fields="insert",
    extra_struct_fields="ignore",
)


def _collect(
    store: Store, key: str, version: int | None = None, columns: list[str] | None = None
) -> pl.DataFrame:
    """The Delta table at ``key`` read by polars; only ``columns`` if given.

    deltalake lists the version's data files and polars scans them: no pyarrow
    (polars' own Delta scan imports it) and no pandas in the reading process.
    Scythe's tables have no partitions and no deletion vectors.
    """
    delta = _open(store, key, version)
    schema = pl.Schema(delta.schema())
    paths = delta.file_uris()
    if not paths:
        empty = pl.DataFrame(schema=schema)
        return empty.select(columns) if columns is not None else empty
    options = store.storage_options() or None
    try:
        scan = pl.scan_parquet(
            paths,
            schema=schema,
            missing_columns="insert",
            extra_columns="ignore",
            cast_options=_DELTA_CASTS,
            storage_options=options,
            credential_provider=None if options else "auto",
        )
        return (scan.select(columns) if columns is not None else scan).collect()
    except FileNotFoundError as err:  # a data file, or the local table's folder, is gone
        raise _missing(store.table_uri(key), err) from None


def table_exists(store: Store, key: str) -> bool:
    """Whether the Delta table at ``key`` exists (its first log entry is there)."""
    return store.exists(f"{key}/_delta_log/{0:020d}.json")


def create_table(store: Store, key: str, table: TableSchema) -> None:
    """Create an empty Delta table at ``key`` with the table's Arrow schema (no-op if it exists)."""
    from deltalake import DeltaTable

    DeltaTable.create(
        store.table_uri(key),
        schema=table.delta_schema(),
        mode="ignore",
        name=table.name,
        description=table.description or None,
        storage_options=store.storage_options(),
    )


def write_table(store: Store, key: str, table: TableSchema, frame: pl.DataFrame) -> None:
    """Create the Delta table at ``key`` holding ``frame``, in one commit (an error if one
    exists there).

    polars writes the data file and the table is created with it in place:
    no pyarrow in the process.
    """
    from deltalake import Schema
    from deltalake.transaction import create_table_with_add_actions

    staged = stage_frame(store, key, table, frame, name="allocation")
    create_table_with_add_actions(
        store.table_uri(key),
        Schema.from_arrow(table.delta_schema()),
        [_add_action(staged)] if staged is not None else [],
        mode="error",
        name=table.name,
        description=table.description or None,
        storage_options=store.storage_options(),
    )


def read_column(store: Store, key: str, name: str, dtype: pl.DataType) -> pl.Series:
    """One column of the Delta table at ``key`` (every committed row, in file order)."""
    return _collect(store, key, columns=[name]).get_column(name).cast(dtype)


def stage_frame(
    store: Store, key: str, table: TableSchema, frame: pl.DataFrame, *, name: str
) -> StagedFile | None:
    """Write ``frame`` as one Parquet data file inside the table at ``key``; return its reference.

    The file name holds ``name`` (the staging node) and a random id, and the
    file is written only if absent: no writer, however late, ever rewrites a
    file, so a table version always shows what it showed when committed. A
    retried node stages new files; only the ones its node manifest names are
    committed. Returns None for an empty frame.
    """
    if frame.height == 0:
        return None
    buffer = io.BytesIO()
    # polars' own writer: the frame has the table's exact dtypes, and workers need no pyarrow
    conform(frame, table).write_parquet(buffer, compression="zstd")
    data = buffer.getvalue()
    path = (
        f"part-{name}-{uuid.uuid4().hex}.zstd.parquet"  # relative to the table, as in Delta's log
    )
    if not store.put_if_absent(f"{key}/{path}", data):
        raise TableError(f"staged file {path} of table {table.name!r} exists already")
    from scythe.staged import StagedFile

    return StagedFile(
        path=path,
        size=len(data),
        rows=frame.height,
        modification_time=int(time.time() * 1000),
        stats=_file_stats(frame, table),
    )


def _json_value(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat().replace("+00:00", "Z")
    if isinstance(value, date):
        return value.isoformat()
    return value


def _file_stats(frame: pl.DataFrame, table: TableSchema) -> str:
    """Delta file statistics (row count, null counts, min/max) so readers can skip files."""
    mins: dict[str, Any] = {}
    maxs: dict[str, Any] = {}
    for col in table.columns:
        if col.dtype in (pl.Int64(), pl.String(), pl.Date()) or isinstance(col.dtype, pl.Datetime):
            series = frame.get_column(col.name)
            lo, hi = series.min(), series.max()
            if lo is not None:
                mins[col.name], maxs[col.name] = _json_value(lo), _json_value(hi)
        elif col.dtype == pl.Float64():
            # NaN or inf would make float bounds lie; leave them out. min and max skip
            # nulls and NaN; a NaN makes the sum NaN (so may two huge values, which
            # only leaves the bounds out). Native calls: a filter would be a query.
            series = frame.get_column(col.name)
            lo, hi = series.min(), series.max()
            finite = lo is not None and math.isfinite(lo) and math.isfinite(hi)
            if finite and not math.isnan(series.sum()):
                mins[col.name], maxs[col.name] = lo, hi
    stats = {
        "numRecords": frame.height,
        "minValues": mins,
        "maxValues": maxs,
        "nullCount": {c.name: frame.get_column(c.name).null_count() for c in table.columns},
    }
    return json.dumps(stats, separators=(",", ":"))


def app_id(run_id: str, node: str) -> str:
    """The Delta app-transaction id of one committing node of one run."""
    return f"scythe:{run_id}:{node}"


def holds_transaction(store: Store, key: str, transaction: str) -> bool:
    """Whether the table at ``key`` holds a commit made under ``transaction``."""
    return _holds(_open(store, key), transaction)


def _holds(delta: DeltaTable, transaction: str) -> bool:
    version = delta.transaction_version(transaction)
    return version is not None and version >= COMMIT_VERSION


def commit_staged(
    store: Store,
    key: str,
    table: TableSchema,
    files: Sequence[StagedFile],
    *,
    transaction: str,
    metadata: dict[str, Any] | None = None,
    replace: bool = False,
) -> bool:
    """Commit the staged files the table does not hold yet, in one Delta commit, exactly once.

    The first commit carries the app-transaction id ``transaction`` (even when
    it adds no file, so every table records that its run finished). A retried
    commit finds the id and commits nothing (delta-rs does not reject a
    repeated id itself, so it is checked here first). Files already in the
    table are never added again: a resumed run that staged more files commits
    just those, under ``<transaction>:<digest of their paths>``. With
    ``replace`` the commit removes every file the table holds (a new version;
    earlier versions are unchanged). Returns whether a commit was made.
    """
    paths = [f.path for f in files]
    if len(set(paths)) != len(paths):
        raise TableError(f"table {table.name!r}: staged files repeat a path: {sorted(paths)}")
    missing = [p for p in paths if not store.exists(f"{key}/{p}")]
    if missing:  # never commit a reference to a file that is not there
        raise TableError(
            f"table {table.name!r}: {len(missing)} staged file(s) are missing, e.g. {missing[0]}; "
            "resume the run to stage them again"
        )
    from deltalake.transaction import CommitProperties, Transaction

    delta = _open(store, key)
    if _holds(delta, transaction):
        existing = set(delta.get_add_actions().column("path").to_pylist())
        files = [f for f in files if f.path not in existing]
        if not files:
            return False
        digest = hashlib.sha256("\n".join(sorted(f.path for f in files)).encode()).hexdigest()[:16]
        transaction = f"{transaction}:{digest}"
        if _holds(delta, transaction):
            return False
    from deltalake.exceptions import CommitFailedError

    try:
        delta.create_write_transaction(
            [_add_action(f) for f in files],
            mode="overwrite" if replace else "append",
            schema=table.delta_schema(),
            commit_properties=CommitProperties(
                custom_metadata={"scythe.node": transaction, **(metadata or {})},
                app_transactions=[Transaction(app_id=transaction, version=COMMIT_VERSION)],
            ),
        )
    except CommitFailedError:
        # A commit whose reply was lost is retried and then seen as a concurrent one: if the
        # table holds our transaction, it is our commit that landed.
        if _holds(_open(store, key), transaction):
            return True
        raise
    return True


def commit_count(store: Store, key: str) -> int:
    """Number of commits in the table's history (the create commit included)."""
    return len(_open(store, key).history())


def conform(frame: pl.DataFrame, table: TableSchema) -> pl.DataFrame:
    """``frame`` with exactly the table's columns, in order, cast to their dtypes."""
    missing = [n for n in table.names if n not in frame.columns]
    if missing:
        raise TableError(f"frame for table {table.name!r} lacks columns {missing}")
    return frame.select([pl.col(c.name).cast(c.dtype, strict=True) for c in table.columns])


def frame_from_rows(rows: Sequence[dict[str, Any]], table: TableSchema) -> pl.DataFrame:
    """Build a frame with the table's exact dtypes from row dicts.

    Built column by column: polars' row-wise constructor would truncate a
    float given for an integer column, and a value must keep its type.
    """
    if not rows:
        return table.empty_frame()
    columns = {name: [row[name] for row in rows] for name in table.names}
    return pl.DataFrame(columns, schema=table.polars_schema(), strict=True)


def sort_by_keys(frame: pl.DataFrame, keys: list[str]) -> pl.DataFrame:
    """``frame`` sorted by ``keys``; ``sort_index`` and ``sort_subindex`` as one integer key.

    A frame output's rows sort by both: ``sort_index * 2**32 + sort_subindex``
    orders them the same way while both fit, and sorts by one column (half the
    time of two).
    """
    dtypes = frame.schema
    if (
        len(keys) != 2
        or frame.height < 2
        or not all(dtypes.get(k, pl.Null).is_integer() for k in keys)
    ):
        return frame.sort(keys)  # (a key of another dtype is reported by the checks)
    first, second = keys
    bounds = frame.select(
        pl.col(first).abs().max().alias("a"),
        pl.col(second).min().alias("lo"),
        pl.col(second).max().alias("hi"),
        pl.sum_horizontal(pl.col(keys).null_count()).alias("nulls"),
    ).row(0, named=True)
    if bounds["nulls"] or bounds["a"] >= 2**31 or bounds["lo"] < 0 or bounds["hi"] >= 2**32:
        return frame.sort(keys)
    return frame.sort(pl.col(first).cast(pl.Int64) * 2**32 + pl.col(second).cast(pl.Int64))


def read_table(
    store: Store, key: str, table: TableSchema, *, validate: bool = True, version: int | None = None
) -> pl.DataFrame:
    """Read the Delta table at ``key``: exact dtypes, sorted by ``sort_index`` (and ``sort_subindex``).

    With ``validate`` (the default) the frame is checked against the compiled
    pandera schema and a :class:`~scythe.errors.ResultValidationError` names
    what does not match.
    """
    frame = _collect(store, key, version)
    if frame.height == 0:
        frame = table.empty_frame()
    frame = sort_by_keys(conform(frame, table), table.sort_keys)
    if validate:
        cases = failure_cases(frame, table, sorted_by_keys=True)
        if cases:
            raise ResultValidationError(
                f"table {table.name!r} at {store.table_uri(key)} does not match its schema "
                f"({len(cases)} failure case(s)):\n{describe(cases)}"
            )
    return frame


def split_invalid(
    frame: pl.DataFrame,
    table: TableSchema,
    *,
    outputs_only: bool = False,
    sorted_by_keys: bool = False,
) -> tuple[pl.DataFrame, dict[int, str]]:
    """Validate ``frame``; return the valid rows and, per failing ``sort_index``, a message.

    Every row of a failing spec is removed (a frame output fails as a whole),
    so a spec is either wholly in the result or wholly a failure. With
    ``outputs_only`` the index columns (already checked) are skipped, but the
    sort keys must still be unique. ``sorted_by_keys`` says ``frame`` is
    sorted by the table's sort keys (see :func:`failure_cases`).
    """
    if frame.height == 0:
        return frame, {}
    cases = failure_cases(frame, table, outputs_only=outputs_only, sorted_by_keys=sorted_by_keys)
    if not cases:
        return frame, {}
    messages: dict[int, list[str]] = {}
    sort_index = frame.get_column("sort_index")
    whole_frame: list[str] = []
    for case in cases:
        text = f"column {case.column!r} failed {case.check} (value {case.value!r})"
        if case.row is None:
            whole_frame.append(text)
        else:
            messages.setdefault(int(sort_index[case.row]), []).append(text)
    if whole_frame:
        # Errors without a row (a wrong dtype, a missing column) condemn the whole batch.
        detail = "; ".join(dict.fromkeys(whole_frame))
        for s in sort_index.unique().to_list():
            messages.setdefault(int(s), []).append(detail)
    bad = list(messages)
    valid = frame.filter(~pl.col("sort_index").is_in(bad))
    return valid, {
        s: f"output failed validation of table {table.name!r}: " + "; ".join(dict.fromkeys(m))
        for s, m in messages.items()
    }
