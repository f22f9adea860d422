"""docker/: the compose stack and the worker image are consistent with the code.

Docker cannot run here, so these tests check what can go stale without it:
the files parse, every setting they set exists (and has a valid value), the
worker containers reach the servers by service name, and the image's
entrypoint is a command that exists.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import pytest
import yaml
from test_hatchet_engine import synthetic_token

from scythe.settings import scythe_settings, settings_reference, storage_settings, timeout_settings
from scythe.worker import ScytheWorkerConfig, load_experiments, worker_config

ROOT = Path(__file__).resolve().parent.parent
DOCKER = ROOT / "docker"
WORKERS = ("fan-worker", "leaf-worker")


def compose() -> dict[str, Any]:
    return yaml.safe_load((DOCKER / "compose.yml").read_text())


def env_example() -> dict[str, str]:
    """``docker/.env.example`` as compose reads it: KEY=VALUE lines, comments skipped."""
    pairs = {}
    for line in (DOCKER / ".env.example").read_text().splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            key, _, value = line.partition("=")
            pairs[key.strip()] = value.strip()
    return pairs


def dockerfile_instructions() -> list[tuple[str, str]]:
    """``(INSTRUCTION, arguments)`` of the Dockerfile, continuation lines joined."""
    text = re.sub(r"\\\n", " ", (DOCKER / "Dockerfile").read_text())
    lines = [
        line.strip()
        for line in text.splitlines()
        if line.strip() and not line.lstrip().startswith("#")
    ]
    return [(line.split(None, 1)[0].upper(), line.split(None, 1)[1]) for line in lines]


def dockerfile_env() -> dict[str, str]:
    pairs = {}
    for instruction, arguments in dockerfile_instructions():
        if instruction == "ENV":
            pairs.update(token.split("=", 1) for token in arguments.split())
    return pairs


def service_environments() -> dict[str, dict[str, str]]:
    return {
        name: {k: str(v) for k, v in (service.get("environment") or {}).items()}
        for name, service in compose()["services"].items()
    }


def known_scythe_variables() -> set[str]:
    worker = {f"SCYTHE_WORKER_{name}" for name in ScytheWorkerConfig.model_fields}
    return {row[0] for row in settings_reference()} | worker


# --------------------------------------------------------------------------- compose


def test_compose_runs_hatchet_lite_minio_and_both_worker_roles() -> None:
    services = compose()["services"]
    environments = service_environments()

    assert {"postgres", "hatchet-lite", "minio", "minio-bucket", *WORKERS} <= set(services)
    assert {"8888:8888", "7077:7077"} <= set(services["hatchet-lite"]["ports"])
    assert "postgres:5432" in environments["hatchet-lite"]["DATABASE_URL"]
    assert "mc mb" in " ".join(services["minio-bucket"]["entrypoint"])
    assert "SCYTHE_STORAGE_BUCKET" in " ".join(services["minio-bucket"]["entrypoint"])
    assert (
        environments["fan-worker"]["SCYTHE_WORKER_DOES_FAN"],
        environments["fan-worker"]["SCYTHE_WORKER_DOES_LEAF"],
    ) == ("true", "false")
    assert (
        environments["leaf-worker"]["SCYTHE_WORKER_DOES_FAN"],
        environments["leaf-worker"]["SCYTHE_WORKER_DOES_LEAF"],
    ) == ("false", "true")
    assert services["leaf-worker"]["deploy"]["replicas"] == "${LEAF_WORKERS:-2}"
    for name in WORKERS:
        assert services[name]["env_file"] == ".env"
        assert services[name]["build"] == {"context": "..", "dockerfile": "docker/Dockerfile"}
        assert (
            services[name]["depends_on"]["minio-bucket"]["condition"]
            == "service_completed_successfully"
        )


def test_one_env_file_configures_the_whole_stack() -> None:
    text = (DOCKER / "compose.yml").read_text()
    interpolated = set(re.findall(r"(?<!\$)\$\{([A-Z_][A-Z0-9_]*)", text))
    defined = env_example()

    assert interpolated <= set(defined), (
        f"set these in docker/.env.example: {interpolated - set(defined)}"
    )
    assert defined["HATCHET_CLIENT_TOKEN"] == ""  # never a real token in the repository


def test_every_scythe_variable_the_stack_sets_is_a_real_setting() -> None:
    set_here = {*env_example(), *dockerfile_env()}
    for environment in service_environments().values():
        set_here |= set(environment)
    scythe_vars = {name for name in set_here if name.startswith("SCYTHE_")}

    assert scythe_vars, "the stack sets no SCYTHE_* variable"
    assert scythe_vars <= known_scythe_variables(), (
        f"not settings: {scythe_vars - known_scythe_variables()}"
    )


@pytest.mark.parametrize("service", WORKERS)
def test_worker_containers_read_valid_settings_and_reach_servers_by_service_name(
    service: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from hatchet_sdk.config import ClientConfig

    monkeypatch.chdir(tmp_path)  # no stray ./.env
    for name in list(os.environ):
        if name.startswith(("SCYTHE_", "HATCHET_CLIENT_")):
            monkeypatch.delenv(name)
    container_env = {
        **dockerfile_env(),
        **env_example(),
        **service_environments()[service],
        "HATCHET_CLIENT_TOKEN": synthetic_token("http://localhost:8888", "localhost:7077"),
    }
    for name, value in container_env.items():
        monkeypatch.setenv(name, value)

    hatchet = ClientConfig()
    worker = worker_config()

    assert (hatchet.host_port, hatchet.server_url) == (
        "hatchet-lite:7077",
        "http://hatchet-lite:8888",
    )
    assert hatchet.tls_config.strategy == "none"
    assert storage_settings().resolved_uri() == "s3://scythe/runs"
    assert storage_settings().ENDPOINT_URL == "http://minio:9000"
    assert (
        scythe_settings().ENGINE == "hatchet"
        and timeout_settings().EXECUTION.total_seconds() == 3600
    )
    assert worker.role == {"fan-worker": "fan", "leaf-worker": "leaf"}[service]


# --------------------------------------------------------------------------- the image


def test_dockerfile_entrypoint_is_the_scythe_worker_command() -> None:
    instructions = dict(dockerfile_instructions())
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    copied = [
        arguments.split()[0]
        for instruction, arguments in dockerfile_instructions()
        if instruction == "COPY"
    ]

    assert json.loads(instructions["ENTRYPOINT"]) == ["scythe", "worker"]
    # the console script's app has scythe's `worker` command, and loads no `analysis` extra:
    # the image installs the base dependencies only (`pip install .`)
    module, attr = scripts["scythe"].split(":")
    code = (
        "import importlib, json, sys\n"
        f"app = getattr(importlib.import_module({module!r}), {attr!r})\n"
        "names = [c.name or c.callback.__name__ for c in app.registered_commands]\n"
        "extra = [m for m in ('matplotlib', 'scipy', 'SALib', 'jinja2') if m in sys.modules]\n"
        "print(json.dumps([names, extra]))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    names, extra = json.loads(done.stdout.strip().splitlines()[-1])
    assert "worker" in names and extra == []
    assert all((ROOT / source).exists() for source in copied), copied
    command = json.loads(instructions["CMD"])
    assert command[0] == "--experiments"
    (experiment,) = load_experiments([command[1]])
    assert experiment.name == "building_energy"


def test_scythe_worker_help_runs_without_a_hatchet_connection() -> None:
    script = Path(sys.executable).with_name("scythe")
    command = [str(script)] if script.exists() else [sys.executable, "-m", "scythe.cli"]
    env = {"PATH": os.environ.get("PATH", ""), "HOME": os.environ.get("HOME", "/tmp")}
    done = subprocess.run(
        [*command, "worker", "--help"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
    )

    assert done.returncode == 0, done.stderr
    assert "Usage: scythe worker" in done.stdout and "--experiments" in done.stdout
