"""The house rules that keep the code readable from the bottom up (docs/concepts/architecture.md).

The layers themselves are an import-linter contract in pyproject.toml, checked
by `lint-imports` in `make test`; these tests hold the rest.
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

import scythe.errors as errors
from scythe.engines import Engine
from scythe.engines.hatchet import HatchetEngine
from scythe.engines.local import LocalEngine

SCYTHE = Path(__file__).resolve().parent.parent / "scythe"
MAX_FUNCTION_LINES = 60


def _code_lines(node: ast.FunctionDef | ast.AsyncFunctionDef) -> int:
    lines = node.end_lineno - node.lineno + 1
    first = node.body[0]
    if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant):
        lines -= first.end_lineno - first.lineno + 1  # the docstring
    return lines


def test_no_function_in_scythe_is_longer_than_60_lines():
    long = []
    for path in sorted(SCYTHE.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            is_function = isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
            if is_function and _code_lines(node) > MAX_FUNCTION_LINES:
                long.append(f"{path.relative_to(SCYTHE)}:{node.lineno} {node.name}")
    assert long == []


# Heavy libraries a plain import may load: the ones every table and spec needs.
ALLOWED_HEAVY = {"polars", "pyarrow", "numpy", "pydantic", "yaml"}
NOT_UNTIL_USED = {
    "pandas",
    "pandera",
    "hypothesis",
    "deltalake",
    "hatchet_sdk",
    "boto3",
    "botocore",
    "grpc",
}


def _printed(code: str) -> object:
    """The JSON value ``code`` prints last, run in a fresh interpreter."""
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True
    )
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("module", ["scythe", "scythe.experiments"])
def test_import_loads_only_what_every_run_needs(module):
    code = (
        f"import json, sys; import {module};"
        "print(json.dumps(sorted({m.split('.')[0] for m in sys.modules})))"
    )
    loaded = set(_printed(code))
    assert loaded & NOT_UNTIL_USED == set()
    assert loaded & (ALLOWED_HEAVY | NOT_UNTIL_USED) <= ALLOWED_HEAVY


def test_reading_a_run_loads_no_allocation_engine_settings_or_pydantic_code(tmp_path):
    from light_experiments import Anything, loaded_modules

    from scythe import BaseExperiment

    run, ref = BaseExperiment(loaded_modules, storage=tmp_path).allocate(
        [Anything(x=1.0), Anything(x=2.0)], engine=LocalEngine(slots=0)
    )
    ref.result()
    code = (
        "import json, sys\n"
        "from scythe import ExperimentRun\n"
        f"run = ExperimentRun.open({run.run_id!r}, storage={str(tmp_path)!r})\n"
        "results = run.results()\n"
        "rows = [results.scalars.height, results.failures.height, run.status().status]\n"
        "print(json.dumps([rows, sorted(m for m in sys.modules if m in {\n"
        "    'scythe.allocation', 'scythe.engines.local', 'scythe.nodes', 'scythe.settings',\n"
        "    'pydantic', 'pydantic_settings', 'asyncio', 'pandas', 'pandera', 'pyarrow'})]))\n"
    )
    # status() reads the whole manifest: pydantic loads for it, after the results were read
    assert _printed(code) == [[2, 0, "complete"], ["pydantic"]]
    assert _printed(code.replace(", run.status().status]", "]")) == [[2, 0], []]


def test_pandas_and_pandera_load_when_a_check_or_a_pandas_frame_needs_them():
    code = (
        "import json, sys\n"
        "from scythe import ExperimentInputSpec, ExperimentOutputSpec\n"
        "from scythe.schema import compile_experiment\n"
        "class In(ExperimentInputSpec):\n    x: float\n"
        "class Out(ExperimentOutputSpec):\n    y: float\n"
        "schema = compile_experiment(In, Out)\n"
        "seen = ['pandera' in sys.modules]\n"
        "schema.scalars.pandera_schema()\n"
        "seen.append('pandera' in sys.modules)\n"
        "print(json.dumps(seen))\n"
    )
    assert _printed(code) == [False, True]


def test_both_engines_are_engines_without_a_connection():
    local, hatchet = LocalEngine(slots=3), HatchetEngine(parallelism=40)
    assert isinstance(local, Engine) and isinstance(hatchet, Engine)
    assert (local.parallelism, hatchet.parallelism) == (3, 40)
    assert LocalEngine(slots=0).parallelism == 1


def test_hatchet_parallelism_comes_from_its_setting(monkeypatch):
    monkeypatch.setenv("SCYTHE_HATCHET_PARALLELISM", "250")
    assert HatchetEngine().parallelism == 250


def test_every_error_is_a_scythe_error_and_the_builtin_it_describes():
    classes = [
        value
        for value in vars(errors).values()
        if isinstance(value, type)
        and issubclass(value, Exception)
        and value.__module__ == errors.__name__
    ]
    assert all(issubclass(c, errors.ScytheError) for c in classes)
    lookups = [
        errors.RunNotFoundError,
        errors.TableNotFoundError,
        errors.ColumnNotFoundError,
        errors.ExperimentNotFoundError,
        errors.ObjectNotFoundError,
    ]
    values = [
        errors.SpecValidationError,
        errors.VersionError,
        errors.ExperimentNameError,
        errors.StorageURIError,
        errors.EngineConfigError,
        errors.SettingsError,
    ]
    assert all(issubclass(c, LookupError) for c in lookups)
    assert all(issubclass(c, ValueError) for c in values)


def test_missing_keys_say_what_is_missing_without_quotes():
    err = errors.TableNotFoundError("run r has no table 'x'")
    assert str(err) == "run r has no table 'x'" and isinstance(err, KeyError)


def test_old_error_names_stay_importable():
    from scythe.versions import VersionError

    assert VersionError is errors.VersionError
    assert issubclass(errors.ExperimentImportError, errors.RegistryError)
    assert issubclass(errors.DuplicateExperimentError, errors.RegistryError)
