"""The per-spec middleware every engine runs around the user's function.

For one spec: fetch remote file inputs into the cache, give the function a
fresh ``tempdir`` if it asks for one, call it (retrying up to the experiment's
``retries``), check what it returned, upload file outputs, and turn the result
into table rows. Anything that goes wrong becomes a ``failures`` row; it never
escapes to stop the rest of the batch.
"""

from __future__ import annotations

import functools
import hashlib
import logging
import os
import shutil
import tempfile
import traceback
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any
from urllib.parse import unquote, urlparse

import polars as pl

from scythe.base import (
    SPEC_SCOPE,
    ExperimentInputSpec,
    ExperimentOutputSpec,
    SpecScope,
)
from scythe.errors import LeafError, NonRetryableError, OutputValidationError
from scythe.layout import RunLayout
from scythe.references import file_reference_uri
from scythe.registry import ExperimentRunnable
from scythe.schema import (
    BUILTIN_TABLES,
    PLAIN_TYPES,
    SORT_SUBINDEX,
    ExperimentSchema,
    cast_problem,
    cell,
    scalar_problem,
)
from scythe.storage import Store, open_store

_logger = logging.getLogger("scythe.experiment")


@dataclass(frozen=True)
class LeafContext:
    """Where a leaf runs: the run's store and layout, the cache, and engine run ids."""

    store: Store
    layout: RunLayout
    cache_dir: Path
    workflow_run_id: str | None = None
    root_workflow_run_id: str | None = None
    log: Callable[[str], None] | None = None  # the engine's log for the running leaf
    max_frame_rows: int = 1_000_000  # SCYTHE_MAX_FRAME_ROWS
    max_frame_bytes: int = 256 * 2**20  # SCYTHE_MAX_FRAME_BYTES

    @functools.cached_property
    def scope(self) -> SpecScope:
        """The spec scope of this context's leaves (built once per node, not per spec)."""
        return spec_scope(self)


# What a result of scalar outputs alone holds for its files and frames: one shared,
# read-only empty mapping instead of new dicts per spec.
NO_VALUES: Mapping[str, Any] = MappingProxyType({})


@dataclass(slots=True)
class LeafResult:
    """The rows one spec contributes: outputs on success, one failure row otherwise.

    A spec's other index values are in its batch (nodes take them from there);
    a leaf adds only the engine run ids it ran under.
    """

    sort_index: int
    workflow_run_id: str | None = None
    root_workflow_run_id: str | None = None
    scalars: dict[str, Any] | None = None
    file_refs: Mapping[str, Any] | None = None
    frames: Mapping[str, pl.DataFrame] = field(default_factory=dict)
    failure: dict[str, Any] | None = None
    # the ``dataframes`` the output spec does not declare
    extra_frames: Mapping[str, pl.DataFrame] = field(default_factory=dict)
    retryable: bool = True  # False: the failure is final (NonRetryableError, a bad output)

    @property
    def ok(self) -> bool:
        return self.failure is None


# --------------------------------------------------------------------------- rows


def index_values(spec: ExperimentInputSpec, schema: ExperimentSchema) -> dict[str, Any]:
    """The index-column values of one spec, computed features included."""
    values = {**spec.__dict__, **spec.computed_features}
    row = {}
    for name in schema.index_names:
        value = values[name]
        row[name] = value if type(value) in PLAIN_TYPES else cell(value)
    return row


def failure_row(
    exc: BaseException | None,
    *,
    error_type: str | None = None,
    message: str | None = None,
    attempts: int,
    tb: str | None = None,
) -> dict[str, Any]:
    return {
        "error_type": error_type or type(exc).__name__,
        "message": message if message is not None else str(exc),
        "traceback": tb
        if tb is not None
        else ("".join(traceback.format_exception(exc)) if exc is not None else None),
        "attempts": attempts,
    }


# --------------------------------------------------------------------------- files


def fetch_file(reference: Any, cache_dir: Path) -> Path:
    """A local path for a file reference: ``file://`` and paths as they are, others downloaded.

    Downloads land in ``cache_dir`` under a hash of the URI and are reused:
    Scythe's own artifacts are content-addressed, so a URI never changes content.
    """
    if isinstance(reference, Path):
        return reference
    uri = str(reference)
    parsed = urlparse(uri)
    if parsed.scheme == "file":
        return Path(unquote(parsed.path))
    name = Path(unquote(parsed.path)).name or "file"
    return download(uri, cache_dir / hashlib.sha256(uri.encode()).hexdigest()[:24] / name)


def download(uri: str, target: Path, *, use_cache: bool = True) -> Path:
    """Copy the file at ``uri`` (``s3://``, ``http(s)://``, ``file://``) to ``target``; return it.

    With ``use_cache`` an existing ``target`` is kept. The file appears whole or
    not at all, so concurrent leaves never read half of one.
    """
    if use_cache and target.exists():
        return target
    parsed = urlparse(uri)
    if parsed.scheme not in ("s3", "http", "https", "file"):
        raise LeafError(f"cannot fetch {uri!r}: unsupported scheme {parsed.scheme!r}")
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(f".{target.name}.{os.getpid()}.partial")
    if parsed.scheme == "s3":
        open_store(f"s3://{parsed.netloc}/").download_file(
            unquote(parsed.path).lstrip("/"), partial
        )
    elif parsed.scheme == "file":
        if parsed.netloc not in ("", "localhost"):
            raise LeafError(
                f"cannot fetch {uri!r}: a file:// URI names a file on this machine "
                "(file:///path); copy it to shared storage (s3://...) instead"
            )
        shutil.copyfile(unquote(parsed.path), partial)
    else:
        import urllib.request  # only here: it costs every driver and worker ~4 ms to import

        with urllib.request.urlopen(uri, timeout=60) as response, open(partial, "wb") as out:
            shutil.copyfileobj(response, out)
    os.replace(partial, target)
    return target


def localize_inputs(
    spec: ExperimentInputSpec, fields: tuple[str, ...], cache_dir: Path
) -> ExperimentInputSpec:
    """A copy of ``spec`` whose file-reference inputs are local paths."""
    updates = {}
    for name in fields:
        value = getattr(spec, name)
        if value is not None and not isinstance(value, Path):
            updates[name] = fetch_file(value, cache_dir)
    return spec.model_copy(update=updates) if updates else spec


def _scratch(path: Path, tempdir: Path | None, paths: list[Path]) -> bool:
    """Whether ``path`` is a file of the leaf's own tempdir that no other output names."""
    return (
        tempdir is not None
        and paths.count(path) == 1
        and ".." not in path.parts
        and path.is_relative_to(tempdir)
        and not path.is_symlink()
    )


def upload_outputs(
    output: ExperimentOutputSpec,
    fields: tuple[str, ...],
    ctx: LeafContext,
    sort_index: int,
    tempdir: Path | None = None,
) -> dict[str, Any]:
    """Upload local-path file outputs to ``results/<field>/<sort_index>/`` and return their URIs.

    A file in the leaf's ``tempdir`` (deleted once the spec is done) may be moved
    rather than copied; any other file is copied and left as it is.
    """
    uris: dict[str, Any] = {}
    paths = [v for v in (getattr(output, n) for n in fields) if isinstance(v, Path)]
    for name in fields:
        value = getattr(output, name)
        if isinstance(value, Path):
            if not value.is_file():
                raise LeafError(f"output {name!r} = {str(value)!r} is not a file")
            key = ctx.layout.result_file(name, sort_index, value.name)
            ctx.store.upload_file(value, key, move=_scratch(value, tempdir, paths))
            uris[name] = ctx.store.file_uri(key)
        else:
            uris[name] = file_reference_uri(value)
    return uris


# --------------------------------------------------------------------------- leaf


def _frame_values(frame: Any, schema: ExperimentSchema, name: str, sort_index: int) -> pl.DataFrame:
    """One spec's frame output as its declared value columns, in their exact dtypes.

    Only what one spec can get wrong alone is checked here: missing columns and
    values that do not fit their dtype. The column checks (bounds, ``isin``,
    nulls) run once per node over every spec's frame (``scythe.nodes``), and
    the node adds the index columns to all of them at once.
    """
    table = schema.dataframes[name]
    if not isinstance(frame, pl.DataFrame):
        frame = pl.from_pandas(frame) if hasattr(frame, "to_numpy") else pl.DataFrame(frame)
    # ``columns`` and ``dtypes``, not ``schema``: a new frame builds its schema object
    # anew, a few microseconds a spec
    names, kinds = frame.columns, frame.dtypes
    if names == table.value_names and kinds == table.value_dtypes:
        return frame  # the common case: the declared columns, in order, in their dtypes
    dtypes = dict(zip(names, kinds, strict=True))
    missing = [c.name for c in table.values if c.name not in dtypes]
    if missing:
        raise OutputValidationError(
            f"dataframe output {name!r} (spec {sort_index}) lacks columns {missing}; "
            f"it has {list(dtypes)}"
        )
    if all(dtypes[c.name] == c.dtype for c in table.values):  # other columns, or another order
        # picked column by column: an eager select would run polars' query engine per spec
        return pl.DataFrame([frame.get_column(n) for n in table.value_names])
    for column in table.values:
        problem = cast_problem(frame.get_column(column.name), column.dtype)
        if problem:
            raise OutputValidationError(
                f"dataframe output {name!r}, column {column.name!r} (spec {sort_index}): {problem}"
            )
    return frame.select(pl.col(c.name).cast(c.dtype, strict=True) for c in table.values)


def _check_frame_size(frame: pl.DataFrame, name: str, sort_index: int, ctx: LeafContext) -> None:
    """``OutputValidationError`` if one spec's frame passes SCYTHE_MAX_FRAME_ROWS or _BYTES."""
    if frame.height > ctx.max_frame_rows:
        raise OutputValidationError(
            f"dataframe output {name!r} of spec {sort_index} has {frame.height:,} rows, more "
            f"than SCYTHE_MAX_FRAME_ROWS={ctx.max_frame_rows:,} allows: return fewer rows "
            "(aggregate, or split the spec) or raise the bound"
        )
    size = frame.estimated_size()
    if size > ctx.max_frame_bytes:
        raise OutputValidationError(
            f"dataframe output {name!r} of spec {sort_index} holds about {size / 2**20:,.1f} MiB, "
            f"more than SCYTHE_MAX_FRAME_BYTES={ctx.max_frame_bytes:,} allows: return less data "
            "or raise the bound"
        )


def undeclared_frame_rows(
    frame: Any, index: dict[str, Any], schema: ExperimentSchema, name: str
) -> pl.DataFrame:
    """A frame of ``ExperimentOutputSpec.dataframes`` as table rows: the spec's index values,
    ``sort_subindex``, then the frame's columns.

    A pandas frame's index levels become columns; the levels that repeat the
    spec's index (``make_multiindex``) are replaced by its typed values, and a
    ``sort_subindex`` level keeps the frame's row order. Its schema is the one
    inferred from the run's first such frame (``scythe.nodes``).
    """
    if name in schema.result_tables or name in BUILTIN_TABLES:
        raise LeafError(
            f"`dataframes` key {name!r} is the name of a table of the run; pick another name"
        )
    flat = _flat_frame(frame, name)
    n = flat.height
    columns = [pl.lit(index[c.name], dtype=c.dtype).alias(c.name) for c in schema.index]
    if SORT_SUBINDEX in flat.columns:
        columns.append(pl.col(SORT_SUBINDEX).cast(pl.Int64, strict=True))
    else:
        columns.append(pl.int_range(0, n, dtype=pl.Int64).alias(SORT_SUBINDEX))
    taken = {*schema.index_names, SORT_SUBINDEX}
    values = [pl.col(c) for c in flat.columns if c not in taken]
    return flat.select([*columns, *values])


def _flat_frame(frame: Any, name: str) -> pl.DataFrame:
    if isinstance(frame, pl.DataFrame):
        flat = frame
    elif type(frame).__module__.startswith("pandas"):
        index = frame.index
        named = any(level is not None for level in index.names)
        flat = pl.from_pandas(frame.reset_index(drop=not named))
    else:
        raise LeafError(
            f"`dataframes[{name!r}]` is a {type(frame).__name__}: give a pandas or polars DataFrame"
        )
    categorical = [c for c, t in flat.schema.items() if isinstance(t, pl.Categorical | pl.Enum)]
    if categorical:
        flat = flat.with_columns(pl.col(categorical).cast(pl.String))
    bad = [c for c, t in flat.schema.items() if t == pl.Object or not isinstance(c, str)]
    if bad:
        raise LeafError(f"`dataframes[{name!r}]` has columns {bad} that cannot be stored")
    return flat


def copy_inputs(
    spec: ExperimentInputSpec, fields: tuple[str, ...], tempdir: Path
) -> ExperimentInputSpec:
    """A copy of ``spec`` whose local file inputs are copies in ``tempdir`` named ``<field><suffix>``."""
    updates = {}
    for name in fields:
        value = getattr(spec, name)
        if isinstance(value, Path):
            updates[name] = Path(shutil.copyfile(value, tempdir / f"{name}{value.suffix}"))
    return spec.model_copy(update=updates) if updates else spec


def spec_scope(ctx: LeafContext) -> SpecScope:
    """What ``spec.prefix``, ``spec.log`` and ``spec.fetch_uri`` reach while a spec of ``ctx`` runs."""
    uri = ctx.store.uri(ctx.layout.run_id)
    if uri.startswith("s3://"):
        uri = uri.split("/", 3)[3]  # the key under the bucket, as scythe-engine 1.x gave it
    run_id, engine_log = ctx.layout.run_id, ctx.log

    def log(spec: ExperimentInputSpec, msg: str) -> None:
        _logger.info("[%s spec %s] %s", run_id, spec.sort_index, msg)
        if engine_log is not None:
            engine_log(msg)

    def fetch(source: str, target: Path, use_cache: bool) -> Path:
        return download(source, target, use_cache=use_cache)

    return SpecScope(prefix=uri, log=log, fetch=fetch)


def _scalar_values(
    experiment: ExperimentRunnable, schema: ExperimentSchema, output: Any, sort_index: int
) -> dict[str, Any]:
    """The scalar outputs as table cells; ``OutputValidationError`` for a value of the wrong type."""
    fields = output.__dict__
    scalars = {}
    try:
        for column, accepted in schema.scalar_types:
            value = fields[column.name]
            kind = type(value)
            if kind in accepted or value is None:
                scalars[column.name] = value  # exactly the column's type: nothing to judge
            elif kind in PLAIN_TYPES:
                problem = scalar_problem(value, column.dtype)
                if problem:
                    raise OutputValidationError(
                        f"output field {column.name!r} of {type(output).__name__} "
                        f"(spec {sort_index}): {problem}"
                    )
                scalars[column.name] = value
            else:
                scalars[column.name] = cell(value)
    except KeyError as missing:
        raise LeafError(
            f"{experiment.output_spec.__name__} has no field {missing}, which the run's stored "
            "schema has: the output spec changed since the run was allocated"
        ) from None
    return scalars


def _set_run_ids(spec: ExperimentInputSpec, ctx: LeafContext) -> None:
    # Plain field writes (str | None, no validators): skip pydantic's slower __setattr__.
    spec.__dict__["workflow_run_id"] = ctx.workflow_run_id
    spec.__dict__["root_workflow_run_id"] = ctx.root_workflow_run_id


def _without_run_ids(spec: ExperimentInputSpec) -> ExperimentInputSpec:
    """The spec a function sees unless it asks for ``inject_workflow_run_id``: no run ids.

    A spec that holds no run ids (as every spec read from a batch does, since
    runners set them only to inject them) is passed as it is: a copy per spec
    would cost more than a trivial experiment's own work.
    """
    fields = spec.__dict__
    if fields["workflow_run_id"] is None and fields["root_workflow_run_id"] is None:
        return spec
    return spec.model_copy(update={"workflow_run_id": None, "root_workflow_run_id": None})


class LeafRunner:
    """Runs specs of one experiment under one :class:`LeafContext`, one spec at a time.

    What holds for every spec (the options, which outputs the schema has, the
    spec scope) is worked out once, when the runner is built: a terminal node
    builds one for all its specs, so a trivial spec costs little more than the
    user's function itself. Nothing here raises for a failure of a spec.

    ``before_attempt(sort_index, attempt)`` is called before each try (engines
    time each try). With ``inject_workflow_run_id`` a spec's engine run ids
    are set from the context in place (engines pass specs they own); the
    result rows always take them from the context.
    """

    def __init__(
        self,
        experiment: ExperimentRunnable,
        schema: ExperimentSchema,
        ctx: LeafContext,
        *,
        before_attempt: Callable[[int, int], None] | None = None,
    ) -> None:
        options = experiment.options
        self.experiment, self.schema, self.ctx = experiment, schema, ctx
        self.before_attempt = before_attempt
        self.tries = options.retries + 1
        self.inject = options.inject_workflow_run_id
        self.fetch = schema.input_file_fields if options.auto_fetch_files else ()
        self.copy = options.copy_files_to_tempdir
        self.wants_tempdir = experiment.wants_tempdir
        self.output_spec = experiment.output_spec
        self.scalars_only = not (schema.output_file_fields or schema.dataframes)
        self.scope = ctx.scope
        # The function called with the spec alone, when it takes nothing else (most do).
        self.fn = experiment.fn if not self.wants_tempdir and experiment._spec_first else None

    def run(
        self, spec: ExperimentInputSpec, *, tries: int | None = None, first_attempt: int = 1
    ) -> LeafResult:
        """Run ``spec`` with retries: its outputs, or one failure row.

        ``tries`` defaults to ``retries + 1``. Engines that retry on their own
        pass ``tries=1`` and the attempt number they are on as ``first_attempt``.
        """
        if self.inject:
            _set_run_ids(spec, self.ctx)  # the function reads them; the results take them from ctx
        before = self.before_attempt
        attempt = first_attempt
        last = first_attempt + (self.tries if tries is None else tries) - 1
        while True:
            if before is not None:
                before(spec.sort_index, attempt)
            try:
                return self.call_once(spec)
            except Exception as exc:
                # a NonRetryableError or a bad output would fail the same way again
                if attempt >= last or isinstance(exc, NonRetryableError | OutputValidationError):
                    return self._failed(spec, exc, attempt)
            attempt += 1

    def _failed(self, spec: ExperimentInputSpec, exc: Exception, attempts: int) -> LeafResult:
        """The failure row of ``spec`` after its last try failed with ``exc``."""
        return LeafResult(
            spec.sort_index,
            self.ctx.workflow_run_id,
            self.ctx.root_workflow_run_id,
            failure=failure_row(exc, attempts=attempts),
            retryable=not isinstance(exc, NonRetryableError | OutputValidationError),
        )

    def call_once(self, spec: ExperimentInputSpec) -> LeafResult:
        """Run the function once on ``spec``; raise whatever goes wrong."""
        local_spec = spec if self.inject else _without_run_ids(spec)
        if self.fetch:
            local_spec = localize_inputs(local_spec, self.fetch, self.ctx.cache_dir)
        token = SPEC_SCOPE.set(self.scope)
        try:
            if self.fn is not None:
                return self.result(spec, self.fn(local_spec))
            if self.wants_tempdir:
                with tempfile.TemporaryDirectory(prefix="scythe-leaf-") as tmp:
                    if self.copy:
                        fields = self.schema.input_file_fields
                        local_spec = copy_inputs(local_spec, fields, Path(tmp))
                    output = self.experiment.call(local_spec, Path(tmp))
                    return self.result(spec, output, Path(tmp))
            return self.result(spec, self.experiment.call(local_spec, None))
        finally:
            SPEC_SCOPE.reset(token)

    def result(
        self, spec: ExperimentInputSpec, output: Any, tempdir: Path | None = None
    ) -> LeafResult:
        """The rows of ``output``, the function's return value for ``spec``."""
        if type(output) is not self.output_spec and not isinstance(output, self.output_spec):
            raise LeafError(
                f"{self.experiment.name} returned {type(output).__name__}, expected "
                f"{self.output_spec.__name__} (spec {spec.sort_index})"
            )
        sort_index = spec.sort_index
        scalars = _scalar_values(self.experiment, self.schema, output, sort_index)
        if self.scalars_only and not output.dataframes:
            ctx = self.ctx
            # positional (slots dataclass): file_refs, frames, failure, extra_frames
            return LeafResult(
                sort_index,
                ctx.workflow_run_id,
                ctx.root_workflow_run_id,
                scalars,
                NO_VALUES,
                NO_VALUES,
                None,
                NO_VALUES,
            )
        return _output_files_and_frames(self, spec, output, scalars, tempdir)


def _output_files_and_frames(
    runner: LeafRunner,
    spec: ExperimentInputSpec,
    output: ExperimentOutputSpec,
    scalars: dict[str, Any],
    tempdir: Path | None,
) -> LeafResult:
    """The result of an output with file outputs or frames: files uploaded, frames checked."""
    schema, ctx = runner.schema, runner.ctx
    file_refs = (
        upload_outputs(output, schema.output_file_fields, ctx, spec.sort_index, tempdir)
        if schema.output_file_fields
        else {}
    )
    frames = {}
    for name in schema.dataframes:
        frames[name] = _frame_values(getattr(output, name), schema, name, spec.sort_index)
        _check_frame_size(frames[name], name, spec.sort_index, ctx)
    extra = {}
    if output.dataframes:
        index = index_values(spec, schema)
        for name, frame in output.dataframes.items():
            extra[name] = undeclared_frame_rows(frame, index, schema, name)
            _check_frame_size(extra[name], name, spec.sort_index, ctx)
    return LeafResult(
        spec.sort_index,
        ctx.workflow_run_id,
        ctx.root_workflow_run_id,
        scalars=scalars,
        file_refs=file_refs,
        extra_frames=extra,
        frames=frames,
    )


def call_once(
    experiment: ExperimentRunnable,
    schema: ExperimentSchema,
    spec: ExperimentInputSpec,
    ctx: LeafContext,
) -> LeafResult:
    """Run the function once on ``spec``; raise whatever goes wrong."""
    return LeafRunner(experiment, schema, ctx).call_once(spec)


def run_leaf(
    experiment: ExperimentRunnable,
    schema: ExperimentSchema,
    spec: ExperimentInputSpec,
    ctx: LeafContext,
    *,
    tries: int | None = None,
    first_attempt: int = 1,
    before_attempt: Callable[[int, int], None] | None = None,
) -> LeafResult:
    """Run one spec with retries; never raises for a failure of the spec itself.

    A :class:`LeafRunner` for one spec; see :meth:`LeafRunner.run`.
    """
    runner = LeafRunner(experiment, schema, ctx, before_attempt=before_attempt)
    return runner.run(spec, tries=tries, first_attempt=first_attempt)


def crashed_leaf(
    spec: ExperimentInputSpec,
    ctx: LeafContext,
    *,
    message: str,
    attempts: int,
    error_type: str = "WorkerDied",
) -> LeafResult:
    """The failure row of a spec whose worker process died under it too often."""
    _set_run_ids(spec, ctx)
    return LeafResult(
        spec.sort_index,
        ctx.workflow_run_id,
        ctx.root_workflow_run_id,
        failure=failure_row(
            None, error_type=error_type, message=message, attempts=attempts, tb=None
        ),
    )
