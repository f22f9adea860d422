"""The experiment registry: turn a typed function into a runnable experiment.

>>> from pathlib import Path
>>> from scythe import ExperimentInputSpec, ExperimentOutputSpec
>>> class In(ExperimentInputSpec):
...     x: float
>>> class Out(ExperimentOutputSpec):
...     y: float
>>> @ExperimentRegistry.Register(name="doctest_square", retries=1)
... def square(spec: In, tempdir: Path) -> Out:
...     return Out(y=spec.x**2)
>>> square.input_spec.__name__, square.output_spec.__name__, square.wants_tempdir
('In', 'Out', True)
>>> square(In(x=3.0), Path(".")).y
9.0
>>> ExperimentRegistry.unregister("doctest_square")
"""

from __future__ import annotations

import importlib
import inspect
import sys
import typing
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any, Literal

from scythe.base import ExperimentInputSpec, ExperimentOutputSpec
from scythe.errors import (
    DuplicateExperimentError,
    ExperimentDefinitionError,
    ExperimentImportError,
    ExperimentNotFoundError,
    ExperimentOptionsError,
)

TEMPDIR_PARAMETER = "tempdir"


@dataclass(frozen=True)
class ExperimentOptions:
    """How an experiment's leaves run: retries, timeouts, placement, engine task options."""

    retries: int = 0
    execution_timeout: timedelta | None = None
    schedule_timeout: timedelta | None = None
    desired_worker_labels: dict[str, Any] = field(default_factory=dict)
    task_options: dict[str, Any] = field(default_factory=dict)
    auto_fetch_files: bool = True
    copy_files_to_tempdir: bool = False
    inject_workflow_run_id: bool = True

    def resolved_execution_timeout(self) -> timedelta:
        """The execution timeout, falling back to ``SCYTHE_TIMEOUT_EXECUTION`` (1 hour)."""
        if self.execution_timeout is not None:
            return self.execution_timeout
        from scythe.settings import timeout_settings

        return timeout_settings().experiment_execution

    def resolved_schedule_timeout(self) -> timedelta:
        if self.schedule_timeout is not None:
            return self.schedule_timeout
        from scythe.settings import timeout_settings

        return timeout_settings().experiment_schedule


def _duration(option: str, value: timedelta | str | None) -> timedelta | None:
    """A timeout given to ``Register()``: a ``timedelta``, or a duration such as ``"30m"``."""
    if value is None:
        return value
    if isinstance(value, timedelta):
        if value <= timedelta(0):
            raise ExperimentOptionsError(f"{option}={value!r}: a timeout must be positive")
        return value
    from scythe.settings import parse_duration

    seconds = parse_duration(value)
    if not isinstance(seconds, float) or seconds <= 0:
        raise ExperimentOptionsError(
            f"{option}={value!r} is not a duration: use a timedelta, seconds, or a string "
            "such as '30s', '10m', '2h' or '1h30m'"
        )
    return timedelta(seconds=seconds)


# Hatchet task options Scythe sets itself from Register()'s own arguments.
_OWN_TASK_OPTIONS = frozenset(
    {
        "name",
        "description",
        "input_validator",
        "retries",
        "execution_timeout",
        "schedule_timeout",
        "desired_worker_labels",
    }
)


def _check_task_options(options: dict[str, Any]) -> None:
    """Refuse options that are not Hatchet task options, instead of dropping or forwarding them."""
    if not options:
        return
    clashing = sorted(_OWN_TASK_OPTIONS & options.keys())
    if clashing:
        raise ExperimentOptionsError(
            f"task options {clashing} are set by Scythe; use Register()'s own arguments for them"
        )
    from hatchet_sdk import Hatchet

    accepted = set(inspect.signature(Hatchet.task).parameters) - {"self"}
    unknown = sorted(options.keys() - accepted)
    if unknown:
        raise ExperimentOptionsError(
            f"Register() options {unknown} are neither Scythe's nor Hatchet task options "
            f"(Hatchet's: {sorted(accepted - _OWN_TASK_OPTIONS)})"
        )


def _register_options(
    *,
    retries: int,
    execution_timeout: timedelta | str | None,
    schedule_timeout: timedelta | str | None,
    desired_worker_labels: dict[str, Any] | None,
    auto_fetch_files: bool,
    local_file_location: str,
    inject_workflow_run_id: bool,
    worker: Any,
    task_options: dict[str, Any],
) -> ExperimentOptions:
    """``Register()``'s arguments checked and gathered; a bad one raises naming it."""
    if retries < 0:
        raise ExperimentOptionsError(f"retries must be >= 0, got {retries}")
    if worker is not None:
        raise ExperimentOptionsError(
            "Register(worker=...) is not supported: a worker serves every registered "
            "experiment of the modules it imports; start one with `scythe worker "
            "--experiments module` or ScytheWorkerConfig().start()"
        )
    if local_file_location not in ("cache", "copied-to-tempdir"):
        raise ExperimentOptionsError(
            f"local_file_location={local_file_location!r}: use 'cache' or 'copied-to-tempdir'"
        )
    _check_task_options(task_options)
    return ExperimentOptions(
        retries=retries,
        execution_timeout=_duration("execution_timeout", execution_timeout),
        schedule_timeout=_duration("schedule_timeout", schedule_timeout),
        desired_worker_labels=dict(desired_worker_labels or {}),
        task_options=task_options,
        auto_fetch_files=auto_fetch_files,
        copy_files_to_tempdir=local_file_location == "copied-to-tempdir",
        inject_workflow_run_id=inject_workflow_run_id,
    )


def _runnable_of(
    fn: Callable[..., Any],
    name: str | None,
    description: str | None,
    options: ExperimentOptions,
    localns: dict[str, Any] | None,
) -> ExperimentRunnable:
    input_parameter, input_spec, output_spec, wants_tempdir = inspect_signature(fn, localns)
    if options.copy_files_to_tempdir and options.auto_fetch_files and not wants_tempdir:
        raise ExperimentOptionsError(
            f"{_describe(fn)}: local_file_location='copied-to-tempdir' copies file "
            "inputs into the tempdir, so the function must take `tempdir: Path`"
        )
    return ExperimentRunnable(
        fn,
        name=name or fn.__name__,
        description=description or inspect.getdoc(fn),
        input_spec=input_spec,
        output_spec=output_spec,
        input_parameter=input_parameter,
        wants_tempdir=wants_tempdir,
        options=options,
    )


def load_runnable(module: str, qualname: str) -> ExperimentRunnable:
    """Import the registered experiment at ``module:qualname`` (how workers find it)."""
    where = f"{module}:{qualname}"
    try:
        obj: Any = importlib.import_module(module)
    except ImportError as err:
        raise ExperimentImportError(
            f"cannot import the experiment {where}: {err}. Install or put its package on "
            "sys.path (PYTHONPATH) in this process, or import it before opening the run"
        ) from err
    for part in qualname.split("."):
        try:
            obj = getattr(obj, part)
        except AttributeError:
            raise ExperimentImportError(
                f"the experiment {where} is not in module {module!r} (no attribute {part!r}): "
                "was it renamed or moved since the run was allocated?"
            ) from None
    if not isinstance(obj, ExperimentRunnable):
        raise ExperimentDefinitionError(
            f"{module}:{qualname} is a {type(obj).__name__}, not a registered experiment"
        )
    return obj


class ExperimentRunnable:
    """A registered experiment: the user's function with its spec types and run options.

    Call it like the function (for tests); pass it to ``BaseExperiment`` to run
    it over many specs.
    """

    def __init__(
        self,
        fn: Callable[..., Any],
        *,
        name: str,
        description: str | None,
        input_spec: type[ExperimentInputSpec],
        output_spec: type[ExperimentOutputSpec],
        input_parameter: str,
        wants_tempdir: bool,
        options: ExperimentOptions,
    ) -> None:
        self.fn = fn
        self.name = name
        self.description = description
        self.input_spec = input_spec
        self.output_spec = output_spec
        self.input_parameter = input_parameter
        self.wants_tempdir = wants_tempdir
        self.options = options
        self._spec_first = _takes_first(fn, input_parameter)
        self.workflow: Any = None  # set for an included Hatchet Workflow (see for_workflow)
        self.__module__ = fn.__module__
        self.__qualname__ = fn.__qualname__
        self.__name__ = fn.__name__
        self.__doc__ = fn.__doc__
        self.__wrapped__ = fn

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.fn(*args, **kwargs)

    @classmethod
    def for_workflow(cls, workflow: Any) -> ExperimentRunnable:
        """An included Hatchet ``Workflow`` as an experiment of one spec per run.

        Its input validator must be an ``ExperimentInputSpec``; it declares no
        typed outputs, so its runs store an index-only ``scalars`` row (or a
        ``failures`` row), and the workflow's own output is what ``ref.result()``
        returns. It runs on Hatchet only.
        """
        input_spec = workflow.input_validator_type
        if not (isinstance(input_spec, type) and issubclass(input_spec, ExperimentInputSpec)):
            raise ExperimentDefinitionError(
                f"Hatchet workflow {workflow.name!r} takes {getattr(input_spec, '__name__', input_spec)}"
                ", not an ExperimentInputSpec subclass: set input_validator= to one"
            )

        def runs_on_hatchet(*_: Any, **__: Any) -> Any:
            raise ExperimentDefinitionError(
                f"{workflow.name!r} is a Hatchet workflow: it runs on Hatchet workers only"
            )

        runs_on_hatchet.__qualname__ = runs_on_hatchet.__name__ = workflow.name
        runnable = cls(
            runs_on_hatchet,
            name=workflow.name,
            description=getattr(workflow, "description", None),
            input_spec=input_spec,
            output_spec=ExperimentOutputSpec,
            input_parameter="input",
            wants_tempdir=False,
            options=ExperimentOptions(),
        )
        runnable.workflow = workflow
        return runnable

    def __repr__(self) -> str:
        return (
            f"<experiment {self.name!r}: {self.input_spec.__name__} -> {self.output_spec.__name__}>"
        )

    def __reduce__(self) -> tuple[Any, ...]:
        # Pickled by reference so worker processes import the user's module.
        return (load_runnable, (self.__module__, self.__qualname__))

    @property
    def reference(self) -> str:
        """``module:qualname``, the address worker processes import the experiment from."""
        return f"{self.__module__}:{self.__qualname__}"

    def import_problem(self) -> str | None:
        """Why another process could not import this experiment from its reference, or None.

        Worker processes find an experiment by importing ``module:qualname``:
        that fails for functions defined inside a function or in an
        interactive session, and finds something else when the name was rebound.
        """
        if self.workflow is not None:
            return None  # Hatchet workers serve the workflow itself; nothing imports this
        module_name, qualname = self.__module__, self.__qualname__
        if "<locals>" in qualname:
            return f"is defined inside a function ({module_name}.{qualname})"
        module = sys.modules.get(module_name)
        if module_name == "__main__" and not getattr(module, "__file__", None):
            return "is defined in an interactive session or exec'd code"
        try:
            found = (
                load_runnable(module_name, qualname)
                if module_name != "__main__"
                else getattr(module, qualname, None)
            )
        except Exception as exc:
            return f"cannot be imported from {module_name}:{qualname} ({exc})"
        if found is not self:
            return f"is not what {module_name}:{qualname} names (the name was rebound?)"
        return None

    def call(self, spec: ExperimentInputSpec, tempdir: Path | None) -> Any:
        """Call the function with the spec (and a tempdir when it asks for one).

        The spec alone is passed positionally when it is the function's first
        parameter: a little cheaper, once per spec.
        """
        if not self.wants_tempdir and self._spec_first:
            return self.fn(spec)
        kwargs: dict[str, Any] = {self.input_parameter: spec}
        if self.wants_tempdir:
            kwargs[TEMPDIR_PARAMETER] = tempdir
        return self.fn(**kwargs)


def _takes_first(fn: Callable[..., Any], parameter: str) -> bool:
    """Whether ``parameter`` is ``fn``'s first parameter and takes a positional argument."""
    try:
        first = next(iter(inspect.signature(fn).parameters.values()), None)
    except (TypeError, ValueError):
        return False
    positional = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    return first is not None and first.name == parameter and first.kind in positional


def _describe(fn: Callable[..., Any]) -> str:
    return f"{getattr(fn, '__module__', '?')}.{getattr(fn, '__qualname__', repr(fn))}"


def inspect_signature(
    fn: Callable[..., Any], localns: dict[str, Any] | None = None
) -> tuple[str, type[ExperimentInputSpec], type[ExperimentOutputSpec], bool]:
    """Read the input parameter, input spec, output spec and tempdir wish from ``fn``'s signature.

    Annotations are resolved with ``typing.get_type_hints`` (in ``localns`` too,
    the scope the function was defined in), so functions in modules using
    ``from __future__ import annotations`` work as well.
    """
    where = _describe(fn)
    try:
        hints = typing.get_type_hints(fn, localns=localns)
    except Exception as exc:
        raise ExperimentDefinitionError(
            f"cannot resolve the annotations of {where}: {exc}"
        ) from exc
    params = list(inspect.signature(fn).parameters.values())
    input_params = [
        p.name
        for p in params
        if isinstance(hints.get(p.name), type) and issubclass(hints[p.name], ExperimentInputSpec)
    ]
    if len(input_params) != 1:
        raise ExperimentDefinitionError(
            f"{where} must take exactly one parameter annotated with an ExperimentInputSpec "
            f"subclass; found {input_params or 'none'}"
        )
    wants_tempdir = TEMPDIR_PARAMETER in {p.name for p in params}
    if wants_tempdir and hints.get(TEMPDIR_PARAMETER) not in (Path, None):
        raise ExperimentDefinitionError(f"{where}: parameter 'tempdir' must be annotated Path")
    extra = [
        p.name
        for p in params
        if p.name not in (*input_params, TEMPDIR_PARAMETER) and p.default is inspect.Parameter.empty
    ]
    if extra:
        raise ExperimentDefinitionError(
            f"{where}: parameters {extra} have no default; Scythe passes only "
            "the input spec and 'tempdir'"
        )
    output = hints.get("return")
    if not (isinstance(output, type) and issubclass(output, ExperimentOutputSpec)):
        raise ExperimentDefinitionError(
            f"{where} must be annotated to return an ExperimentOutputSpec subclass, "
            f"got {getattr(output, '__name__', output)!r}"
        )
    return input_params[0], hints[input_params[0]], output, wants_tempdir


class ExperimentRegistry:
    """Every experiment registered in this process, by name."""

    _experiments: typing.ClassVar[dict[str, ExperimentRunnable]] = {}
    _workflows: typing.ClassVar[dict[str, Any]] = {}  # Hatchet workflows served next to experiments
    _workflow_experiments: typing.ClassVar[dict[str, ExperimentRunnable]] = {}

    @classmethod
    def Register(
        cls,
        name: str | None = None,
        *,
        description: str | None = None,
        retries: int = 0,
        execution_timeout: timedelta | str | None = None,
        schedule_timeout: timedelta | str | None = None,
        desired_worker_labels: dict[str, Any] | None = None,
        auto_fetch_files: bool = True,
        local_file_location: Literal["cache", "copied-to-tempdir"] = "cache",
        inject_workflow_run_id: bool = True,
        overwrite_log_method: bool = True,
        worker: Any = None,
        **task_options: Any,
    ) -> Callable[[Callable[..., Any]], ExperimentRunnable]:
        """Decorator: register a function ``(spec: In, tempdir: Path) -> Out`` as an experiment.

        ``retries`` re-runs a failing leaf that many more times; ``execution_timeout``
        bounds one attempt (a ``timedelta`` or a duration such as ``"30m"``; default
        ``SCYTHE_TIMEOUT_EXECUTION``, 1 hour). ``auto_fetch_files`` downloads remote
        ``FileReference`` inputs before the call (to the cache, or also copied into
        the tempdir with ``local_file_location="copied-to-tempdir"``);
        ``inject_workflow_run_id`` sets the spec's ``workflow_run_id`` for the call;
        ``overwrite_log_method`` is accepted for scythe-engine 1.x code (``spec.log``
        always reaches the engine's log). Other keyword options are Hatchet task
        options (``concurrency``, ``rate_limits``, ...), checked against
        ``hatchet_sdk``'s ``Hatchet.task`` when given.

        >>> from scythe import ExperimentInputSpec, ExperimentOutputSpec
        >>> class In(ExperimentInputSpec):
        ...     x: float
        >>> class Out(ExperimentOutputSpec):
        ...     y: float
        >>> ExperimentRegistry.Register(worker=object())
        Traceback (most recent call last):
        ...
        scythe.errors.ExperimentOptionsError: Register(worker=...) is not supported: ...
        """
        options = _register_options(
            retries=retries,
            execution_timeout=execution_timeout,
            schedule_timeout=schedule_timeout,
            desired_worker_labels=desired_worker_labels,
            auto_fetch_files=auto_fetch_files,
            local_file_location=local_file_location,
            inject_workflow_run_id=inject_workflow_run_id,
            worker=worker,
            task_options=task_options,
        )

        def decorate(fn: Callable[..., Any]) -> ExperimentRunnable:
            # The decorating scope: specs defined next to a function inside a function.
            caller = sys._getframe(1)
            localns = dict(caller.f_locals) if caller.f_code.co_name != "<module>" else None
            return cls.Include(_runnable_of(fn, name, description, options, localns))

        return decorate

    @classmethod
    def Include(cls, runnable: Any) -> Any:
        """Register an existing runnable experiment, or a Hatchet ``Standalone``/``Workflow``.

        A Hatchet workflow is kept by name and served by ``scythe worker`` (leaf
        role) next to the experiments' tasks; it is returned unchanged.
        """
        if _is_hatchet_workflow(runnable):
            return cls._include_workflow(runnable)
        if not isinstance(runnable, ExperimentRunnable):
            raise ExperimentDefinitionError(
                f"cannot include {runnable!r}: not a registered experiment "
                "nor a Hatchet Standalone or Workflow"
            )
        existing = cls._experiments.get(runnable.name)
        if existing is not None and existing.reference != runnable.reference:
            raise DuplicateExperimentError(
                f"an experiment named {runnable.name!r} is already registered "
                f"({existing.reference}); pass name=... to Register() to pick another"
            )
        cls._experiments[runnable.name] = runnable
        return runnable

    @classmethod
    def _include_workflow(cls, workflow: Any) -> Any:
        existing = cls._workflows.get(workflow.name)
        if existing is not None and existing is not workflow:
            raise DuplicateExperimentError(
                f"a Hatchet workflow named {workflow.name!r} is already included; rename one of them"
            )
        cls._workflows[workflow.name] = workflow
        return workflow

    @classmethod
    def workflows(cls) -> list[Any]:
        """The Hatchet workflows included with ``Include()``, by name."""
        return [cls._workflows[name] for name in sorted(cls._workflows)]

    @classmethod
    def get(cls, name: str) -> ExperimentRunnable:
        """The experiment registered as ``name`` (an included workflow's experiment too)."""
        if name not in cls._experiments and name in cls._workflows:
            return cls.workflow_experiment(cls._workflows[name])
        try:
            return cls._experiments[name]
        except KeyError:
            known = ", ".join(sorted(cls._experiments)) or "none"
            raise ExperimentNotFoundError(
                f"no experiment named {name!r} is registered (registered: {known})"
            ) from None

    @classmethod
    def workflow_experiment(cls, workflow: Any) -> ExperimentRunnable:
        """The experiment of an included Hatchet workflow (included here if it was not)."""
        cls._include_workflow(workflow)
        adapter = cls._workflow_experiments.get(workflow.name)
        if adapter is None or adapter.workflow is not workflow:
            adapter = ExperimentRunnable.for_workflow(workflow)
            cls._workflow_experiments[workflow.name] = adapter
        return adapter

    @classmethod
    def get_runnable(cls, name: str) -> Any:
        """The registered experiment, or else the included Hatchet workflow, called ``name``."""
        if name in cls._experiments or name not in cls._workflows:
            return cls.get(name)
        return cls._workflows[name]

    @classmethod
    def experiments(cls) -> list[ExperimentRunnable]:
        """Every registered experiment (not the included workflows), by name."""
        return [cls._experiments[name] for name in sorted(cls._experiments)]

    @classmethod
    def names(cls) -> list[str]:
        return sorted(cls._experiments)

    @classmethod
    def unregister(cls, name: str) -> None:
        cls._experiments.pop(name, None)
        cls._workflows.pop(name, None)
        cls._workflow_experiments.pop(name, None)

    @classmethod
    def clear(cls) -> None:
        """Forget every registered experiment and included workflow (for tests)."""
        cls._experiments.clear()
        cls._workflows.clear()
        cls._workflow_experiments.clear()


def _is_hatchet_workflow(obj: Any) -> bool:
    """Whether ``obj`` is a Hatchet ``Standalone`` or ``Workflow`` (without importing hatchet_sdk)."""
    workflow_module = sys.modules.get("hatchet_sdk.runnables.workflow")
    return workflow_module is not None and isinstance(obj, workflow_module.BaseWorkflow)
