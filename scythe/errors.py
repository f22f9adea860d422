"""Typed errors users can catch.

Every error says what was wrong, with the value, and what to do about it.
"""

from __future__ import annotations


class ScytheError(Exception):
    """Base class of every error Scythe raises on purpose."""


class SpecValidationError(ScytheError, ValueError):
    """One or more specs (or spec classes) are invalid.

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


class SchemaCompileError(ScytheError, TypeError):
    """A spec class cannot be compiled to a table schema."""


class IndexCollisionError(SchemaCompileError):
    """An output column has the same name as an index column."""


class RecursionMapError(ScytheError, ValueError):
    """A recursion map or tree path is out of range."""


class SchemaMismatchError(ScytheError, ValueError):
    """A frame does not have the columns or types of its table schema."""


class StorageError(ScytheError):
    """A store could not read, write or find an object, or a storage URI is invalid."""


class SettingsError(ScytheError, ValueError):
    """An environment variable holds a value Scythe cannot use."""


class TableError(ScytheError):
    """A Delta table cannot be created, staged into, committed or read."""


class ResultValidationError(ScytheError, ValueError):
    """Stored results do not match the schema compiled from the specs."""


class RegistryError(ScytheError, TypeError):
    """A function cannot be registered as an experiment, or no experiment has that name."""


class DuplicateExperimentError(RegistryError):
    """Another function is already registered under this experiment name."""


class LeafError(ScytheError):
    """A leaf's function returned something other than its output spec."""


class EngineError(ScytheError):
    """An engine cannot run, reach or finish a run."""


class RunNotFoundError(ScytheError, LookupError):
    """No run, version or experiment exists at the given id in storage."""


class HatchetConfigError(EngineError):
    """No Hatchet connection can be made: no token, an invalid token, or no embedded engine."""


class NodeFailedError(EngineError):
    """A tree node on Hatchet could not finish because child nodes failed after their retries."""


class LeafAttemptError(LeafError):
    """One attempt of a leaf failed and Hatchet will retry it (raised to hand the retry to Hatchet)."""


class WorkerConfigError(ScytheError, ValueError):
    """A ``scythe worker`` cannot start with this configuration (roles, slots or experiments)."""
