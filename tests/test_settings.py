"""Settings come from SCYTHE_* environment variables, read on every call."""

from __future__ import annotations

import os
import sysconfig
from datetime import timedelta
from pathlib import Path

import pytest

from scythe.errors import SettingsError
from scythe.settings import (
    ScytheSettings,
    StorageSettings,
    TimeoutSettings,
    scythe_settings,
    settings_reference,
    storage_settings,
    timeout_settings,
)


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No SCYTHE_* variable from the outside, and a fresh working directory."""
    for name in list(os.environ):
        if name.upper().startswith("SCYTHE_"):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)


def test_defaults() -> None:
    timeouts = timeout_settings()
    scythe = scythe_settings()
    storage = storage_settings()

    assert timeouts.model_dump() == {
        "EXECUTION": timedelta(hours=1),
        "SCHEDULE": timedelta(days=1),
        "WAIT": None,
        "EXPERIMENT_EXECUTION": None,
        "EXPERIMENT_SCHEDULE": None,
        "SCATTER_GATHER_EXECUTION": None,
        "SCATTER_GATHER_SCHEDULE": None,
    }
    assert scythe.ENGINE == "local"
    assert scythe.SLOTS is None
    assert storage.BUCKET_PREFIX == "scythe"
    assert storage.ENDPOINT_URL is None


def test_default_cache_dir_is_a_user_cache_dir_outside_site_packages() -> None:
    cache_dir = scythe_settings().CACHE_DIR
    site_packages = Path(sysconfig.get_paths()["purelib"])

    assert cache_dir.is_absolute()
    assert "scythe" in cache_dir.parts[-2:]
    assert not cache_dir.is_relative_to(site_packages)
    assert "site-packages" not in cache_dir.parts


def test_environment_overrides_every_kind_of_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SCYTHE_ENGINE", "hatchet")
    monkeypatch.setenv("SCYTHE_SLOTS", "3")
    monkeypatch.setenv("SCYTHE_CACHE_DIR", "~/scythe-cache")
    monkeypatch.setenv("SCYTHE_TIMEOUT_EXECUTION", "90")
    monkeypatch.setenv("SCYTHE_TIMEOUT_SCHEDULE", "P2D")
    monkeypatch.setenv("SCYTHE_TIMEOUT_WAIT", "PT30M")
    monkeypatch.setenv("SCYTHE_STORAGE_ENDPOINT_URL", "http://127.0.0.1:9000")
    monkeypatch.setenv("SCYTHE_STORAGE_REGION", "eu-west-1")

    assert scythe_settings().ENGINE == "hatchet"
    assert scythe_settings().SLOTS == 3
    assert scythe_settings().CACHE_DIR.relative_to(Path.home()) == Path("scythe-cache")
    assert timeout_settings().model_dump(include={"EXECUTION", "SCHEDULE", "WAIT"}) == {
        "EXECUTION": timedelta(seconds=90),
        "SCHEDULE": timedelta(days=2),
        "WAIT": timedelta(minutes=30),
    }
    assert storage_settings().ENDPOINT_URL == "http://127.0.0.1:9000"
    assert storage_settings().REGION == "eu-west-1"


def test_an_empty_variable_means_unset(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SCYTHE_TIMEOUT_EXECUTION", "")
    monkeypatch.setenv("SCYTHE_STORAGE_URI", "")

    assert timeout_settings().EXECUTION.total_seconds() == 3600
    assert storage_settings().URI is None


def test_resolved_uri_prefers_uri_then_bucket_then_local_directory(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    assert storage_settings().resolved_uri() == str(tmp_path / "scythe-data")

    monkeypatch.setenv("SCYTHE_STORAGE_BUCKET", "my-bucket")
    assert storage_settings().resolved_uri() == "s3://my-bucket/scythe"

    monkeypatch.setenv("SCYTHE_STORAGE_BUCKET_PREFIX", "/team/runs/")
    assert storage_settings().resolved_uri() == "s3://my-bucket/team/runs"

    monkeypatch.setenv("SCYTHE_STORAGE_URI", "s3://other-bucket/p")
    assert storage_settings().resolved_uri() == "s3://other-bucket/p"


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("SCYTHE_TIMEOUT_EXECUTION", "an hour"),
        ("SCYTHE_TIMEOUT_EXECUTION", "-5"),
        ("SCYTHE_ENGINE", "kubernetes"),
        ("SCYTHE_SLOTS", "0"),
        ("SCYTHE_SLOTS", "many"),
    ],
)
def test_invalid_value_error_names_the_variable_and_value(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str
) -> None:
    monkeypatch.setenv(variable, value)
    read = timeout_settings if "TIMEOUT" in variable else scythe_settings

    with pytest.raises(SettingsError) as caught:
        read()

    assert variable in str(caught.value)
    assert repr(value) in str(caught.value)
    assert isinstance(caught.value, ValueError)


def test_settings_are_read_on_every_call(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SCYTHE_SLOTS", "2")
    first = scythe_settings()
    monkeypatch.setenv("SCYTHE_SLOTS", "5")
    second = scythe_settings()

    assert (first.SLOTS, second.SLOTS) == (2, 5)
    assert storage_settings() is not storage_settings()


def test_an_unchanged_environment_is_not_parsed_again(monkeypatch, tmp_path) -> None:
    monkeypatch.setenv("SCYTHE_SLOTS", "3")
    first = scythe_settings()
    first.SLOTS = 9  # a caller changing its copy changes no other caller's
    built = []
    original = ScytheSettings.__init__

    def counting_init(self, **kwargs):
        built.append(1)
        original(self, **kwargs)

    monkeypatch.setattr(ScytheSettings, "__init__", counting_init)
    again = scythe_settings()
    assert (again.SLOTS, len(built)) == (3, 0)

    monkeypatch.setenv("HOME", str(tmp_path))  # any variable: defaults may come from them
    assert scythe_settings().SLOTS == 3
    assert len(built) == 1
    (tmp_path / "elsewhere").mkdir()
    monkeypatch.chdir(tmp_path / "elsewhere")  # the local storage default is relative
    assert storage_settings().resolved_uri() == str(tmp_path / "elsewhere" / "scythe-data")


def test_reference_documents_every_setting() -> None:
    reference = {row[0]: row for row in settings_reference()}
    classes = {"SCYTHE_": ScytheSettings, "SCYTHE_STORAGE_": StorageSettings}
    classes["SCYTHE_TIMEOUT_"] = TimeoutSettings
    expected = {prefix + name for prefix, cls in classes.items() for name in cls.model_fields}

    assert set(reference) == expected
    assert all(description for _, _, _, description in reference.values())
    assert reference["SCYTHE_TIMEOUT_EXECUTION"][1:3] == ("timedelta", "1:00:00")
    assert reference["SCYTHE_SLOTS"][1:3] == ("int | None", "None")
    assert "platformdirs" in reference["SCYTHE_CACHE_DIR"][2]


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("90", 90), ("10m", 600), ("2h", 7200), ("30s", 30), ("1h30m", 5400), ("PT2H", 7200)],
)
def test_durations_are_read_in_every_form(monkeypatch, text, seconds):
    monkeypatch.setenv("SCYTHE_TIMEOUT_EXPERIMENT_EXECUTION", text)
    monkeypatch.setenv("SCYTHE_TIMEOUT_SCATTER_GATHER_SCHEDULE", text)
    timeouts = timeout_settings()
    assert timeouts.experiment_execution.total_seconds() == seconds
    assert timeouts.scatter_gather_schedule.total_seconds() == seconds


def test_the_upstream_timeout_names_reach_experiments(monkeypatch):
    from datetime import timedelta as td

    from scythe.registry import ExperimentOptions

    monkeypatch.setenv("SCYTHE_TIMEOUT_EXPERIMENT_EXECUTION", "10m")
    monkeypatch.setenv("SCYTHE_TIMEOUT_EXPERIMENT_SCHEDULE", "2h")
    options = ExperimentOptions()
    assert options.resolved_execution_timeout() == td(minutes=10)
    assert options.resolved_schedule_timeout() == td(hours=2)
    assert ExperimentOptions(execution_timeout=td(seconds=5)).resolved_execution_timeout() == td(
        seconds=5
    )


def test_two_names_of_one_timeout_must_agree(monkeypatch):
    monkeypatch.setenv("SCYTHE_TIMEOUT_EXECUTION", "2h")
    monkeypatch.setenv("SCYTHE_TIMEOUT_EXPERIMENT_EXECUTION", "10m")
    with pytest.raises(SettingsError, match="name the same timeout: set one of them"):
        timeout_settings()
    monkeypatch.setenv("SCYTHE_TIMEOUT_EXPERIMENT_EXECUTION", "PT2H")
    assert timeout_settings().experiment_execution.total_seconds() == 7200


def test_an_unknown_scythe_variable_is_a_warning_naming_the_closest_setting(monkeypatch):
    from scythe.settings import UnknownSettingWarning

    monkeypatch.setenv("SCYTHE_STORAGE_URL", "s3://bucket")
    with pytest.warns(UnknownSettingWarning, match="SCYTHE_STORAGE_URL .*SCYTHE_STORAGE_URI"):
        storage_settings()
