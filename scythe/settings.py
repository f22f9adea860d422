"""Settings read from ``SCYTHE_*`` environment variables, when asked for.

Nothing here runs at import: each function builds a fresh settings object from
the environment of the moment, so a changed variable is seen on the next call.

>>> import os
>>> os.environ["SCYTHE_TIMEOUT_EXECUTION"] = "PT2H"
>>> timeout_settings().EXECUTION
datetime.timedelta(seconds=7200)
>>> del os.environ["SCYTHE_TIMEOUT_EXECUTION"]
"""

from __future__ import annotations

import os
import socket
from collections.abc import Mapping
from datetime import timedelta
from pathlib import Path
from typing import Literal, TypeVar

import platformdirs
from pydantic import Field, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from scythe.errors import SettingsError

_LOCAL_DATA_DIR = "scythe-data"
_DURATION_HELP = "seconds (3600) or an ISO-8601 duration (PT1H)"


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

    def wait_seconds(self, timeout: float | None = None) -> float | None:
        """How long ``ref.result()`` waits: ``timeout`` if given, else ``WAIT`` (None: forever).

        >>> TimeoutSettings(WAIT=90).wait_seconds(), TimeoutSettings().wait_seconds(5.0)
        (90.0, 5.0)
        """
        if timeout is not None:
            return timeout
        return self.WAIT.total_seconds() if self.WAIT is not None else None

    @field_validator("EXECUTION", "SCHEDULE", "WAIT", mode="before")
    @classmethod
    def _parse_seconds(cls, value: object) -> object:
        # environment values are strings, and pydantic reads "90" as a malformed duration
        if isinstance(value, str):
            try:
                return float(value)
            except ValueError:
                return value
        return value


class ScytheSettings(BaseSettings):
    """Which engine runs the tree, and where it keeps local files."""

    model_config = SettingsConfigDict(env_prefix="SCYTHE_", env_ignore_empty=True)

    ENGINE: Literal["local", "hatchet"] = Field(
        default="local",
        description="Engine that runs the scatter/gather tree: local (this machine) or hatchet.",
    )
    CACHE_DIR: Path = Field(
        default_factory=lambda: Path(platformdirs.user_cache_dir("scythe")),
        description="Directory for downloaded artifacts and other local caches.",
        json_schema_extra={"default_text": 'platformdirs.user_cache_dir("scythe")'},
    )
    SLOTS: int | None = Field(
        default=None,
        ge=1,
        description="Number of worker processes of the local engine; unset for os.cpu_count().",
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

    @field_validator("HATCHET_FAN_TIMEOUT", mode="before")
    @classmethod
    def _parse_seconds(cls, value: object) -> object:
        return TimeoutSettings._parse_seconds(value)


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


def _read_settings(cls: type[_SettingsT]) -> _SettingsT:
    try:
        return cls()
    except ValidationError as err:
        problems = []
        for error in err.errors():
            name = str(error["loc"][0]) if error["loc"] else ""
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
DEFAULT_DURABLE_SLOTS = 1000


def worker_location(environ: Mapping[str, str] | None = None) -> str:
    """Where this worker runs, for its name: AWS Batch array index, ECS, Fly region, else host name.

    >>> worker_location({"AWS_BATCH_JOB_ARRAY_INDEX": "7", "AWS_REGION": "us-east-1"})
    'aws-batch-us-east-1-0007'
    >>> worker_location({"FLY_REGION": "iad", "FLY_MACHINE_ID": "e784"})
    'fly-iad-e784'
    """
    env = os.environ if environ is None else environ
    host = env.get("HOSTNAME") or socket.gethostname()
    region = env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION")
    if env.get("AWS_BATCH_JOB_ARRAY_INDEX") is not None:
        index = int(env["AWS_BATCH_JOB_ARRAY_INDEX"])
        return "-".join(p for p in ("aws-batch", region, f"{index:04d}") if p)
    if env.get("ECS_CONTAINER_METADATA_URI_V4") or env.get("ECS_CONTAINER_METADATA_URI"):
        return "-".join(p for p in ("aws-ecs", region, host) if p)
    if env.get("FLY_REGION"):
        return f"fly-{env['FLY_REGION']}-{env.get('FLY_MACHINE_ID') or host}"
    return host


class ScytheWorkerConfig(BaseSettings):
    """How a ``scythe worker`` runs, from ``SCYTHE_WORKER_*`` variables."""

    model_config = SettingsConfigDict(env_prefix="SCYTHE_WORKER_", env_ignore_empty=True)

    NAME: str | None = Field(
        default=None,
        description="Worker name shown in Hatchet; unset for scythe-<role>-<where it runs>.",
    )
    SLOTS: int | None = Field(
        default=None,
        ge=1,
        description="Leaves this worker runs at once (default slots); unset for os.cpu_count().",
    )
    DURABLE_SLOTS: int = Field(
        default=DEFAULT_DURABLE_SLOTS,
        ge=1,
        description="Scatter/gather nodes this worker holds at once (durable slots, mostly waiting).",
    )
    HIGH_MEMORY: bool = Field(default=False, description="Advertise the high_memory label.")
    HIGH_CPU: bool = Field(default=False, description="Advertise the high_cpu label.")
    HAS_GPU: bool = Field(default=False, description="Advertise the has_gpu label.")
    DOES_FAN: bool = Field(default=True, description="Serve the scatter/gather (fan) task.")
    DOES_LEAF: bool = Field(default=True, description="Serve the experiments' leaf tasks.")

    @property
    def labels(self) -> dict[str, str]:
        """The capability labels this worker advertises (only those switched on)."""
        # The keys are the values of scythe.worker.ScytheWorkerLabel.
        flags = {
            "high_memory": self.HIGH_MEMORY,
            "high_cpu": self.HIGH_CPU,
            "has_gpu": self.HAS_GPU,
        }
        return {label: LABEL_ON for label, on in flags.items() if on}

    @property
    def role(self) -> str:
        return "-".join(r for r, on in (("fan", self.DOES_FAN), ("leaf", self.DOES_LEAF)) if on)

    @property
    def computed_slots(self) -> int:
        return self.SLOTS or os.cpu_count() or 1

    @property
    def computed_name(self) -> str:
        return self.NAME or f"scythe-{self.role or 'idle'}-{worker_location()}"


def worker_config() -> ScytheWorkerConfig:
    """Read the ``SCYTHE_WORKER_*`` variables now (a bad value raises ``SettingsError``)."""
    return _read_settings(ScytheWorkerConfig)


__all__ = [
    "LABEL_ON",
    "ScytheSettings",
    "ScytheWorkerConfig",
    "StorageSettings",
    "TimeoutSettings",
    "scythe_settings",
    "settings_reference",
    "storage_settings",
    "timeout_settings",
    "worker_config",
    "worker_location",
]
