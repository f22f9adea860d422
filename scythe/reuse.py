"""Caching across runs (opt-in): rows of specs that an earlier run already computed are copied.

``allocate(specs, reuse=run_or_version)`` matches each new spec to a spec of
the earlier run(s) with the same inputs, its ids excluded (``sort_index``,
``experiment_id``, the engine run ids) and its input files compared by
content. A match that succeeded there is not run again: its rows of every
declared result table are copied into the new run, with the new run's index
values, and staged as the node ``reused``, committed by the root with the
rest. Failed specs are run again. The manifest records how many rows came
from which run. The earlier runs must have the same result schema.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

import polars as pl

from scythe import tables
from scythe.errors import RunOptionError
from scythe.layout import REUSED_NODE, RunLayout, stored_table_schemas
from scythe.scatter_gather import ScatterGatherResult
from scythe.schema import (
    FAILURES,
    SORT_SUBINDEX,
    SPECS,
    ExperimentSchema,
    table_to_dict,
)
from scythe.storage import Store

_IDS = ("sort_index", "experiment_id", "workflow_run_id", "root_workflow_run_id")


@dataclass
class ReusePlan:
    """Which new specs take their rows from which earlier run."""

    matches: pl.DataFrame = field(
        default_factory=lambda: pl.DataFrame(
            schema={"sort_index": pl.Int64, "source_sort_index": pl.Int64, "source": pl.String}
        )
    )

    @property
    def reused(self) -> set[int]:
        return set(self.matches.get_column("sort_index").to_list())

    def counts(self) -> dict[str, int]:
        grouped = self.matches.group_by("source").len()
        return dict(zip(grouped["source"].to_list(), grouped["len"].to_list(), strict=True))


def _content_key(frame: pl.DataFrame, schema: ExperimentSchema) -> pl.DataFrame:
    """The inputs that decide a spec's outputs: ids out, input files by content digest/name."""
    keep = [c for c in frame.columns if c not in _IDS]
    out = frame.select(keep)
    for name in schema.input_file_fields:
        if name in out.columns:  # .../artifacts/<field>/<digest>/<name> -> <digest>/<name>
            out = out.with_columns(pl.col(name).str.extract(r"([^/]+/[^/]+)$", 1).alias(name))
    return out


def _check_schemas(store: Store, source: RunLayout, schema: ExperimentSchema) -> None:
    stored = stored_table_schemas(store, source)
    for name, table in schema.result_tables.items():
        theirs = stored.get(name)
        if theirs is None or table_to_dict(theirs) != table_to_dict(table):
            raise RunOptionError(
                f"cannot reuse results of run {source.run_id}: its table {name!r} has another "
                "schema than this run's (the specs or outputs changed); allocate without reuse"
            )


def _with_file_keys(
    specs: pl.DataFrame, fields: tuple[str, ...], by_spec: list[dict[str, tuple[str, str, str]]]
) -> pl.DataFrame:
    """``specs`` with each local input file as ``<content digest>/<name>`` (what reuse compares).

    ``by_spec[i]`` maps a field of spec ``i`` to its ``(field, digest, name)`` upload key.
    """
    if not fields or not by_spec:
        return specs
    columns = []
    for name in fields:
        values = specs.get_column(name).cast(pl.String).to_list()
        for i, entry in enumerate(by_spec):
            if name in entry:
                _, digest, file_name = entry[name]
                values[i] = f"{digest}/{file_name}"
        columns.append(pl.Series(name, values, dtype=pl.String))
    return specs.with_columns(columns)


def plan_reuse(
    store: Store,
    schema: ExperimentSchema,
    specs: pl.DataFrame,
    by_spec: list[dict[str, tuple[str, str, str]]],
    sources: list[RunLayout],
) -> ReusePlan:
    """Match the new ``specs`` rows against the specs that succeeded in ``sources`` (newest first).

    ``by_spec`` holds, per new spec, the upload keys of its local input files.
    """
    mine = _with_file_keys(specs, schema.input_file_fields, by_spec)
    mine_key = _content_key(mine, schema).with_columns(mine.get_column("sort_index"))
    plan = ReusePlan()
    for source in sources:
        _check_schemas(store, source, schema)
        theirs = tables.read_table(store, source.table(SPECS), schema.specs, validate=False)
        done = tables.read_column(
            store, source.table("scalars"), "sort_index", pl.Int64()
        ).to_frame()
        theirs = theirs.join(done, on="sort_index", how="semi")
        key = _content_key(theirs, schema).with_columns(
            theirs.get_column("sort_index").alias("source_sort_index")
        )
        todo = mine_key.join(plan.matches.select("sort_index"), on="sort_index", how="anti")
        on = [c for c in key.columns if c != "source_sort_index"]
        found = todo.join(key.unique(subset=on, keep="first"), on=on, how="inner", nulls_equal=True)
        found = found.select(
            "sort_index", "source_sort_index", pl.lit(source.run_id).alias("source")
        )
        plan.matches = pl.concat([plan.matches, found])
    return plan


def stage_reused(
    store: Store, layout: RunLayout, schema: ExperimentSchema, specs: pl.DataFrame, plan: ReusePlan
) -> None:
    """Copy the matched rows into the new run's tables as staged files of the node ``reused``."""
    if plan.matches.height == 0:
        return
    index = specs.with_columns(
        pl.lit(None, dtype=pl.String).alias("root_workflow_run_id"),
    )
    staged: dict[str, list[dict[str, object]]] = {}
    for source_id, matches in plan.matches.group_by("source"):
        source = RunLayout(str(source_id[0]))
        mapping = matches.select("sort_index", "source_sort_index")
        for name, table in schema.result_tables.items():
            if name == FAILURES:
                continue
            rows = tables.read_table(store, source.table(name), table, validate=False)
            rows = rows.join(mapping, left_on="sort_index", right_on="source_sort_index")
            rows = rows.select(
                pl.col("sort_index_right").alias("sort_index"),
                *([pl.col(SORT_SUBINDEX)] if table.multi_row else []),
                *[pl.col(n) for n in table.value_names],
            )
            ids = index.select(
                *[c.name for c in table.index if c.name != "workflow_run_id"]
            ).with_columns(pl.lit(f"reused:{source.run_id}").alias("workflow_run_id"))
            frame = rows.join(ids, on="sort_index", how="inner")
            staged_file = tables.stage_frame(
                store, layout.table(name), table, frame, name=REUSED_NODE
            )
            if staged_file is not None:
                staged.setdefault(name, []).append(staged_file.model_dump())
    n = plan.matches.height
    result = ScatterGatherResult(
        node=REUSED_NODE, specs=n, done=n, failed=0, manifest_key=layout.node_manifest(REUSED_NODE)
    )
    body = {"result": result.model_dump(), "tables": staged}
    store.put_if_absent(result.manifest_key, json.dumps(body).encode())
