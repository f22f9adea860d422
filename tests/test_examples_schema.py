"""The examples' schemas are locked in examples/scythe.schema.json, and each example
experiment passes check_experiment."""

from __future__ import annotations

import importlib
import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from scythe.cli import app
from scythe.registry import load_runnable
from scythe.testing import check_experiment

LOCK = Path(__file__).resolve().parent.parent / "examples" / "scythe.schema.json"
# The modules that register the example experiments (`scythe schema export` these to update).
EXAMPLE_MODULES = ["examples.building_energy.experiment"]


def _climates() -> list[Path]:
    climate = importlib.import_module("examples.building_energy.climate")
    return [climate.climate_path(name) for name in ("boston", "phoenix", "miami", "minneapolis")]


# Sample files for each example's FileReference inputs.
EXAMPLE_FILES = {"building_energy": _climates}


def test_the_examples_match_their_lock():
    result = CliRunner().invoke(app, ["schema", "check", *EXAMPLE_MODULES, "--lock", str(LOCK)])
    assert result.exit_code == 0, result.output
    assert "match the code" in result.output


@pytest.mark.parametrize("name", sorted(json.loads(LOCK.read_text())))
def test_each_example_experiment_passes_check_experiment(name):
    module, _, qualname = json.loads(LOCK.read_text())[name]["function"].partition(":")
    experiment = load_runnable(module, qualname)
    files = EXAMPLE_FILES[name]()
    assert check_experiment(experiment, max_examples=20, files=files) == 20
