"""Typed errors users can catch: every error Scythe raises on purpose is here.

Every error says what was wrong, with the value, and what to do about it.
Each class also derives from the builtin that describes it, so ``except
ValueError`` (a bad value), ``except LookupError`` (a lookup that missed) or
``except TypeError`` (a declaration of the wrong shape) catch them too.

>>> issubclass(RunNotFoundError, LookupError), issubclass(VersionError, ValueError)
(True, True)
"""

from __future__ import annotations


class ScytheError(Exception):
    """Base class of every error Scythe raises on purpose."""


class _MissingKeyMessage:
    """For ``KeyError`` subclasses: show the message as written, not its ``repr``."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


# --------------------------------------------------------------------------- specs and schemas


class SpecValidationError(ScytheError, ValueError):
    """One or more specs are invalid.

    ``problems`` holds one ``(spec_index, field, value, message)`` tuple per
    problem, so callers can report or fix them all at once.
    """

    def __init__(
        self,
        message: str,
        *,
        problems: list[tuple[int | None, str, object, str]] | None = None,
    ) -> None:
        super().__init__(message)
        self.problems = problems or []

    MAX_LISTED = 20

    @classmethod
    def from_problems(
        cls,
        summary: str,
        problems: list[tuple[int | None, str, object, str]],
        *,
        spec_name: str | None = None,
    ) -> SpecValidationError:
        """One error listing ``problems`` (at most 20 lines) under ``summary``.

        >>> print(SpecValidationError.from_problems("1 bad spec", [(3, "x", -1, "below 0")],
        ...                                         spec_name="Building"))
        1 bad spec:
          spec 3 field 'x' = -1: below 0 (Building.x)
        """
        problems = sorted(problems, key=lambda p: -1 if p[0] is None else p[0])
        lines = [
            f"  spec {i} field {field!r} = {value!r}: {message}"
            + (f" ({spec_name}.{field})" if spec_name else "")
            for i, field, value, message in problems[: cls.MAX_LISTED]
        ]
        if len(problems) > cls.MAX_LISTED:
            lines.append(f"  ... and {len(problems) - cls.MAX_LISTED} more")
        return cls(f"{summary}:\n" + "\n".join(lines), problems=problems)

    @staticmethod
    def count_specs(problems: list[tuple[int | None, str, object, str]]) -> int:
        """How many distinct specs ``problems`` name."""
        return len({p[0] for p in problems})


class FileReferenceError(SpecValidationError):
    """A value given for a ``FileReference`` field is not a URI or a path."""


class SpecNotRunningError(ScytheError, LookupError):
    """A spec method that needs its run (``prefix``, ``fetch_uri``) was called outside of one."""


class SchemaCompileError(ScytheError, TypeError):
    """A spec class cannot be compiled to a table schema."""


class IndexCollisionError(SchemaCompileError):
    """An output column has the same name as an index column."""


class SchemaMismatchError(ScytheError, ValueError):
    """A frame does not have the columns or types of its table schema."""


class VersionError(ScytheError, ValueError):
    """A version string or bump is not valid."""


class SchemaChangeError(ScytheError, ValueError):
    """A schema changed more than a version bump allows, or cannot be read across versions.

    ``changes`` lists each change (``scythe.schema.diff.SchemaChange``);
    ``required`` is the bump they need and ``given`` the one asked for.
    """

    def __init__(
        self, message: str, *, changes: list | None = None, required: str = "", given: str = ""
    ) -> None:
        super().__init__(message)
        self.changes = list(changes or [])
        self.required = required
        self.given = given


class RecursionMapError(ScytheError, ValueError):
    """A recursion map or tree path is out of range."""


class ExperimentNameError(ScytheError, ValueError):
    """An experiment name cannot name a folder in storage (empty, or contains '/')."""


# --------------------------------------------------------------------------- registry


class RegistryError(ScytheError):
    """An experiment cannot be registered, found or imported."""


class ExperimentDefinitionError(RegistryError, TypeError):
    """A function's signature cannot be registered as an experiment, or is not registered."""


class ExperimentOptionsError(RegistryError, ValueError):
    """An option given to ``Register()`` is out of range or clashes with one Scythe sets."""


class ExperimentNotFoundError(RegistryError, LookupError):
    """No experiment is registered under that name."""


class ExperimentImportError(RegistryError):
    """Worker processes could not import the experiment (defined in a function, a REPL, ...)."""


class DuplicateExperimentError(RegistryError):
    """Another function is already registered under this experiment name."""


# --------------------------------------------------------------------------- storage and tables


class StorageError(ScytheError):
    """A store could not read, write or find an object."""


class StorageURIError(StorageError, ValueError):
    """A storage URI, bucket name or store key is malformed or unsupported."""


class ObjectNotFoundError(StorageError, LookupError):
    """No object (or no bucket) exists at the given location."""


class RunFolderError(StorageError):
    """A new run could not claim a folder of its own in storage."""


class SettingsError(ScytheError, ValueError):
    """An environment variable holds a value Scythe cannot use."""


class TableError(ScytheError):
    """A Delta table cannot be created, staged into, committed or read."""


class TableNotFoundError(_MissingKeyMessage, TableError, KeyError):
    """A run or schema has no table of that name."""


class TableMissingError(TableError, LookupError):
    """A table the run's schema names is gone from storage (deleted or never created)."""


class ManifestError(StorageError, ValueError):
    """A run's ``manifest.yml`` cannot be parsed or does not hold a valid manifest."""


class ColumnNotFoundError(_MissingKeyMessage, TableError, KeyError):
    """A table schema has no column of that name."""


class ResultValidationError(ScytheError, ValueError):
    """Stored results do not match the schema stored with their run."""


class RunNotFoundError(ScytheError, LookupError):
    """No run, version or experiment exists at the given id in storage."""


# --------------------------------------------------------------------------- running


class LeafError(ScytheError):
    """A leaf's function returned something other than its output spec."""


class OutputValidationError(LeafError, ValueError):
    """A spec's output does not fit the run's schema (a wrong type, a failed check)."""


class NonRetryableError(ScytheError):
    """Raise it (or a subclass) from an experiment to fail the spec at once, without retries.

    The spec's failures row has the error's own class name and message.
    """


class SpecFailedError(LeafError):
    """The spec of a one-off run failed: ``error_type`` and ``message`` are its failures row's."""

    def __init__(self, message: str, *, error_type: str = "", attempts: int = 0) -> None:
        super().__init__(message)
        self.error_type = error_type
        self.attempts = attempts


class RunOptionError(ScytheError, ValueError):
    """An option of ``allocate`` or ``resume`` has a value Scythe cannot use."""


class UnsupportedOptionError(ScytheError, ValueError):
    """An option scythe-engine 1.x accepted that Scythe does not support (the message says why)."""


class LeafAttemptError(LeafError):
    """One attempt of a leaf failed and Hatchet will retry it (raised to hand the retry to Hatchet)."""


class EngineError(ScytheError):
    """An engine cannot run, reach or finish a run."""


class EngineConfigError(EngineError, ValueError):
    """An engine was named or configured with a value it cannot use."""


class HatchetConfigError(EngineError):
    """No Hatchet connection can be made: no token, an invalid token, or no embedded engine."""


class NodeFailedError(EngineError):
    """A tree node on Hatchet could not finish because child nodes failed after their retries."""


class WorkerConfigError(ScytheError, ValueError):
    """A ``scythe worker`` cannot start with this configuration (roles, slots or experiments)."""


class ExperimentCheckError(ScytheError, AssertionError):
    """``scythe.testing.check_experiment`` found a spec the experiment fails on (named in the message)."""
