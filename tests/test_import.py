"""Invariant 7: import is free."""

from __future__ import annotations

import json
import subprocess
import sys


def test_import_needs_no_environment_and_creates_no_client():
    code = (
        "import json, sys; import scythe, scythe.schema, scythe.scatter_gather, scythe.cli;"
        "heavy = ['boto3', 'botocore', 'hatchet_sdk', 'deltalake', 'grpc'];"
        "print(json.dumps({m: m in sys.modules for m in heavy}))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], env={}, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    loaded = json.loads(done.stdout.strip().splitlines()[-1])
    assert loaded == {m: False for m in loaded}, loaded


def _run(code: str) -> object:
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_import_scythe_loads_no_module_until_a_name_is_used():
    code = (
        "import json, sys; import scythe;"
        "before = sorted(m for m in sys.modules if m.startswith(('scythe.', 'pydantic')));"
        "scythe.ExperimentInputSpec;"
        "print(json.dumps([before, 'scythe.base' in sys.modules, 'pydantic' in sys.modules]))"
    )
    assert _run(code) == [["scythe.errors", "scythe.lazy"], True, True]


def test_after_a_bare_import_the_submodules_it_used_to_load_are_still_attributes():
    # scythe-engine 1.x code may write `import scythe` and then `scythe.base.ExperimentInputSpec`
    code = (
        "import json; import scythe;"
        "names = [scythe.base.ExperimentInputSpec.__name__,"
        " scythe.registry.ExperimentRegistry.__name__, scythe.scatter_gather.RecursionMap.__name__];"
        "print(json.dumps([names, scythe.base.ExperimentInputSpec is scythe.ExperimentInputSpec]))"
    )
    assert _run(code) == [["ExperimentInputSpec", "ExperimentRegistry", "RecursionMap"], True]
