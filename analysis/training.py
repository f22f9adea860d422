"""Feature and target frames of a run, split reproducibly, for fitting a surrogate model.

The split is decided spec by spec from a hash of its ``sort_index`` and a
seed, so a spec lands on the same side every time, whatever else the run
holds or how its rows are ordered.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import polars as pl

from analysis.catalog import RunsLike, StorageLike, resolve_runs
from analysis.errors import OutputNotFoundError, TrainingSetError
from scythe.base import ExperimentInputSpec
from scythe.errors import ColumnNotFoundError
from scythe.schema import SCALARS, TableSchema

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)


@dataclass(frozen=True)
class TrainingSet:
    """``X`` (features) and ``y`` (targets), split into a train and a test part.

    Unpacks like scikit-learn's ``train_test_split``:
    ``X_train, X_test, y_train, y_test = training_set(run)``. ``train_index``
    and ``test_index`` are the ``sort_index`` of each part's rows.
    """

    X_train: pl.DataFrame
    X_test: pl.DataFrame
    y_train: pl.DataFrame
    y_test: pl.DataFrame
    train_index: pl.Series
    test_index: pl.Series
    features: list[str]
    targets: list[str]
    dropped: int
    """Rows left out because a feature or target was null."""

    def __iter__(self) -> Iterator[pl.DataFrame]:
        return iter((self.X_train, self.X_test, self.y_train, self.y_test))


def split_fraction(sort_index: pl.Series, *, seed: int = 0) -> np.ndarray:
    """A number in [0, 1) per ``sort_index``, fixed for a seed (splitmix64 of the index).

    >>> split_fraction(pl.Series([0, 1, 2]), seed=0).round(3).tolist()
    [0.883, 0.432, 0.026]
    """
    with np.errstate(over="ignore"):
        z = (sort_index.to_numpy().astype(np.uint64) + np.uint64(1)) * _GOLDEN
        z = z + np.uint64(seed) * np.uint64(0x632BE59BD9B4E019)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        z = z ^ (z >> np.uint64(31))
    return (z >> np.uint64(11)).astype(np.float64) / float(2**53)


def _inputs(schema: TableSchema) -> list[str]:
    return [c.name for c in schema.index_columns if c.name not in ExperimentInputSpec.BASE_FIELDS]


def _columns(
    run_id: str, schema: TableSchema, features: list[str] | None, targets: list[str] | None
) -> tuple[list[str], list[str]]:
    inputs = _inputs(schema)
    numeric = [c.name for c in schema.values if c.dtype.is_numeric()]
    features = inputs if features is None else features
    targets = numeric if targets is None else targets
    for name in features:
        if name not in inputs:
            raise ColumnNotFoundError(
                f"run {run_id}: {name!r} is not an input column of table {schema.name!r}; "
                f"inputs: {inputs}"
            )
    for name in targets:
        if name not in numeric:
            raise OutputNotFoundError(
                f"run {run_id}: {name!r} is not a numeric output of table {schema.name!r}; "
                f"numeric outputs: {numeric}"
            )
    if not features or not targets:
        raise TrainingSetError(
            f"run {run_id}: a training set needs features and targets, got {features} and {targets}"
        )
    return features, targets


def _encode(frame: pl.DataFrame, features: list[str], prefix: str) -> pl.DataFrame:
    """Booleans as 0/1, strings one-hot (``<column>_<value>``; file inputs without the run path)."""
    strings = [f for f in features if frame.schema[f] in (pl.String(), pl.Categorical())]
    frame = frame.with_columns(
        *[pl.col(f).cast(pl.Int8) for f in features if frame.schema[f] == pl.Boolean()],
        *[pl.col(f).cast(pl.String).str.strip_prefix(prefix) for f in strings],
    )
    return frame.to_dummies(strings, separator="_") if strings else frame


def _rows(
    frame: pl.DataFrame, features: list[str], targets: list[str], encode: bool, prefix: str
) -> pl.DataFrame:
    """The rows without a null feature or target, encoded if asked."""
    kept = frame.drop_nulls([*features, *targets])
    return _encode(kept, features, prefix) if encode else kept


def training_set(
    run: RunsLike,
    *,
    features: list[str] | None = None,
    targets: list[str] | None = None,
    split: float = 0.2,
    seed: int = 0,
    encode: bool = True,
    storage: StorageLike = None,
) -> TrainingSet:
    """X/y frames of a run's successful specs, with a reproducible train/test split.

    ``features`` default to the input columns (fields and computed features),
    ``targets`` to the numeric scalar outputs. ``split`` is the share of specs
    in the test part, chosen by a hash of ``sort_index`` and ``seed``. With
    ``encode``, booleans become 0/1 and strings one-hot columns. Rows with a
    null feature or target are left out (counted in ``dropped``).

    >>> import tempfile
    >>> from scythe import (BaseExperiment, ExperimentInputSpec, ExperimentOutputSpec,
    ...                     ExperimentRegistry, LocalEngine)
    >>> class Wall(ExperimentInputSpec):
    ...     r_value: float
    >>> class Loss(ExperimentOutputSpec):
    ...     u_value: float
    >>> @ExperimentRegistry.Register(name="doctest_training")
    ... def conduct(spec: Wall) -> Loss:
    ...     return Loss(u_value=1 / spec.r_value)
    >>> run, _ = BaseExperiment(conduct, storage=tempfile.mkdtemp()).allocate(
    ...     [Wall(r_value=r) for r in range(1, 11)], engine=LocalEngine(slots=0))
    >>> X_train, X_test, y_train, y_test = training_set(run, split=0.3, seed=1)
    >>> X_train.columns, y_train.columns, X_train.height + X_test.height
    (['r_value'], ['u_value'], 10)
    >>> ExperimentRegistry.unregister("doctest_training")
    """
    if not 0 <= split < 1:
        raise TrainingSetError(f"split={split!r}: give the test share, from 0 up to (not) 1")
    found = resolve_runs(run, storage=storage)
    if len(found) != 1:
        raise TrainingSetError(f"{run!r} names {len(found)} runs; a training set is of one run")
    source = found[0]
    schema = source.table_schemas()[SCALARS]
    features, targets = _columns(source.run_id, schema, features, targets)
    frame = source.results().scalars.select("sort_index", *features, *targets)
    kept = _rows(frame, features, targets, encode, source.store.file_uri(source.run_id) + "/")
    test = pl.Series(split_fraction(kept["sort_index"], seed=seed) < split)
    x_columns = [c for c in kept.columns if c not in ("sort_index", *targets)]
    train_rows, test_rows = kept.filter(~test), kept.filter(test)
    return TrainingSet(
        X_train=train_rows.select(x_columns),
        X_test=test_rows.select(x_columns),
        y_train=train_rows.select(targets),
        y_test=test_rows.select(targets),
        train_index=train_rows["sort_index"],
        test_index=test_rows["sort_index"],
        features=x_columns,
        targets=targets,
        dropped=frame.height - kept.height,
    )
