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
