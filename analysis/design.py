"""Designs from an input spec's own field constraints: Sobol, Latin hypercube, random, grid, Saltelli.

Each field to vary is a *factor*:

- a ``float`` with a lower and an upper bound (``ge``/``gt`` and ``le``/``lt``)
  is a continuous range (an open bound is moved inside by one float step);
- an ``int`` with both bounds is the integers of its range, drawn with equal
  chances (``multiple_of`` is kept);
- a ``bool``, ``Literal`` or ``Enum`` is a set of levels, drawn with equal chances;
- anything else (no bounds, ``str``, dates, files) needs ``bounds=`` or
  ``levels=`` from the caller, or ``fixed=`` to hold it at one value.

A point of the unit hypercube (one coordinate per factor, in the spec's field
order) becomes one spec: a coordinate ``u`` in ``[0, 1)`` maps to
``low + u * (high - low)`` for a range and to level ``floor(u * k)`` of ``k`` levels.

>>> from typing import Literal
>>> from pydantic import Field
>>> from scythe import ExperimentInputSpec
>>> class Wall(ExperimentInputSpec):
...     r_value: float = Field(..., ge=0.5, le=8)
...     layers: int = Field(1, ge=1, le=3)
...     finish: Literal["brick", "render"] = "brick"
>>> specs = sample(Wall, 8, method="lhs", seed=1)
>>> sorted({s.finish for s in specs}), sorted({s.layers for s in specs})
(['brick', 'render'], [1, 2, 3])
>>> all(0.5 <= s.r_value <= 8 for s in specs)
True
"""

from __future__ import annotations

import enum
import math
import types
import typing
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal, TypeVar

from analysis.errors import DesignError, UnboundedFieldError
from scythe.base import ExperimentInputSpec, is_file_reference_field, parse_specs

if TYPE_CHECKING:
    import numpy as np

Method = Literal["sobol", "lhs", "random", "grid", "saltelli"]
METHODS: tuple[str, ...] = typing.get_args(Method)
SpecT = TypeVar("SpecT", bound=ExperimentInputSpec)


@dataclass(frozen=True)
class Factor:
    """One field a design varies: a range (``low``..``high``) or a tuple of ``levels``.

    An ``integer`` range, or one with a ``step`` (``multiple_of``), is discrete:
    its values are the multiples of the step (1 for integers) inside it. Every
    value of a discrete factor is drawn with the same chance.
    """

    name: str
    low: float | None = None
    high: float | None = None
    integer: bool = False
    step: float | None = None
    levels: tuple[Any, ...] | None = None

    @property
    def count(self) -> int | None:
        """How many values a discrete factor has; None for a continuous range."""
        if self.levels is not None:
            return len(self.levels)
        if self.integer or self.step:
            step = self._step
            first = self._first
            return max(0, math.floor((self.high - first) / step + 1e-9) + 1)  # type: ignore[operator]
        return None

    @property
    def _step(self) -> float:
        return (int(self.step or 1) or 1) if self.integer else float(self.step or 1.0)

    @property
    def _first(self) -> float:
        """The lowest multiple of the step inside the range."""
        return math.ceil(self.low / self._step - 1e-9) * self._step  # type: ignore[operator]

    def value(self, i: int) -> Any:
        """The ``i``-th value of a discrete factor (of a continuous range: its low end)."""
        if self.levels is not None:
            return self.levels[i]
        if not (self.integer or self.step):
            return self.low
        k = round(self._first / self._step) + i  # the value is k steps: exact for pydantic
        return int(k * self._step) if self.integer else k * self._step

    def from_unit(self, u: np.ndarray) -> list[Any]:
        """Values for coordinates ``u`` in ``[0, 1]`` of the unit hypercube."""
        import numpy as np

        count = self.count
        if count is not None:
            index = np.clip(np.floor(u * count).astype(int), 0, count - 1)
            return [self.value(int(i)) for i in index]
        values = self.low + u * (self.high - self.low)  # type: ignore[operator]
        return [float(v) for v in np.clip(values, self.low, self.high)]

    def grid(self, n: int) -> list[Any]:
        """``n`` evenly spaced values (ends included), or every level of a discrete factor."""
        import numpy as np

        if self.levels is not None:
            return list(self.levels)
        count = self.count
        if count is not None:
            picks = np.unique(np.round(np.linspace(0, count - 1, n)).astype(int))
            return [self.value(int(i)) for i in picks]
        return self.from_unit(np.linspace(0.0, 1.0, n))


def sample(
    spec_type: type[SpecT],
    n: int,
    *,
    method: Method = "sobol",
    seed: int | None = None,
    vary: Sequence[str] | None = None,
    fixed: Mapping[str, Any] | None = None,
    bounds: Mapping[str, tuple[float, float]] | None = None,
    levels: Mapping[str, Sequence[Any]] | None = None,
) -> list[SpecT]:
    """Specs of ``spec_type`` spread over the ranges and levels its fields declare.

    ``method``: ``"sobol"`` (scrambled Sobol' points; ``n`` a power of 2 keeps
    their balance), ``"lhs"`` (Latin hypercube: each factor's range cut in
    ``n`` strata, one point in each), ``"random"`` (independent uniform draws),
    ``"grid"`` (every combination of ``n`` evenly spaced values per range and
    every level of each discrete factor), or ``"saltelli"`` (Saltelli's design
    for Sobol' indices: ``n * (factors + 2)`` specs; :func:`analysis.sensitivity_analysis.sensitivity`
    recognises it in a run). ``seed`` makes the draw reproducible.

    The factors are ``vary`` (default: every field not in ``fixed``), always in
    the spec's field order; fields that are neither keep their default.
    ``bounds`` gives or narrows a numeric field's range (both ends included),
    ``levels`` gives the values of any field (e.g. files, or ``None`` for an
    optional field), ``fixed`` holds fields at one value. A factor without a
    range raises :class:`~analysis.errors.UnboundedFieldError`.

    >>> from pydantic import Field
    >>> from scythe import ExperimentInputSpec
    >>> class Box(ExperimentInputSpec):
    ...     width: float = Field(..., gt=0, le=2)
    ...     label: str = "box"
    >>> [s.width for s in sample(Box, 3, method="grid", vary=["width"])][1:]
    [1.0, 2.0]
    >>> sample(Box, 4)
    Traceback (most recent call last):
    ...
    analysis.errors.UnboundedFieldError: Box.label (str) has no range to sample: pass levels={'label': [...]} or fixed={'label': value}, or leave it out of vary= to keep its default
    """
    factors = design_factors(spec_type, vary=vary, fixed=fixed, bounds=bounds, levels=levels)
    # A factor with one value is held at it: a design's factors are the fields that vary.
    single = {
        f.name: f.value(0) for f in factors if f.count == 1 or (f.count is None and f.low == f.high)
    }
    held = {**(fixed or {}), **single}
    factors = [f for f in factors if f.name not in single]
    _check_size(n, method)
    if not factors and method == "saltelli":
        raise DesignError(f"{spec_type.__name__}: no field varies, there is nothing to analyse")
    if not factors:  # every field holds one value: n copies (one for a grid)
        return parse_specs(
            spec_type, [{**held, "sort_index": i} for i in range(n if method != "grid" else 1)]
        )
    columns = _columns(factors, n, method, seed)
    rows = [
        dict(zip(columns, values, strict=True)) for values in zip(*columns.values(), strict=True)
    ]
    return parse_specs(spec_type, [{**held, **row, "sort_index": i} for i, row in enumerate(rows)])


def _check_size(n: int, method: str) -> int:
    if method not in METHODS:
        raise DesignError(f"method={method!r} is not one of {list(METHODS)}")
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise DesignError(f"n must be a positive int, got {n!r}")
    return n


def _columns(factors: list[Factor], n: int, method: str, seed: int | None) -> dict[str, list[Any]]:
    """Each factor's values, one per spec, by factor name (in the factors' order)."""
    if method == "grid":
        import itertools

        points = list(itertools.product(*(f.grid(n) for f in factors)))
        return {f.name: [p[i] for p in points] for i, f in enumerate(factors)}
    unit = unit_points(len(factors), n, method=method, seed=seed)
    return {f.name: f.from_unit(unit[:, i]) for i, f in enumerate(factors)}


def unit_points(d: int, n: int, *, method: str = "sobol", seed: int | None = None) -> np.ndarray:
    """Points of the unit hypercube ``[0, 1)^d``: ``n`` rows (``n * (d + 2)`` for Saltelli).

    >>> unit_points(2, 4, method="lhs", seed=0).shape
    (4, 2)
    """
    import numpy as np
    from scipy.stats import qmc

    if method == "sobol":
        return qmc.Sobol(d, scramble=True, rng=seed).random(n)
    if method == "lhs":
        return qmc.LatinHypercube(d, rng=seed).random(n)
    if method == "random":
        return np.random.default_rng(seed).random((n, d))
    if method == "saltelli":
        from SALib.sample import sobol as saltelli

        problem = {"num_vars": d, "names": [f"x{i}" for i in range(d)], "bounds": [[0, 1]] * d}
        return saltelli.sample(problem, n, calc_second_order=False, scramble=True, seed=seed)
    raise DesignError(f"method={method!r} draws no unit points; use one of {list(METHODS)}")


def design_factors(
    spec_type: type[ExperimentInputSpec],
    *,
    vary: Sequence[str] | None = None,
    fixed: Mapping[str, Any] | None = None,
    bounds: Mapping[str, tuple[float, float]] | None = None,
    levels: Mapping[str, Sequence[Any]] | None = None,
) -> list[Factor]:
    """The factors :func:`sample` varies, in the spec's field order (same options).

    >>> from pydantic import Field
    >>> from scythe import ExperimentInputSpec
    >>> class Pipe(ExperimentInputSpec):
    ...     length: float = Field(..., ge=1, lt=10)
    >>> design_factors(Pipe)[0].low, design_factors(Pipe, bounds={"length": (2, 3)})[0].high
    (1.0, 3.0)
    """
    fields = [n for n in spec_type.model_fields if n not in ExperimentInputSpec.BASE_FIELDS]
    fixed, bounds, levels = dict(fixed or {}), dict(bounds or {}), dict(levels or {})
    _check_names(spec_type, fields, vary=vary, fixed=fixed, bounds=bounds, levels=levels)
    chosen = set(vary) if vary is not None else set(fields) - set(fixed)
    missing = [
        n
        for n in fields
        if n not in chosen and n not in fixed and spec_type.model_fields[n].is_required()
    ]
    if missing:
        raise DesignError(
            f"{spec_type.__name__}: required field(s) {missing} are neither varied nor fixed: "
            f"add them to vary= or pass fixed={{{missing[0]!r}: value}}"
        )
    return [
        _factor(spec_type, name, bounds.get(name), levels.get(name))
        for name in fields
        if name in chosen
    ]


def _check_names(spec_type: type, fields: list[str], **given: Any) -> None:
    for option, names in given.items():
        unknown = [n for n in (names or ()) if n not in fields]
        if unknown:
            raise DesignError(
                f"{option}= names {unknown}, which are not fields of {spec_type.__name__}; "
                f"its fields: {fields}"
            )
    clash = sorted(
        set(given["fixed"])
        & (set(given["vary"] or ()) | set(given["bounds"]) | set(given["levels"]))
    )
    if clash:
        raise DesignError(f"{spec_type.__name__}: {clash} are fixed and also varied; pick one")


def _factor(
    spec_type: type[ExperimentInputSpec],
    name: str,
    given_bounds: tuple[float, float] | None,
    given_levels: Sequence[Any] | None,
) -> Factor:
    if given_levels is not None:
        if not len(given_levels):
            raise DesignError(f"levels={{{name!r}: ...}} is empty; give at least one value")
        return Factor(name, levels=tuple(given_levels))
    kind, declared = _declared(spec_type, name)
    if declared is not None:
        return Factor(name, levels=declared)
    if kind not in ("float", "int"):
        raise _unbounded(spec_type, name, kind, "")
    low, high, step = _declared_range(spec_type, name, kind == "int")
    if given_bounds is not None:
        low, high = _narrow(spec_type, name, (low, high), given_bounds)
    if low is None or high is None:
        one = low is not None or high is not None  # say which end is missing, if one is there
        missing = f" (it has no {'lower' if low is None else 'upper'} bound)" if one else ""
        raise _unbounded(spec_type, name, kind, missing)
    factor = Factor(name, low=float(low), high=float(high), integer=kind == "int", step=step)
    if low > high or factor.count == 0:
        raise DesignError(f"{spec_type.__name__}.{name}: the range {low}..{high} holds no value")
    return factor


def _unbounded(spec_type: type, name: str, kind: str, why: str) -> UnboundedFieldError:
    declare = "declare Field(ge=..., le=...) on it or " if kind in ("float", "int") else ""
    ranged = f"bounds={{{name!r}: (low, high)}}, " if kind in ("float", "int") else ""
    default = (
        ""
        if spec_type.model_fields[name].is_required()
        else ", or leave it out of vary= to keep its default"
    )
    return UnboundedFieldError(
        f"{spec_type.__name__}.{name} ({kind}) has no range to sample{why}: {declare}"
        f"pass {ranged}levels={{{name!r}: [...]}} or fixed={{{name!r}: value}}{default}"
    )


def _declared(
    spec_type: type[ExperimentInputSpec], name: str
) -> tuple[str, tuple[Any, ...] | None]:
    """The field's kind (float, int, bool, str, ...) and its declared levels, if it has some."""
    field = spec_type.model_fields[name]
    if is_file_reference_field(field):
        return "FileReference", None
    tp = _base_annotation(field.annotation)
    if typing.get_origin(tp) is Literal:
        return "Literal", tuple(typing.get_args(tp))
    if isinstance(tp, type) and issubclass(tp, enum.Enum):
        return tp.__name__, tuple(tp)
    if tp is bool:
        return "bool", (False, True)
    if isinstance(tp, type) and tp in (int, float):
        return tp.__name__, None
    return getattr(tp, "__name__", None) or repr(tp), None


def _base_annotation(tp: Any) -> Any:
    """The annotation without ``Annotated`` and ``| None``."""
    while True:
        if typing.get_origin(tp) is typing.Annotated:
            tp = typing.get_args(tp)[0]
            continue
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if typing.get_origin(tp) in (typing.Union, types.UnionType) and len(args) == 1:
            tp = args[0]
            continue
        return tp


def _declared_range(
    spec_type: type[ExperimentInputSpec], name: str, integer: bool
) -> tuple[float | None, float | None, float | None]:
    """Lower and upper bounds the field accepts (open bounds moved inside) and its step."""
    from scythe.schema import compile_field

    low = high = step = None
    for c in compile_field(spec_type, name).constraints:
        if c.kind in ("ge", "gt"):
            value = float(c.value)
            if c.kind == "gt":
                value = math.floor(value) + 1 if integer else math.nextafter(value, math.inf)
            low = value if low is None else max(low, value)
        elif c.kind in ("le", "lt"):
            value = float(c.value)
            if c.kind == "lt":
                value = math.ceil(value) - 1 if integer else math.nextafter(value, -math.inf)
            high = value if high is None else min(high, value)
        elif c.kind == "multiple_of":
            step = float(c.value)
    return low, high, step


def _narrow(
    spec_type: type,
    name: str,
    declared: tuple[float | None, float | None],
    given: tuple[float, float],
) -> tuple[float, float]:
    """The caller's ``bounds`` for a field, checked against the range it declares."""
    try:
        low, high = (float(v) for v in given)
    except (TypeError, ValueError):
        raise DesignError(
            f"bounds={{{name!r}: {given!r}}} must be a (low, high) pair of numbers"
        ) from None
    lo, hi = declared
    if (lo is not None and low < lo) or (hi is not None and high > hi) or low > high:
        raise DesignError(
            f"bounds={{{name!r}: ({low}, {high})}} is not inside the range "
            f"{spec_type.__name__}.{name} declares ({lo}, {hi}), or low > high"
        )
    return low, high
