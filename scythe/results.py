"""A run's results: its Delta tables read back, validated against the schema stored with the run.

Reading needs only the storage: the schemas come from the run's
``table_schemas.yml``, not from the experiment's code, so results open from
any process, and stay readable after the code has changed.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any

import polars as pl

from scythe import tables
from scythe.errors import SpecFailedError, TableNotFoundError
from scythe.layout import RunLayout, stored_table_schemas
from scythe.schema import FAILURES, FILE_REFS, SCALARS, SPECS, TableSchema
from scythe.storage import Store

if TYPE_CHECKING:
    import pandas as pd

    from scythe.base import ExperimentOutputSpec


class Results:
    """A run's result tables, read (and validated) on first access, then cached."""

    def __init__(self, store: Store, layout: RunLayout, *, validate: bool = True) -> None:
        self.store = store
        self.layout = layout
        self.schemas = stored_table_schemas(store, layout)
        self.validate = validate
        self._frames: dict[str, pl.DataFrame] = {}

    @property
    def run_id(self) -> str:
        return self.layout.run_id

    def schema(self, name: str) -> TableSchema:
        """The stored schema of the table ``name``; ``TableNotFoundError`` if the run has none."""
        try:
            return self.schemas[name]
        except KeyError:
            raise TableNotFoundError(
                f"run {self.run_id} has no table {name!r}; tables: {sorted(self.schemas)}"
            ) from None

    @property
    def frame_outputs(self) -> list[str]:
        """Names of the run's dataframe outputs."""
        return [n for n in self.schemas if n not in (SPECS, SCALARS, FILE_REFS, FAILURES)]

    def table(self, name: str) -> pl.DataFrame:
        """The table ``name`` as a polars frame in ``sort_index`` order."""
        if name not in self._frames:
            table = self.schema(name)
            self._frames[name] = tables.read_table(
                self.store, self.layout.table(name), table, validate=self.validate
            )
        return self._frames[name]

    __getitem__ = table

    @property
    def scalars(self) -> pl.DataFrame:
        """Index columns and one column per scalar output, one row per spec that succeeded."""
        return self.table(SCALARS)

    @property
    def file_refs(self) -> pl.DataFrame:
        """Index columns and one URI column per file output."""
        return self.table(FILE_REFS)

    @property
    def failures(self) -> pl.DataFrame:
        """Index columns, error type, message, traceback and attempts of every failed spec."""
        return self.table(FAILURES)

    @property
    def dataframes(self) -> DataframeOutputs:
        """The dataframe outputs by name, each read on first access."""
        return DataframeOutputs(self)

    @property
    def spec_count(self) -> int:
        from scythe.manifest import read_manifest

        return read_manifest(self.store, self.layout).spec_count

    def to_pandas(self, name: str = SCALARS) -> pd.DataFrame:
        """A table as pandas, indexed by the input ``MultiIndex``."""
        from scythe.schema.multiindex import to_pandas

        return to_pandas(self.table(name), self.schema(name))

    def output(
        self, output_spec: type[ExperimentOutputSpec], sort_index: int = 0
    ) -> ExperimentOutputSpec:
        """The output of one spec rebuilt from the tables, as the function returned it.

        Raises ``SpecFailedError`` (with the failures row's error type and
        message) when that spec failed.
        """
        failed = self.failures.filter(pl.col("sort_index") == sort_index)
        if failed.height:
            row = failed.row(0, named=True)
            raise SpecFailedError(
                f"spec {sort_index} of run {self.run_id} failed after {row['attempts']} "
                f"attempt(s): {row['error_type']}: {row['message']}",
                error_type=row["error_type"],
                attempts=row["attempts"],
            )
        values: dict[str, Any] = {"experiment_id": self.run_id}
        for name in (SCALARS, FILE_REFS):
            rows = self.table(name).filter(pl.col("sort_index") == sort_index)
            if not rows.height:
                raise TableNotFoundError(f"run {self.run_id} has no outputs of spec {sort_index}")
            values.update({n: rows.get_column(n)[0] for n in self.schema(name).value_names})
        undeclared: dict[str, pl.DataFrame] = {}
        for name in self.frame_outputs:
            rows = self.table(name).filter(pl.col("sort_index") == sort_index)
            frame = rows.select(self.schema(name).value_names)
            if name in output_spec.model_fields:
                values[name] = frame
            else:  # an undeclared frame, returned in `dataframes` as it was stored
                undeclared[name] = frame
        return output_spec.model_validate({**values, "dataframes": undeclared})

    def __repr__(self) -> str:
        return f"<Results of {self.run_id}: tables {sorted(self.schemas)}>"


class ResultTables(Mapping[str, str]):
    """A run's result tables by name, as Delta table URIs; ``results()`` reads them.

    What scythe-engine 1.x's dict of ``final/*.pq`` keys became: a ported
    script reads a table with ``pl.read_delta(tables["scalars"])``.
    """

    def __init__(self, store: Store, layout: RunLayout) -> None:
        self.store = store
        self.layout = layout
        names = [n for n in stored_table_schemas(store, layout) if n != SPECS]
        self._uris = {n: store.table_uri(layout.table(n)) for n in names}

    def __getitem__(self, name: str) -> str:
        try:
            return self._uris[name]
        except KeyError:
            raise TableNotFoundError(
                f"run {self.layout.run_id} has no table {name!r}; tables: {sorted(self._uris)}"
            ) from None

    def __iter__(self) -> Iterator[str]:
        return iter(self._uris)

    def __len__(self) -> int:
        return len(self._uris)

    def results(self, *, validate: bool = True) -> Results:
        """The same tables read as validated polars frames."""
        return Results(self.store, self.layout, validate=validate)

    def __repr__(self) -> str:
        return f"ResultTables({self._uris!r})"


class DataframeOutputs:
    """A run's dataframe outputs as a read-only mapping of name to frame."""

    def __init__(self, results: Results) -> None:
        self._results = results

    def __getitem__(self, name: str) -> pl.DataFrame:
        if name not in self._results.frame_outputs:
            raise TableNotFoundError(
                f"run {self._results.run_id} has no dataframe output {name!r}; "
                f"outputs: {self._results.frame_outputs}"
            )
        return self._results.table(name)

    def keys(self) -> list[str]:
        return self._results.frame_outputs

    def __iter__(self) -> Iterator[str]:
        return iter(self.keys())

    def __len__(self) -> int:
        return len(self.keys())

    def __contains__(self, name: object) -> bool:
        return name in self.keys()
