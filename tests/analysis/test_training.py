"""analysis.training_set on a real run: features, targets, encoding and a reproducible split."""

from __future__ import annotations

import polars as pl
import pytest
from polars.testing import assert_frame_equal
from query_experiments import shared_runs

from analysis import training_set
from analysis.errors import OutputNotFoundError, TrainingSetError
from analysis.training import split_fraction
from scythe import (
    BaseExperiment,
    ExperimentInputSpec,
    ExperimentOutputSpec,
    ExperimentRegistry,
    LocalEngine,
)
from scythe.errors import ColumnNotFoundError


@pytest.fixture(scope="module")
def runs():
    return shared_runs()


def test_default_features_and_targets_are_the_inputs_and_numeric_outputs(runs):
    data = training_set(runs.base, split=0.25)
    scalars = runs.base.results().scalars
    assert data.targets == ["y", "z"]
    assert data.features == ["x", "material_steel", "material_wood", "n", "area"]
    assert data.X_train.columns == data.X_test.columns == data.features
    assert data.X_train.height + data.X_test.height == scalars.height
    assert data.dropped == 0
    for index, X, y in (
        (data.train_index, data.X_train, data.y_train),
        (data.test_index, data.X_test, data.y_test),
    ):
        rows = scalars.filter(pl.col("sort_index").is_in(index.to_list()))
        assert rows["sort_index"].to_list() == index.to_list()
        assert_frame_equal(y, rows.select("y", "z"))
        assert_frame_equal(X.select("x", "n", "area"), rows.select("x", "n", "area"))
        assert (
            X["material_steel"].to_list() == (rows["material"] == "steel").cast(pl.UInt8).to_list()
        )


def test_the_split_is_decided_per_spec_by_sort_index_and_seed(runs):
    indices = runs.base.results().scalars["sort_index"]
    for seed in (0, 7):
        data = training_set(runs.base, split=0.3, seed=seed)
        expected = indices.filter(pl.Series(split_fraction(indices, seed=seed) < 0.3))
        assert data.test_index.to_list() == expected.to_list()
        assert training_set(runs.base, split=0.3, seed=seed).test_index.equals(data.test_index)
    assert not training_set(runs.base, split=0.3, seed=0).test_index.equals(
        training_set(runs.base, split=0.3, seed=7).test_index
    )
    # a spec's side depends on its sort_index only: the same in a run with other outcomes
    other = training_set(runs.changed, split=0.3, seed=0)
    mine = training_set(runs.base, split=0.3, seed=0)
    common = set(indices) & set(runs.changed.results().scalars["sort_index"])
    assert set(other.test_index) & common == set(mine.test_index) & common


def test_no_split_chosen_columns_and_raw_values(runs):
    data = training_set(runs.base, features=["x", "material"], targets=["y"], split=0, encode=False)
    assert data.X_test.height == 0 and data.y_test.height == 0
    assert data.X_train.columns == ["x", "material"] and data.y_train.columns == ["y"]
    assert data.X_train["material"].dtype == pl.String
    parts = [data.X_train, data.X_test, data.y_train, data.y_test]
    assert all(a is b for a, b in zip(list(data), parts, strict=True))  # unpacks like sklearn


class Storey(ExperimentInputSpec):
    width: float
    floors: int | None = None


class StoreyOut(ExperimentOutputSpec):
    area: float


@ExperimentRegistry.Register(name="query_storey")
def storey(spec: Storey) -> StoreyOut:
    return StoreyOut(area=spec.width * (spec.floors or 1))


def test_rows_with_a_null_feature_are_left_out(tmp_path):
    specs = [Storey(width=2.0, floors=3), Storey(width=1.0), Storey(width=4.0, floors=2)]
    run, _ = BaseExperiment(storey, storage=tmp_path).allocate(specs, engine=LocalEngine(slots=0))
    data = training_set(run, split=0)
    assert data.dropped == 1
    assert data.train_index.to_list() == [0, 2]
    assert data.X_train["floors"].to_list() == [3, 2] and data.y_train["area"].to_list() == [
        6.0,
        8.0,
    ]
    assert training_set(run, features=["width"], split=0).dropped == 0


def test_bad_options_are_typed_errors(runs):
    with pytest.raises(TrainingSetError, match="split=1"):
        training_set(runs.base, split=1)
    with pytest.raises(
        ColumnNotFoundError,
        match=r"'nope' is not an input column of table 'scalars'; inputs: \['x'",
    ):
        training_set(runs.base, features=["nope"])
    with pytest.raises(
        OutputNotFoundError, match=r"'label' is not a numeric output .*\['y', 'z'\]"
    ):
        training_set(runs.base, targets=["label"])
    with pytest.raises(TrainingSetError, match="names 3 runs"):
        training_set("query_panel", storage=runs.store)
