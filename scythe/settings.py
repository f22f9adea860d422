"""Settings read from ``SCYTHE_*`` environment variables, when asked for.

Nothing here runs at import: each function returns a fresh settings object read
from the environment of the moment, so a changed variable is seen on the next
call (an unchanged environment is not parsed again).

>>> import os
>>> os.environ["SCYTHE_TIMEOUT_EXECUTION"] = "PT2H"
>>> timeout_settings().EXECUTION
datetime.timedelta(seconds=7200)
>>> del os.environ["SCYTHE_TIMEOUT_EXECUTION"]
"""

from __future__ import annotations

import os
import re
import warnings
from datetime import timedelta
from pathlib import Path
from typing import Literal, TypeVar

from pydantic import Field, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from scythe.errors import SettingsError


def _user_cache_dir() -> Path:
    import platformdirs  # imported when the default is needed, not with the settings

    return Path(platformdirs.user_cache_dir("scythe"))


_LOCAL_DATA_DIR = "scythe-data"
_DURATION_HELP = "seconds (3600), a duration such as 1h30m or an ISO-8601 duration (PT1H)"
_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d)")
_DURATION_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_duration(value: object) -> object:
    """A duration setting as seconds when it is a number or a duration string; else as it is.

    Accepts seconds (``"90"``), Hatchet's duration strings (``"10m"``, ``"2h"``,
    ``"1h30m"``, ``"500ms"``) and, left to pydantic, ISO-8601 (``"PT1H"``).

    >>> parse_duration("90"), parse_duration("1h30m"), parse_duration("PT1H")
    (90.0, 5400.0, 'PT1H')
    """
    if not isinstance(value, str):
        return value
    text = value.strip()
    try:
        return float(text)
    except ValueError:
        pass
    parts = _DURATION_PART.findall(text)
    if parts and "".join(n + unit for n, unit in parts) == text:
        return sum(float(n) * _DURATION_UNITS[unit] for n, unit in parts)
    return value


class StorageSettings(BaseSettings):
    """Where runs are stored: a local directory or an S3 bucket."""

    model_config = SettingsConfigDict(env_prefix="SCYTHE_STORAGE_", env_ignore_empty=True)

    URI: str | None = Field(
        default=None,
        description="Where runs are stored: a path, a file:// URI or s3://bucket/prefix. "
        "Takes precedence over BUCKET.",
    )
    BUCKET: str | None = Field(
        default=None,
        description="S3 bucket to store runs in, used when URI is not set.",
    )
    BUCKET_PREFIX: str = Field(
        default="scythe",
        description="Key prefix inside BUCKET under which runs are stored.",
    )
    ENDPOINT_URL: str | None = Field(
        default=None,
        description="Endpoint of an S3-compatible service (MinIO, moto); unset for AWS S3.",
        repr=False,  # it may hold credentials (http://key:secret@host); S3Store shows it masked
    )
    REGION: str | None = Field(
        default=None,
        description="S3 region; unset to use the AWS default region of the environment.",
    )

    def resolved_uri(self) -> str:
        """URI if set, else ``s3://BUCKET/BUCKET_PREFIX``, else ``./scythe-data`` made absolute."""
        if self.URI:
            return self.URI
        if self.BUCKET:
            prefix = self.BUCKET_PREFIX.strip("/")
            return f"s3://{self.BUCKET}/{prefix}" if prefix else f"s3://{self.BUCKET}"
        return str(Path(_LOCAL_DATA_DIR).absolute())


ScytheStorageSettings = StorageSettings
"""scythe-engine 1.x's name of :class:`StorageSettings`."""


class TimeoutSettings(BaseSettings):
    """How long runs and waits may take."""

    model_config = SettingsConfigDict(env_prefix="SCYTHE_TIMEOUT_", env_ignore_empty=True)

    EXECUTION: timedelta = Field(
        default=timedelta(hours=1),
        gt=timedelta(0),
        description=f"Longest time one simulation may run, as {_DURATION_HELP}.",
    )
    SCHEDULE: timedelta = Field(
        default=timedelta(days=1),
        gt=timedelta(0),
        description=f"Longest time a task may wait to be scheduled, as {_DURATION_HELP}.",
    )
    WAIT: timedelta | None = Field(
        default=None,
        ge=timedelta(0),
        description=f"How long ref.result() waits for a run, as {_DURATION_HELP}; "
        "unset to wait forever.",
    )
    EXPERIMENT_EXECUTION: timedelta | None = Field(
        default=None,
        gt=timedelta(0),
        description="The name scythe-engine 1.x gives EXECUTION; either may be set.",
    )
    EXPERIMENT_SCHEDULE: timedelta | None = Field(
        default=None,
        gt=timedelta(0),
        description="The name scythe-engine 1.x gives SCHEDULE; either may be set.",
    )
    SCATTER_GATHER_EXECUTION: timedelta | None = Field(
        default=None,
        gt=timedelta(0),
        description="Longest time one scatter/gather node may run on Hatchet; "
        "unset for SCYTHE_HATCHET_FAN_TIMEOUT.",
    )
    SCATTER_GATHER_SCHEDULE: timedelta | None = Field(
        default=None,
        gt=timedelta(0),
        description="Longest time a scatter/gather node may wait to be scheduled on Hatchet; "
        "unset for SCHEDULE.",
    )

    @model_validator(mode="after")
    def _one_value_per_timeout(self) -> TimeoutSettings:
        for name, alias in (
            ("EXECUTION", "EXPERIMENT_EXECUTION"),
            ("SCHEDULE", "EXPERIMENT_SCHEDULE"),
        ):
            value, other = getattr(self, name), getattr(self, alias)
            if other is not None and name in self.model_fields_set and other != value:
                raise ValueError(
                    f"SCYTHE_TIMEOUT_{name} ({value}) and SCYTHE_TIMEOUT_{alias} ({other}) "
                    "name the same timeout: set one of them"
                )
        return self

    @property
    def experiment_execution(self) -> timedelta:
        """Longest time one attempt of one simulation may run."""
        return self.EXPERIMENT_EXECUTION or self.EXECUTION

    @property
    def experiment_schedule(self) -> timedelta:
        """Longest time a simulation's task may wait to be scheduled."""
        return self.EXPERIMENT_SCHEDULE or self.SCHEDULE

    @property
    def scatter_gather_schedule(self) -> timedelta:
        """Longest time a scatter/gather node's task may wait to be scheduled."""
        return self.SCATTER_GATHER_SCHEDULE or self.SCHEDULE

    def wait_seconds(self, timeout: float | None = None) -> float | None:
        """How long ``ref.result()`` waits: ``timeout`` if given, else ``WAIT`` (None: forever).

        >>> TimeoutSettings(WAIT=90).wait_seconds(), TimeoutSettings().wait_seconds(5.0)
        (90.0, 5.0)
        """
        if timeout is not None:
            return timeout
        return self.WAIT.total_seconds() if self.WAIT is not None else None

    @field_validator(
        "EXECUTION",
        "SCHEDULE",
        "WAIT",
        "EXPERIMENT_EXECUTION",
        "EXPERIMENT_SCHEDULE",
        "SCATTER_GATHER_EXECUTION",
        "SCATTER_GATHER_SCHEDULE",
        mode="before",
    )
    @classmethod
    def _parse_seconds(cls, value: object) -> object:
        # environment values are strings, and pydantic reads "90" as a malformed duration
        return parse_duration(value)


class ScytheSettings(BaseSettings):
    """Which engine runs the tree, and where it keeps local files."""

    model_config = SettingsConfigDict(env_prefix="SCYTHE_", env_ignore_empty=True)

    ENGINE: Literal["local", "hatchet"] = Field(
        default="local",
        description="Engine that runs the scatter/gather tree: local (this machine) or hatchet.",
    )
    CACHE_DIR: Path = Field(
        default_factory=_user_cache_dir,
        description="Directory for downloaded artifacts and other local caches.",
        json_schema_extra={"default_text": 'platformdirs.user_cache_dir("scythe")'},
    )
    SLOTS: int | None = Field(
        default=None,
        ge=1,
        description="Number of worker processes of the local engine; unset for os.cpu_count().",
    )
    WORKER_IDLE: timedelta = Field(
        default=timedelta(seconds=120),
        gt=timedelta(0),
        description="How long a worker process of the local engine waits for the next node "
        "before it exits (the next run starts a new one); they also exit with the program. "
        f"As {_DURATION_HELP}.",
    )
    WORKER_START: Literal["auto", "spawn"] = Field(
        default="auto",
        description="How the local engine starts worker processes. auto: on Linux, fork the "
        "driver while it has no thread that could hold a lock (a fresh script), else spawn; "
        "spawn: always a fresh interpreter that imports the experiment's module.",
    )
    HEARTBEAT: timedelta = Field(
        default=timedelta(seconds=10),
        gt=timedelta(0),
        description="How often the local engine's driver records that it is alive; a run "
        f"whose driver missed three is shown as interrupted. As {_DURATION_HELP}.",
    )
    MAX_FRAME_ROWS: int = Field(
        default=1_000_000,
        ge=1,
        description="Most rows one spec's dataframe output may have; a larger frame fails its "
        "spec (OutputValidationError) instead of filling a worker's memory.",
    )
    MAX_FRAME_BYTES: int = Field(
        default=256 * 2**20,
        ge=1,
        description="Most bytes (polars' estimated size) one spec's dataframe output may hold; "
        "a larger frame fails its spec.",
    )
    NODE_STAGE_BYTES: int = Field(
        default=512 * 2**20,
        ge=1,
        description="Bytes of dataframe outputs a terminal node keeps in memory: past it, the "
        "node stages what it holds as one more data file per table and goes on.",
    )
    HATCHET_EMBEDDED: bool = Field(
        default=False,
        description="Connect the hatchet engine to an embedded Hatchet engine on this machine "
        "(Hatchet.from_embedded()) instead of a server named by HATCHET_CLIENT_TOKEN.",
    )
    HATCHET_PARALLELISM: int = Field(
        default=64,
        ge=1,
        description="Terminal nodes the hatchet engine sizes the default tree for: about the "
        "number of leaf slots across the workers that serve a run.",
    )
    HATCHET_FAN_TIMEOUT: timedelta = Field(
        default=timedelta(days=7),
        gt=timedelta(0),
        description="Longest time one scatter/gather node may wait for its subtree on Hatchet, "
        f"as {_DURATION_HELP}.",
    )

    @field_validator("CACHE_DIR")
    @classmethod
    def _expand_home(cls, value: Path) -> Path:
        return value.expanduser()

    @field_validator("HATCHET_FAN_TIMEOUT", "HEARTBEAT", "WORKER_IDLE", mode="before")
    @classmethod
    def _parse_seconds(cls, value: object) -> object:
        return parse_duration(value)


_SettingsT = TypeVar("_SettingsT", bound=BaseSettings)
_ALL_SETTINGS: tuple[type[BaseSettings], ...] = (ScytheSettings, StorageSettings, TimeoutSettings)


def storage_settings() -> StorageSettings:
    """Read the ``SCYTHE_STORAGE_*`` variables now."""
    return _read_settings(StorageSettings)


def timeout_settings() -> TimeoutSettings:
    """Read the ``SCYTHE_TIMEOUT_*`` variables now."""
    return _read_settings(TimeoutSettings)


def scythe_settings() -> ScytheSettings:
    """Read the ``SCYTHE_ENGINE``, ``SCYTHE_CACHE_DIR``, ``SCYTHE_SLOTS`` and ``SCYTHE_HATCHET_*`` variables now."""
    return _read_settings(ScytheSettings)


def settings_reference() -> list[tuple[str, str, str, str]]:
    """One ``(env_var, type, default, description)`` row per setting, for the docs.

    >>> ("SCYTHE_ENGINE", "Literal['local', 'hatchet']", "'local'",
    ...  "Engine that runs the scatter/gather tree: local (this machine) or hatchet."
    ... ) in settings_reference()
    True
    """
    rows = []
    for cls in _ALL_SETTINGS:
        for name, field in cls.model_fields.items():
            if field.default_factory is not None:
                extra = field.json_schema_extra
                default = str(extra["default_text"]) if isinstance(extra, dict) else "computed"
            elif isinstance(field.default, timedelta):
                default = str(field.default)
            else:
                default = repr(field.default)
            rows.append(
                (
                    _env_var(cls, name),
                    _type_text(field.annotation),
                    default,
                    field.description or "",
                )
            )
    return rows


_SETTINGS_CLASSES: list[type[BaseSettings]] = [*_ALL_SETTINGS]
_WARNED: set[str] = set()


def register_settings_class(cls: type[BaseSettings]) -> None:
    """Make ``cls``'s variables known, so that they are not reported as unknown."""
    if cls not in _SETTINGS_CLASSES:
        _SETTINGS_CLASSES.append(cls)


class UnknownSettingWarning(UserWarning):
    """A ``SCYTHE_*`` environment variable names no setting (a typo?)."""


def warn_unknown_settings(environ: dict[str, str] | None = None) -> list[str]:
    """Warn once about each ``SCYTHE_*`` variable that names no setting; return their names.

    A variable under the prefix of a settings class that is not loaded in this
    process (``SCYTHE_WORKER_*`` outside a worker) is not judged.
    """
    import difflib

    env = os.environ if environ is None else environ
    known = {_env_var(c, name) for c in _SETTINGS_CLASSES for name in c.model_fields}
    prefixes = {str(c.model_config.get("env_prefix", "")).upper() for c in _SETTINGS_CLASSES}
    unknown = []
    for var in sorted(k.upper() for k in env if k.upper().startswith("SCYTHE_")):
        owner = max((p for p in prefixes if var.startswith(p)), key=len, default="SCYTHE_")
        if var in known or (owner == "SCYTHE_" and var.startswith("SCYTHE_WORKER_")):
            continue
        unknown.append(var)
        if var not in _WARNED:
            _WARNED.add(var)
            close = difflib.get_close_matches(var, sorted(known), n=1)
            hint = f"; did you mean {close[0]}?" if close else ""
            warnings.warn(
                f"environment variable {var} is not a Scythe setting{hint} "
                "(every setting: docs/settings.md)",
                UnknownSettingWarning,
                stacklevel=3,
            )
    return unknown


# The last settings object read per class, with the environment it was read from:
# settings are a function of the environment (and of the working directory), and
# building one costs about 2 ms, asked for several times per run and per node.
_LAST_READ: dict[type[BaseSettings], tuple[tuple[object, ...], BaseSettings]] = {}


def _read_settings(cls: type[_SettingsT]) -> _SettingsT:
    try:
        cwd: str | None = os.getcwd()
    except OSError:  # the working directory was removed
        cwd = None
    key = (tuple(os.environ.items()), cwd, len(_SETTINGS_CLASSES))
    last = _LAST_READ.get(cls)
    if last is not None and last[0] == key:
        return last[1].model_copy()  # type: ignore[return-value]  # a copy: callers may change theirs
    warn_unknown_settings()
    settings = _build_settings(cls)
    _LAST_READ[cls] = (key, settings.model_copy())
    return settings


def _build_settings(cls: type[_SettingsT]) -> _SettingsT:
    try:
        return cls()
    except ValidationError as err:
        problems = []
        for error in err.errors():
            if not error["loc"]:  # a rule across settings: its message names them
                problems.append(str(error["msg"]).removeprefix("Value error, ") + ".")
                continue
            name = str(error["loc"][0])
            field = cls.model_fields.get(name)
            env_var = _env_var(cls, name)
            # report the text the user wrote, not what a validator turned it into
            value = next((v for k, v in os.environ.items() if k.upper() == env_var), None)
            expected = f" Expected {_type_text(field.annotation)}" if field else ""
            hint = f": {field.description}" if field and field.description else "."
            problems.append(
                f"{env_var}={error.get('input') if value is None else value!r} is invalid: "
                f"{error['msg']}.{expected}{hint}"
            )
        raise SettingsError(
            "\n".join(problems) + "\nFix or unset these environment variables."
        ) from err


def _env_var(cls: type[BaseSettings], name: str) -> str:
    return f"{cls.model_config.get('env_prefix', '')}{name}".upper()


def _type_text(annotation: object) -> str:
    if isinstance(annotation, type):
        return annotation.__name__
    text = str(annotation)
    for module in ("typing.", "datetime.", "pathlib."):
        text = text.replace(module, "")
    return text


# --------------------------------------------------------------------------- workers

LABEL_ON = "yes"
"""The value a worker gives each capability label it advertises (``has_gpu: yes``)."""

__all__ = [
    "LABEL_ON",
    "ScytheSettings",
    "ScytheStorageSettings",
    "StorageSettings",
    "TimeoutSettings",
    "scythe_settings",
    "settings_reference",
    "storage_settings",
    "timeout_settings",
]
