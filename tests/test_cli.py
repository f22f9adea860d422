"""The `scythe` command: version, help and the demo."""

from __future__ import annotations

from typer.testing import CliRunner

from scythe import __version__
from scythe.cli import app

runner = CliRunner()


def test_version_prints_the_installed_version():
    result = runner.invoke(app, ["version"])
    assert result.exit_code == 0
    assert result.output.strip() == f"scythe {__version__}"


def test_help_lists_the_commands():
    result = runner.invoke(app, ["--help"])
    assert result.exit_code == 0
    for command in ("version", "demo", "worker"):
        assert command in result.output


def test_demo_runs_the_example_and_summarises_it(tmp_path):
    result = runner.invoke(app, ["demo", "--n", "8", "--storage", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert "building_energy/v1.0.0/" in result.output
    assert "8 done, 0 failed" in result.output
    assert "monthly" in result.output and "96 rows" in result.output
    assert any(tmp_path.glob("building_energy/v1.0.0/*/final/scalars/_delta_log/*.json"))
