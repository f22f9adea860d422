"""Allocation in two steps (a pure plan, then one write), and one schema per run."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from pydantic import Field
from scythe_test_experiments import Nothing, Probe, SubmitOnlyEngine, gc_thresholds, probe

from scythe import (
    BaseExperiment,
    ExperimentInputSpec,
    ExperimentOutputSpec,
    ExperimentRegistry,
    ExperimentRun,
    LocalEngine,
    RecursionMap,
)
from scythe.allocation import plan_allocation
from scythe.errors import (
    ExperimentNameError,
    RecursionMapError,
    RunFolderError,
    SpecValidationError,
    TableNotFoundError,
)
from scythe.nodes import finalize_run, run_terminal_node
from scythe.storage import LocalStore

# --------------------------------------------------------------------------- the plan


def test_a_plan_is_made_without_storage_or_engine():
    plan = plan_allocation(probe, [Probe(x=float(i)) for i in range(50)], parallelism=4)
    assert plan.n_specs == 50
    assert plan.specs.get_column("sort_index").to_list() == list(range(50))
    assert set(plan.specs.get_column("experiment_id")) == {"pending"}
    assert "x_squared" in plan.schema.index_names and plan.features == {"x_squared": float}
    assert sum(node.size for node in plan.terminal_nodes) == 50
    assert plan.artifacts.uploads == {}


def test_a_plan_sizes_the_tree_for_the_engines_parallelism():
    specs = [Nothing() for _ in range(4000)]
    narrow = plan_allocation(gc_thresholds, specs, parallelism=1)
    wide = plan_allocation(gc_thresholds, specs, parallelism=8)
    assert len(narrow.terminal_nodes) < len(wide.terminal_nodes)
    assert len(wide.terminal_nodes) >= 8


def test_a_plan_lists_each_local_input_file_once(tmp_path):
    weather = tmp_path / "boston.epw"
    weather.write_text("weather")
    plan = plan_allocation(
        probe, [Probe(x=1.0, data_file=weather), Probe(x=2.0, data_file=weather)]
    )
    assert list(plan.artifacts.uploads.values()) == [weather.absolute()]
    assert plan.artifacts.by_spec[0] == plan.artifacts.by_spec[1]


def test_a_plan_refuses_bad_specs_and_a_recursion_map_below_the_root(tmp_path):
    with pytest.raises(SpecValidationError, match=r"spec 1 field 'x' = -1\.0"):
        plan_allocation(probe, [{"x": 1.0}, {"x": -1.0}])
    with pytest.raises(SpecValidationError, match="input file"):
        plan_allocation(probe, [Probe(x=1.0, data_file=tmp_path / "missing.epw")])
    with pytest.raises(RecursionMapError, match="path must be empty"):
        plan_allocation(
            probe, [Probe(x=1.0)] * 4, recursion_map=RecursionMap(factor=2, max_depth=1, path=(1,))
        )


def test_an_experiment_name_that_cannot_be_a_folder_is_refused():
    with pytest.raises(ExperimentNameError, match="must be non-empty and contain no '/'"):
        BaseExperiment(probe, run_name="a/b")


def test_a_store_that_refuses_every_folder_is_reported(tmp_path, monkeypatch):
    store = LocalStore(tmp_path / "store")
    monkeypatch.setattr(store, "put_if_absent", lambda key, data: False)
    with pytest.raises(RunFolderError, match="could not claim a run folder"):
        BaseExperiment(probe, storage=store).allocate([Probe(x=1.0)], engine=LocalEngine(slots=0))


def test_a_missing_table_is_a_lookup_error_naming_the_tables(tmp_path):
    run, _ = BaseExperiment(probe, storage=tmp_path).allocate(
        [Probe(x=1.0)], engine=LocalEngine(slots=0)
    )
    results = run.results()
    with pytest.raises(TableNotFoundError, match=r"no table 'scalar'; tables: \['failures'"):
        results.table("scalar")
    with pytest.raises(KeyError, match="no dataframe output 'row'"):
        results.dataframes["row"]
    assert "rows" in results.dataframes


# --------------------------------------------------------------------------- one schema per run


def test_nodes_check_the_schema_stored_at_allocation_not_the_code_of_now(tmp_path):
    class Wall(ExperimentInputSpec):
        r_value: float

    class Loss(ExperimentOutputSpec):
        u_value: float = Field(..., le=1.0)

    @ExperimentRegistry.Register(name="stored_schema_nodes")
    def conduct(spec: Wall) -> Loss:
        return Loss.model_construct(u_value=spec.r_value)  # unchecked, like a buggy simulator

    engine = SubmitOnlyEngine()
    run, _ = BaseExperiment(conduct, storage=tmp_path).allocate(
        [Wall(r_value=0.5), Wall(r_value=5.0)],
        recursion_map=RecursionMap(factor=10, max_depth=0),
        engine=engine,
    )

    class LooserLoss(ExperimentOutputSpec):
        u_value: float = Field(..., le=10.0)

    @ExperimentRegistry.Register(name="stored_schema_nodes")
    def conduct(spec: Wall) -> LooserLoss:  # the code changed after allocation
        return LooserLoss.model_construct(u_value=spec.r_value)

    try:
        root = engine.root
        finalize_run(root, run_terminal_node(root))
        results = run.results()
        assert results.scalars["u_value"].to_list() == [0.5]
        (failure,) = results.failures.iter_rows(named=True)
        assert failure["sort_index"] == 1 and failure["error_type"] == "OutputValidationError"
        assert "less_than_or_equal_to(1.0)" in failure["message"]
    finally:
        ExperimentRegistry.unregister("stored_schema_nodes")


STUDY_V1 = """
    from scythe import ExperimentInputSpec, ExperimentOutputSpec, ExperimentRegistry

    class Wall(ExperimentInputSpec):
        r_value: float

    class Loss(ExperimentOutputSpec):
        u_value: float

    @ExperimentRegistry.Register(name="changing_study")
    def conduct(spec: Wall) -> Loss:
        return Loss(u_value=1 / spec.r_value)
"""

STUDY_V2 = """
    from scythe import ExperimentInputSpec, ExperimentOutputSpec, ExperimentRegistry

    class Wall(ExperimentInputSpec):
        r_value: float
        thickness: float                      # a new required input

    class Loss(ExperimentOutputSpec):
        heat_loss: float                      # renamed output

    @ExperimentRegistry.Register(name="changing_study")
    def conduct(spec: Wall) -> Loss:
        return Loss(heat_loss=spec.thickness / spec.r_value)
"""

ALLOCATE = """
import sys
from changing_study import Wall, conduct
from scythe import BaseExperiment, LocalEngine
run, ref = BaseExperiment(conduct, storage=sys.argv[1]).allocate(
    [Wall(r_value=2.0), Wall(r_value=4.0)], engine=LocalEngine(slots=0))
print(run.run_id)
"""

READ_AND_RESUME = """
import sys
import changing_study
from scythe import ExperimentRun, LocalEngine
run = ExperimentRun.open(sys.argv[2], storage=sys.argv[1])
print(run.results().scalars.select("r_value", "u_value").rows())
print(run.resume(engine=LocalEngine(slots=0)).result().status)
"""


def test_a_stored_run_stays_readable_and_resumable_after_its_code_changed(tmp_path):
    module = tmp_path / "changing_study.py"
    module.write_text(textwrap.dedent(STUDY_V1))
    storage = str(tmp_path / "store")

    def python(script: str, *args: str) -> str:
        done = subprocess.run(
            [sys.executable, "-c", script, storage, *args],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=180,
            env={
                "PYTHONPATH": f"{tmp_path}:{Path(__file__).resolve().parent.parent}",
                "PYTHONDONTWRITEBYTECODE": "1",  # the module is rewritten within a second
            },
        )
        assert done.returncode == 0, done.stderr
        return done.stdout

    run_id = python(ALLOCATE).strip().splitlines()[-1]
    module.write_text(textwrap.dedent(STUDY_V2))
    rows, status = python(READ_AND_RESUME, run_id).strip().splitlines()[-2:]
    assert rows == "[(2.0, 0.5), (4.0, 0.25)]"
    assert status == "complete"
    assert ExperimentRun.open(run_id, storage=storage).results().scalars.height == 2
