"""Spec base classes: what one simulation takes in and gives back.

A spec declares; it never touches storage or an engine. ``scythe.schema``
compiles spec classes into table schemas.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import logging
import sys
import types
import typing
from collections.abc import Callable, Iterable, Mapping, Sequence
from contextvars import ContextVar
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, ClassVar, TypeVar, Union
from urllib.parse import unquote, urlparse

from pydantic import (
    AnyUrl,
    BaseModel,
    ConfigDict,
    Field,
    FileUrl,
    HttpUrl,
    TypeAdapter,
    UrlConstraints,
    ValidationError,
    ValidatorFunctionWrapHandler,
    WrapValidator,
    model_validator,
)
from pydantic.fields import FieldInfo

from scythe.errors import SpecNotRunningError, SpecValidationError
from scythe.references import file_reference_uri as file_reference_uri  # re-exported

if TYPE_CHECKING:
    import pandas as pd

_logger = logging.getLogger("scythe.experiment")


@dataclass(frozen=True)
class SpecScope:
    """Where a spec is running: set by the leaf middleware around the user's function.

    ``prefix`` is the run's folder (a path, or an S3 key under the bucket),
    ``log`` sends a line to the engine's log, ``fetch`` downloads a URI to a path.
    """

    prefix: str
    log: Callable[[Any, str], None]  # (the spec, the message)
    fetch: Callable[[str, Path, bool], Path]


SPEC_SCOPE: ContextVar[SpecScope | None] = ContextVar("scythe_spec_scope", default=None)


class FileReferenceMarker:
    """Annotation metadata that marks a field as a file reference."""

    def __repr__(self) -> str:
        return "FileReferenceMarker()"


FILE_REFERENCE = FileReferenceMarker()

S3Url = Annotated[AnyUrl, UrlConstraints(allowed_schemes=["s3"])]
"""An ``s3://bucket/key`` URI."""

# left_to_right: from JSON, a plain Path would otherwise win over the URL types.
FileReference = Annotated[
    Union[S3Url, HttpUrl, FileUrl, Path],  # noqa: UP007
    Field(union_mode="left_to_right"),
    FILE_REFERENCE,
]
"""A file an experiment reads or writes: an ``s3://`` URI, an ``http(s)://`` URL,
a ``file://`` URI or a local ``Path``. Local paths given as inputs are uploaded at
allocation; local paths returned as outputs are uploaded after the run. In every
table a file reference is a string URI."""

OptionalFileReference = Annotated[
    Union[S3Url, HttpUrl, FileUrl, Path, None],  # noqa: UP007
    Field(union_mode="left_to_right"),
    FILE_REFERENCE,
]
"""A ``FileReference`` that may be ``None``."""


def _annotation_has_marker(annotation: Any) -> bool:
    if typing.get_origin(annotation) is Annotated:
        if any(isinstance(m, FileReferenceMarker) for m in annotation.__metadata__):
            return True
        return _annotation_has_marker(typing.get_args(annotation)[0])
    return any(_annotation_has_marker(arg) for arg in typing.get_args(annotation))


def is_file_reference_field(field: FieldInfo) -> bool:
    """Whether a pydantic field is declared as a ``FileReference`` (optional or not).

    Works on the resolved annotation, so it also holds for classes written
    under ``from __future__ import annotations``.
    """
    if any(isinstance(m, FileReferenceMarker) for m in field.metadata):
        return True
    return _annotation_has_marker(field.annotation)


class BaseSpec(BaseModel):
    """Fields every spec carries."""

    model_config = ConfigDict(extra="forbid", validate_assignment=False)

    experiment_id: str = Field(
        "unassigned",
        description="Id of the run the spec belongs to: <experiment>/<vM.m.p>/<time>. "
        "Set at allocation.",
    )

    @classmethod
    def file_reference_fields(cls) -> list[str]:
        """Names of the fields declared as ``FileReference``, in declaration order."""
        return [name for name, f in cls.model_fields.items() if is_file_reference_field(f)]


class ExperimentInputSpec(BaseSpec):
    """Inputs of one simulation. Subclass it and declare one field per input.

    Each input field becomes an index column of every result table (fields
    that cannot be index values, such as lists or nested models, stay in the
    ``specs`` table only).

    >>> from typing import Literal
    >>> class Building(ExperimentInputSpec):
    ...     r_value: float = Field(..., ge=0, le=15)
    ...     economizer: Literal["none", "drybulb"] = "none"
    >>> Building(r_value=2.5).sort_index
    0
    """

    BASE_FIELDS: ClassVar[tuple[str, ...]] = (
        "experiment_id",
        "sort_index",
        "workflow_run_id",
        "root_workflow_run_id",
    )

    sort_index: int = Field(
        0, ge=0, description="Position of the spec in its run; results come back in this order."
    )
    workflow_run_id: str | None = Field(
        None, description="Id of the engine run that executed this spec."
    )
    root_workflow_run_id: str | None = Field(
        None, description="Id of the root engine run of the experiment."
    )

    @property
    def computed_features(self) -> dict[str, int | float | str]:
        """Extra index values derived from the inputs; override to add some.

        Every spec of a run must return the same keys with the same types.
        """
        return {}

    # ------------------------------------------------------------------ scythe-engine 1.x helpers

    def make_multiindex(
        self,
        additional_index_data: Mapping[str, Any] | Sequence[Mapping[str, Any]] | None = None,
        n_rows: int = 1,
        include_sort_subindex: bool = True,
        additional_excludes: frozenset[str] = frozenset(),
    ) -> pd.MultiIndex:
        """A pandas ``MultiIndex`` of this spec's index values, repeated for ``n_rows`` rows.

        Levels: the index fields (base fields first, then the spec's own, then
        computed features), then ``additional_index_data`` (one mapping for
        every row, or one per row), then ``sort_subindex`` = 0..n-1 when
        ``include_sort_subindex`` and ``n_rows > 1``. Use it as the index of a
        frame in ``ExperimentOutputSpec.dataframes``.

        >>> class Wall(ExperimentInputSpec):
        ...     r_value: float
        >>> index = Wall(r_value=2.0, sort_index=3).make_multiindex(n_rows=2)
        >>> list(index.names[1:]), index.get_level_values("sort_subindex").tolist()
        (['sort_index', 'workflow_run_id', 'root_workflow_run_id', 'r_value', 'sort_subindex'], [0, 1])
        """
        import pandas as pd

        rows = _index_rows(self, additional_index_data, n_rows, additional_excludes)
        frame = pd.DataFrame(rows)
        if include_sort_subindex and n_rows > 1:
            frame["sort_subindex"] = range(n_rows)
        return pd.MultiIndex.from_frame(frame)

    def log(self, msg: str) -> None:
        """Log ``msg`` for this spec: to the engine's log while running, else to ``logging``."""
        scope = SPEC_SCOPE.get()
        if scope is not None:
            scope.log(self, msg)
        else:
            _logger.info(msg)

    @property
    def prefix(self) -> str:
        """The run's folder while the spec runs: a local path, or the S3 key under the bucket."""
        return _running_scope("prefix").prefix

    def local_path(self, pth: AnyUrl | str) -> Path:
        """Where :meth:`fetch_uri` keeps ``pth``: the cache (``SCYTHE_CACHE_DIR``), by run and URI."""
        from scythe.settings import scythe_settings

        parsed = urlparse(str(pth))
        path = unquote(parsed.path).lstrip("/")
        if not path:
            raise SpecValidationError(f"URI {str(pth)!r} has no path to store it under")
        return (
            Path(scythe_settings().CACHE_DIR)
            / self.experiment_id
            / (parsed.netloc or "local")
            / path
        )

    def fetch_uri(self, uri: AnyUrl | str, use_cache: bool = True) -> Path:
        """Download ``uri`` (``s3://``, ``http(s)://``, ``file://``) to :meth:`local_path`; return it."""
        return _running_scope("fetch_uri").fetch(str(uri), self.local_path(uri), use_cache)


class ExperimentOutputSpec(BaseSpec):
    """Outputs of one simulation. Subclass it and declare one field per output.

    - scalar fields (``int``, ``float``, ``bool``, ``str``, ``Literal``, ``Enum``,
      ``date``, ``datetime``, optionally ``| None``) go to the ``scalars`` table;
    - ``FileReference`` fields go to ``result_file_refs`` as URIs;
    - fields typed ``pandera.typing.polars.DataFrame[Model]`` each get a table
      of their own, with the model's columns;
    - ``dataframes`` holds extra, undeclared frames (pandas or polars) by
      name, as scythe-engine 1.x had them. Each name gets a table too: its
      schema is inferred from the first frame stored under that name in the
      run, and a later frame that does not match it fails its spec. A pandas
      frame's index levels become columns (``make_multiindex`` levels are the
      spec's own index; its ``sort_subindex`` keeps the row order). Declare a
      ``DataFrame[Model]`` field for checked columns.
    """

    model_config = ConfigDict(extra="forbid", arbitrary_types_allowed=True)

    dataframes: dict[str, Any] = Field(
        default_factory=dict,
        description="Extra, undeclared frames by name; each gets a table with an inferred schema.",
        exclude=True,
    )

    BASE_FIELDS: ClassVar[tuple[str, ...]] = ("experiment_id", "dataframes")

    @model_validator(mode="wrap")
    @classmethod
    def _frames_checked_per_node(cls, data: Any, handler: ValidatorFunctionWrapHandler) -> Any:
        """While a spec runs in a run, ``DataFrame[Model]`` fields are not validated here.

        pandera validates such a field whenever the output is built, a few
        milliseconds a frame; in a run the node checks every spec's frame of
        an output in one pass against the compiled schema, and a frame that
        breaks a check fails its own spec. Outside a run (a function called
        directly, a test) construction validates as pandera does.

        Complete classes do this per field instead (:func:`_frame_field_validator`,
        cheaper); this validator stays on a class whose fields pydantic has not
        built yet when it is defined (a forward reference, ``defer_build``).
        """
        if SPEC_SCOPE.get() is None or not _has_pandera_fields(cls):
            return handler(data)
        return _without_pandera_checks(handler, data)

    @classmethod
    def __pydantic_init_subclass__(cls, **kwargs: Any) -> None:
        """An output spec's pandera fields get a validator of their own; the class's wrap
        validator above is dropped.

        The model-wide validator would cost about a microsecond for every output
        built (as much as building a small output), and pandera's own field
        validation, even switched off, a few more. A subclass gets the
        validator back from this class, and loses it here again.
        """
        super().__pydantic_init_subclass__(**kwargs)
        if cls.__pydantic_complete__:
            if _has_pandera_fields(cls):
                _check_frames_per_field(cls)
            cls.__pydantic_decorators__.model_validators.pop("_frames_checked_per_node", None)
            cls.model_rebuild(force=True, raise_errors=False)


def _frame_field_validator(annotation: Any) -> Callable[[Any, Any], Any]:
    """The wrap validator of a pandera-typed output field.

    Outside a run pandera validates the value. In a run (a spec scope is set)
    a plain polars frame for a plain ``DataFrame[Model]`` field is kept as it
    is, which is all pandera would do with its checks off (the node checks
    it); any other value goes through pandera with its checks off (a dict or
    pandas frame is converted, a model's ``from_format`` is read).
    """
    frame_type = _plain_polars_frame(annotation)

    def frames_checked_per_node(value: Any, handler: ValidatorFunctionWrapHandler) -> Any:
        if SPEC_SCOPE.get() is None:
            return handler(value)
        if type(value) is frame_type:
            return value
        return _without_pandera_checks(handler, value)

    frames_checked_per_node.scythe_frame_field = True  # type: ignore[attr-defined]
    return frames_checked_per_node


def _plain_polars_frame(annotation: Any) -> type | None:
    """``polars.DataFrame`` if ``annotation`` is ``pandera.typing.polars.DataFrame[Model]``
    (or that ``| None``) and the model takes and gives frames as they are (no
    ``from_format`` or ``to_format``); else None."""
    args = typing.get_args(annotation)
    if typing.get_origin(annotation) in (Union, types.UnionType):
        members = [a for a in args if a is not type(None)]
        if len(members) != 1:
            return None
        annotation = members[0]
        args = typing.get_args(annotation)
    origin = typing.get_origin(annotation)
    if getattr(origin, "__module__", None) != "pandera.typing.polars" or len(args) != 1:
        return None
    config = getattr(args[0], "__config__", None)
    if config is None or any(getattr(config, k, None) is not None for k in _FORMATS):
        return None
    return sys.modules["polars"].DataFrame if "polars" in sys.modules else None


_FORMATS = ("from_format", "to_format")


def _check_frames_per_field(cls: type[BaseModel]) -> None:
    """Give each pandera-typed field of ``cls`` the validator of :func:`_frame_field_validator`,
    innermost (the field's own ``Annotated`` validators still run around it)."""
    for field in cls.model_fields.values():
        if not _pandera_type(field.annotation):
            continue
        if any(
            getattr(getattr(m, "func", None), "scythe_frame_field", False) for m in field.metadata
        ):
            continue  # inherited from a class that has it already
        field.metadata.insert(0, WrapValidator(_frame_field_validator(field.annotation)))


@functools.cache
def _pandera_checks_off() -> tuple[Any, Any]:
    """pandera's context-local config variable and a copy of its config with validation off."""
    import pandera.config as config

    context = config._CONTEXT_CONFIG
    if not all(hasattr(context, name) for name in ("get", "set", "reset")):
        raise AttributeError("pandera's context config has another shape")
    return context, dataclasses.replace(context.get(), validation_enabled=False)


def _without_pandera_checks(handler: Callable[[Any], Any], data: Any) -> Any:
    """``handler(data)`` with pandera's validation off in this context only (as
    ``pandera.config.config_context(validation_enabled=False)``, without its copy per call)."""
    try:
        context, off = _pandera_checks_off()
    except (ImportError, AttributeError, TypeError):  # another pandera: its public API
        from pandera.config import config_context

        with config_context(validation_enabled=False):
            return handler(data)
    token = context.set(off)
    try:
        return handler(data)
    finally:
        context.reset(token)


def _pandera_type(tp: Any) -> bool:
    """Whether an annotation is, or holds, a pandera type (``DataFrame[Model]``, optional or not)."""
    origin = typing.get_origin(tp) or tp
    if getattr(origin, "__module__", "").startswith("pandera"):
        return True
    return any(_pandera_type(arg) for arg in typing.get_args(tp))


@functools.cache
def _has_pandera_fields(cls: type[BaseModel]) -> bool:
    if "pandera" not in sys.modules:  # nothing can be annotated with pandera's types yet
        return False
    return any(_pandera_type(f.annotation) for f in cls.model_fields.values())


SpecT = TypeVar("SpecT", bound=BaseSpec)


def _running_scope(what: str) -> SpecScope:
    scope = SPEC_SCOPE.get()
    if scope is None:
        raise SpecNotRunningError(
            f"spec.{what} is known only while the spec runs in a run; outside one, use "
            "scythe.utils.filesys.fetch_uri(uri, local_path) to download a file"
        )
    return scope


def _index_rows(
    spec: ExperimentInputSpec,
    additional: Mapping[str, Any] | Sequence[Mapping[str, Any]] | None,
    n_rows: int,
    excludes: frozenset[str],
) -> list[dict[str, Any]]:
    """One dict of index values per row: fields that fit an index, computed features, extras."""
    base: dict[str, Any] = {}
    for name, value in spec.model_dump(mode="json", exclude=set(excludes)).items():
        if not isinstance(value, list | dict):  # lists, dicts, models stay out of the index
            base[name] = value
    for key, value in spec.computed_features.items():
        if key in base:
            raise SpecValidationError(f"computed feature {key!r} has the name of a field")
        base[key] = value
    if isinstance(additional, Sequence) and not isinstance(additional, str):
        if len(additional) != n_rows:
            raise SpecValidationError(
                f"additional_index_data has {len(additional)} rows, n_rows is {n_rows}"
            )
        extras = [dict(row) for row in additional]
    else:
        extras = [dict(additional or {})] * n_rows
    rows = []
    for extra in extras:
        clash = sorted(extra.keys() & base.keys())
        if clash:
            raise SpecValidationError(f"additional_index_data keys {clash} are index fields")
        rows.append({**base, **extra})
    json.dumps(rows)  # upstream's rule: index values are plain JSON
    return rows


def _field_location(loc: tuple[Any, ...]) -> str:
    return ".".join(str(part) for part in loc) or "<spec>"


@functools.lru_cache(maxsize=64)
def list_adapter(spec_type: type[SpecT]) -> TypeAdapter[list[SpecT]]:
    return TypeAdapter(list[spec_type])  # type: ignore[valid-type]


def _as_data(spec_type: type[BaseModel], i: int, item: Any, problems: list[Any]) -> Any:
    """``item`` as :func:`parse_specs` validates it; a spec of another class is a problem."""
    if isinstance(item, BaseModel) and not isinstance(item, spec_type):
        kind = type(item).__name__
        problems.append((i, "<spec>", kind, f"is a {kind}, not a {spec_type.__name__}"))
        return dict(item.__dict__)  # still report its field problems
    return item


def _instances_pass_as_they_are(spec_type: type[BaseModel]) -> bool:
    """Whether pydantic would return instances of ``spec_type`` untouched: it does not
    revalidate them, and no model validator of the class (which pydantic runs on instances
    too, in wrap and after modes) could check or change them."""
    config = spec_type.model_config.get("revalidate_instances", "never")
    return config == "never" and not spec_type.__pydantic_decorators__.model_validators


def parse_specs(spec_type: type[SpecT], items: Iterable[Any]) -> list[SpecT]:
    """Validate ``items`` (spec instances or dicts) as ``spec_type``, reporting every problem.

    Dicts become new specs; instances of ``spec_type`` are returned as they are
    (pydantic validated them when they were built; callers must not modify
    them). One :class:`~scythe.errors.SpecValidationError` lists every invalid
    spec with its position, field and value.

    >>> class Building(ExperimentInputSpec):
    ...     r_value: float = Field(..., ge=0)
    >>> parse_specs(Building, [{"r_value": -3.0}])
    Traceback (most recent call last):
    ...
    scythe.errors.SpecValidationError: 1 invalid spec(s) of Building:
      spec 0 field 'r_value' = -3.0: Input should be greater than or equal to 0 (Building.r_value)
    """
    items = list(items)
    problems: list[tuple[int | None, str, object, str]] = []
    data: list[Any] = items
    # specs of the right class (the usual case) are seen by type, not one by one
    if not all(issubclass(kind, spec_type) for kind in set(map(type, items))):
        data = [_as_data(spec_type, i, item, problems) for i, item in enumerate(items)]
    elif _instances_pass_as_they_are(spec_type):
        return items  # what pydantic would return: the instances themselves
    valid: list[SpecT] = []
    try:
        # One call for the whole list: much faster than one per spec.
        valid = list_adapter(spec_type).validate_python(data)
    except ValidationError as exc:
        for err in exc.errors(include_url=False):
            i, *loc = err["loc"]
            problems.append((int(i), _field_location(tuple(loc)), err.get("input"), err["msg"]))
    if problems:
        name = spec_type.__name__
        raise SpecValidationError.from_problems(
            f"{SpecValidationError.count_specs(problems)} invalid spec(s) of {name}",
            problems,
            spec_name=name,
        )
    return valid
