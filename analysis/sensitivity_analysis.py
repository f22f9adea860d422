"""Which inputs drive each output of a run: Sobol' indices, or regression and rank measures.

The *factors* are the run's input columns that take more than one value
(scythe's id columns and computed features left out). Numeric inputs (ints,
floats, dates) are numbers; ``bool``, ``str``, ``Literal``, ``Enum`` and file
inputs are categorical.

A run **was sampled with a Saltelli design** when its specs, in ``sort_index``
order, fall in blocks of ``factors + 2`` rows ``A, AB_1, ..., AB_k, B`` where
``AB_i`` equals ``A`` in every factor but the ``i``-th, which it takes from
``B`` (factors in the spec's field order). That is the order
``analysis.design.sample(..., method="saltelli")`` returns, and it is read
from the stored specs alone, so it holds for any run allocated from such a
list. Then each output gets Sobol' first-order (``s1``) and total (``st``)
indices with bootstrap 95 % intervals (SALib); blocks with a failed spec or a
missing value are left out. Otherwise each output gets a linear regression on
the factors (categorical ones as indicator columns). ``ASSUMPTIONS`` says
what each method assumes.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

import polars as pl

from analysis.errors import OutputNotFoundError, SensitivityError

if TYPE_CHECKING:
    import numpy as np

    from scythe.experiments import ExperimentRun

MAX_LEVELS = 50
"""A categorical input with more levels than this is left out of a regression."""

ASSUMPTIONS = {
    "sobol": (
        "Sobol' indices split the output's variance over the inputs' ranges as sampled: "
        "s1 is the share one input explains on its own, st the share it has a part in, "
        "interactions included (st - s1 is its share in interactions). They assume the "
        "inputs are independent and the specs follow the Saltelli design; intervals are "
        "95 % bootstrap intervals and shrink with more base samples."
    ),
    "regression": (
        "A linear model of the output on the inputs (categorical inputs as indicator "
        "columns), fitted to the values and to their ranks; importance is the share of "
        "the output's variance (of its ranks, when the rank model fits better: a monotonic "
        "but non-linear response) lost when the input is dropped. src is the standardized "
        "regression coefficient and rank_corr Spearman's rho (numeric inputs) or the "
        "correlation ratio of the output's ranks over the levels (categorical inputs, 0..1). "
        "They assume a roughly linear or monotonic response and inputs that are not strongly "
        "correlated; r2 says how much of the output the model explains: below about 0.7, "
        "rank by it with care. Interactions are not measured."
    ),
}


@dataclass(frozen=True)
class OutputSensitivity:
    """The inputs of one output, most influential first.

    ``table`` has one row per input: ``input``, ``kind`` (numeric or
    categorical), ``importance`` (``st`` for Sobol', the variance share lost
    without the input for a regression), then the method's own columns.
    """

    output: str
    method: Literal["sobol", "regression"]
    table: pl.DataFrame
    rows: int
    r2: float | None = None
    note: str | None = None

    @property
    def ranking(self) -> list[str]:
        """Input names, most influential first."""
        return self.table.get_column("input").to_list()

    @property
    def assumptions(self) -> str:
        return ASSUMPTIONS[self.method]


@dataclass(frozen=True)
class Sensitivity:
    """Sensitivity of a run's outputs to its inputs: one :class:`OutputSensitivity` per output."""

    run_id: str
    saltelli: bool
    factors: dict[str, str]
    outputs: dict[str, OutputSensitivity] = field(default_factory=dict)
    left_out: dict[str, str] = field(default_factory=dict)

    def __getitem__(self, output: str) -> OutputSensitivity:
        try:
            return self.outputs[output]
        except KeyError:
            raise OutputNotFoundError(
                f"no sensitivity of {output!r}; outputs: {list(self.outputs)}"
            ) from None

    def ranking(self, output: str) -> list[str]:
        """The inputs of ``output``, most influential first."""
        return self[output].ranking

    def to_frame(self) -> pl.DataFrame:
        """Every output's table in one frame, with ``output``, ``method`` and ``rank`` columns."""
        frames = [
            s.table.with_columns(
                pl.lit(name).alias("output"),
                pl.lit(s.method).alias("method"),
                pl.int_range(1, s.table.height + 1).alias("rank"),
            )
            for name, s in self.outputs.items()
        ]
        frame = pl.concat(frames, how="diagonal_relaxed")
        return frame.select("output", "method", "rank", pl.exclude("output", "method", "rank"))


def sensitivity(
    run: ExperimentRun,
    outputs: Sequence[str] | None = None,
    *,
    method: Literal["auto", "sobol", "regression"] = "auto",
    seed: int = 0,
    num_resamples: int = 200,
) -> Sensitivity:
    """For each output (default: every numeric scalar output), a ranking of the inputs.

    ``method="auto"`` computes Sobol' indices when the run was sampled with a
    Saltelli design (see the module's docstring) and a regression otherwise;
    ``"sobol"`` raises :class:`~analysis.errors.SensitivityError` when it was
    not, ``"regression"`` is always possible. ``seed`` and ``num_resamples``
    set the bootstrap of the Sobol' intervals.

    >>> import tempfile
    >>> from pydantic import Field
    >>> from scythe import BaseExperiment, ExperimentInputSpec, ExperimentOutputSpec
    >>> from scythe import ExperimentRegistry
    >>> from scythe.experiments import LocalEngine
    >>> from analysis.design import sample
    >>> class Plate(ExperimentInputSpec):
    ...     a: float = Field(..., ge=0, le=1)
    ...     b: float = Field(..., ge=0, le=1)
    >>> class Sum(ExperimentOutputSpec):
    ...     y: float
    >>> @ExperimentRegistry.Register(name="doctest_sensitivity")
    ... def weigh(spec: Plate) -> Sum:
    ...     return Sum(y=4 * spec.a + spec.b)
    >>> run, ref = BaseExperiment(weigh, storage=tempfile.mkdtemp()).allocate(
    ...     sample(Plate, 64, method="saltelli", seed=0), engine=LocalEngine(slots=0))
    >>> result = sensitivity(run)
    >>> result["y"].method, result.ranking("y")
    ('sobol', ['a', 'b'])
    >>> ExperimentRegistry.unregister("doctest_sensitivity")
    """
    data = run_inputs_and_outputs(run, outputs)
    factors, left_out = _factor_kinds(data.frame, data.inputs)
    if not factors:
        raise SensitivityError(f"run {run.run_id}: no input takes more than one value")
    blocks = saltelli_blocks(data.frame, list(factors))
    if method == "sobol" and blocks is None:
        raise SensitivityError(
            f"run {run.run_id} was not sampled with a Saltelli design (blocks of A, AB_1..AB_k, "
            "B over its varying inputs): use sample(..., method='saltelli') or method='regression'"
        )
    result = Sensitivity(run.run_id, blocks is not None and method != "regression", factors)
    result.left_out.update(left_out)
    for name in data.outputs:
        if result.saltelli:
            result.outputs[name] = sobol(
                data.frame, factors, name, seed=seed, num_resamples=num_resamples
            )
        else:
            result.outputs[name] = _regression_of(data.frame, factors, name)
    return result


@dataclass(frozen=True)
class RunData:
    """Every spec of a run (``sort_index`` order) with its outputs (null where it failed)."""

    frame: pl.DataFrame
    inputs: list[str]
    outputs: list[str]


def numeric_outputs(run: ExperimentRun) -> list[str]:
    """The run's numeric scalar outputs (ints and floats, not bools), in declaration order."""
    schema = run.table_schemas()["scalars"]
    return [c.name for c in schema.values if c.dtype.is_numeric()]


def chosen_outputs(run: ExperimentRun, outputs: Sequence[str] | None) -> list[str]:
    """``outputs`` (default: every numeric scalar output), each checked to be one."""
    numeric = numeric_outputs(run)
    chosen = list(numeric if outputs is None else outputs)
    unknown = [o for o in chosen if o not in numeric]
    if unknown:
        raise OutputNotFoundError(
            f"run {run.run_id}: {unknown} are not numeric scalar outputs; they are: {numeric}"
        )
    return chosen


def input_columns(run: ExperimentRun) -> list[str]:
    """The run's input columns: the index without scythe's id columns and computed features."""
    from scythe.base import ExperimentInputSpec

    computed = set(run.manifest.computed_features)
    schema = run.table_schemas()["scalars"]
    skip = set(ExperimentInputSpec.BASE_FIELDS) | computed
    return [c.name for c in schema.index if c.name not in skip]


def run_inputs_and_outputs(run: ExperimentRun, outputs: Sequence[str] | None = None) -> RunData:
    """The run's specs joined with the outputs asked for (default: every numeric scalar output).

    >>> import tempfile
    >>> from scythe import BaseExperiment, ExperimentInputSpec, ExperimentOutputSpec
    >>> from scythe import ExperimentRegistry, LocalEngine
    >>> class Wall(ExperimentInputSpec):
    ...     r_value: float
    ...     @property
    ...     def computed_features(self):
    ...         return {"u_guess": 1 / self.r_value}
    >>> class Loss(ExperimentOutputSpec):
    ...     u_value: float
    ...     ok: bool
    >>> @ExperimentRegistry.Register(name="doctest_run_inputs")
    ... def conduct(spec: Wall) -> Loss:
    ...     return Loss(u_value=1 / spec.r_value, ok=spec.r_value < 3)
    >>> run, _ = BaseExperiment(conduct, storage=tempfile.mkdtemp()).allocate(
    ...     [Wall(r_value=2.0), Wall(r_value=4.0)], engine=LocalEngine(slots=0))
    >>> input_columns(run), numeric_outputs(run)
    (['r_value'], ['u_value'])
    >>> run_inputs_and_outputs(run).frame.rows()
    [(0, 2.0, 0.5), (1, 4.0, 0.25)]
    >>> ExperimentRegistry.unregister("doctest_run_inputs")
    """
    chosen = chosen_outputs(run, outputs)
    inputs = input_columns(run)
    results = run.results()
    specs = results.table("specs").select("sort_index", *inputs)
    values = results.scalars.select("sort_index", *chosen)
    frame = specs.join(values, on="sort_index", how="left").sort("sort_index")
    return RunData(frame, inputs, chosen)


def _factor_kinds(frame: pl.DataFrame, inputs: list[str]) -> tuple[dict[str, str], dict[str, str]]:
    """Inputs that vary, as numeric or categorical; and those left out, with the reason."""
    factors: dict[str, str] = {}
    left_out: dict[str, str] = {}
    for name in inputs:
        column = frame.get_column(name)
        distinct = column.n_unique()
        if distinct < 2:
            continue
        dtype = column.dtype
        if dtype.is_numeric() or dtype.is_temporal():
            factors[name] = "numeric"
        elif distinct > MAX_LEVELS:
            left_out[name] = f"categorical with {distinct} levels (more than {MAX_LEVELS})"
        else:
            factors[name] = "categorical"
    return factors, left_out


def saltelli_blocks(frame: pl.DataFrame, factors: list[str]) -> int | None:
    """How many Saltelli blocks ``A, AB_1..AB_k, B`` the rows form over ``factors``; None if not.

    >>> frame = pl.DataFrame({"a": [0.1, 0.7, 0.1, 0.7], "b": [0.2, 0.2, 0.9, 0.9]})
    >>> saltelli_blocks(frame, ["a", "b"])
    1
    >>> saltelli_blocks(frame[[0, 2, 1, 3]], ["a", "b"]) is None
    True
    """
    import numpy as np

    d, size = len(factors), len(factors) + 2
    if d == 0 or frame.height == 0 or frame.height % size:
        return None
    codes = frame.select(pl.col(c).rank("dense").fill_null(0) for c in factors).to_numpy()
    blocks = codes.reshape(frame.height // size, size, d)
    a, b, ab = blocks[:, :1, :], blocks[:, -1:, :], blocks[:, 1:-1, :]
    expected = np.where(np.eye(d, dtype=bool)[None, :, :], b, a)
    if not np.array_equal(ab, expected) or np.array_equal(a, b):
        return None
    return blocks.shape[0]


def sobol(
    frame: pl.DataFrame,
    factors: Sequence[str] | dict[str, str],
    output: str,
    *,
    seed: int = 0,
    num_resamples: int = 200,
) -> OutputSensitivity:
    """Sobol' ``s1`` and ``st`` of ``output`` from rows in Saltelli order (SALib).

    ``factors`` in the design's order (a dict also gives each one's kind);
    blocks with a missing value of ``output`` are left out.

    >>> from analysis.design import unit_points
    >>> x = unit_points(2, 256, method="saltelli", seed=0)
    >>> frame = pl.DataFrame({"a": x[:, 0], "b": x[:, 1], "y": 3 * x[:, 0] + x[:, 1] ** 2})
    >>> sobol(frame, ["a", "b"], "y").ranking
    ['a', 'b']
    """
    import numpy as np
    from SALib.analyze import sobol as salib_sobol

    kinds = dict(factors) if isinstance(factors, dict) else dict.fromkeys(factors, "numeric")
    factors = list(kinds)
    size = len(factors) + 2
    y = frame.get_column(output).cast(pl.Float64).fill_null(float("nan")).to_numpy()
    blocks = y.reshape(-1, size)
    complete = blocks[np.isfinite(blocks).all(axis=1)]
    dropped = blocks.shape[0] - complete.shape[0]
    note = f"{dropped} block(s) with a failed spec left out" if dropped else None
    if complete.shape[0] < 2 or np.ptp(complete) == 0:
        why = "fewer than 2 complete blocks" if complete.shape[0] < 2 else "the output is constant"
        return _empty(output, "sobol", factors, complete.size, why)
    problem = {"num_vars": len(factors), "names": factors, "bounds": [[0.0, 1.0]] * len(factors)}
    indices = salib_sobol.analyze(
        problem, complete.ravel(), calc_second_order=False, num_resamples=num_resamples, seed=seed
    )
    table = pl.DataFrame(
        {
            "input": factors,
            "kind": [kinds[n] for n in factors],
            "importance": indices["ST"],
            "s1": indices["S1"],
            "s1_conf": indices["S1_conf"],
            "st": indices["ST"],
            "st_conf": indices["ST_conf"],
        }
    )
    table = table.sort("importance", descending=True, nulls_last=True)
    return OutputSensitivity(output, "sobol", table, complete.size, note=note)


def _empty(
    output: str, method: Any, factors: Sequence[str], rows: int, why: str
) -> OutputSensitivity:
    table = pl.DataFrame(
        {"input": list(factors), "importance": [None] * len(factors)},
        schema={"input": pl.String, "importance": pl.Float64},
    )
    return OutputSensitivity(output, method, table, rows, note=f"not computed: {why}")


def _regression_of(frame: pl.DataFrame, factors: dict[str, str], output: str) -> OutputSensitivity:
    rows = frame.filter(pl.col(output).is_not_null() & pl.col(output).is_finite())
    try:
        table, r2 = _fit_table(rows, factors, output)
    except SensitivityError as err:
        return _empty(output, "regression", list(factors), rows.height, str(err))
    return OutputSensitivity(output, "regression", table, rows.height, r2=r2)


def regression(
    frame: pl.DataFrame,
    inputs: Sequence[str],
    output: str,
    *,
    categorical: Sequence[str] = (),
) -> pl.DataFrame:
    """The regression table of ``output`` on ``inputs`` in ``frame``, most influential first.

    Columns ``input``, ``kind``, ``importance``, ``src``, ``srrc``, ``rank_corr``
    (see ``ASSUMPTIONS["regression"]``); string and bool columns, and those
    named in ``categorical``, are indicator columns.

    >>> import numpy as np
    >>> x = np.random.default_rng(0).random((200, 2))
    >>> frame = pl.DataFrame({"a": x[:, 0], "b": x[:, 1], "y": 5 * x[:, 0] + x[:, 1]})
    >>> regression(frame, ["a", "b"], "y").get_column("input").to_list()
    ['a', 'b']
    """
    factors = {
        name: "categorical"
        if name in categorical or not frame.schema[name].is_numeric()
        else "numeric"
        for name in inputs
    }
    return _fit_table(frame.drop_nulls(output), factors, output)[0]


def _fit_table(
    frame: pl.DataFrame, factors: dict[str, str], output: str
) -> tuple[pl.DataFrame, float]:
    """The regression table and the R2 of the fit (values or ranks) the importance comes from."""
    import numpy as np

    y = frame.get_column(output).cast(pl.Float64).to_numpy()
    if y.size < 3 or np.ptp(y) == 0:
        raise SensitivityError("the output is constant" if y.size >= 3 else "fewer than 3 rows")
    fits = {basis: _fit(frame, factors, y, ranks=basis == "ranks") for basis in ("values", "ranks")}
    best = max(fits, key=lambda b: fits[b].r2)
    names = list(factors)
    table = pl.DataFrame(
        {
            "input": names,
            "kind": [factors[n] for n in names],
            "importance": [fits[best].drop[n] for n in names],
            "src": [fits["values"].coef.get(n) for n in names],
            "srrc": [fits["ranks"].coef.get(n) for n in names],
            "rank_corr": [_rank_corr(frame.get_column(n), y, factors[n]) for n in names],
        },
        schema_overrides={"src": pl.Float64, "srrc": pl.Float64},
    ).with_columns(pl.lit(best).alias("basis"))
    table = table.sort("importance", descending=True, nulls_last=True)
    return table, fits[best].r2


@dataclass(frozen=True)
class _Fit:
    r2: float
    drop: dict[str, float]  # R2 lost without the input
    coef: dict[str, float]  # standardized coefficient of a numeric input


def _fit(frame: pl.DataFrame, factors: dict[str, str], y: np.ndarray, *, ranks: bool) -> _Fit:
    import numpy as np
    from scipy.stats import rankdata

    target = rankdata(y) if ranks else y
    target = (target - target.mean()) / target.std()
    groups = {n: _design_columns(frame.get_column(n), kind, ranks) for n, kind in factors.items()}
    columns = [c for cols in groups.values() for c in cols]
    if not columns:
        raise SensitivityError("no input varies among the rows that have this output")
    full = np.column_stack(columns)
    if full.shape[0] <= full.shape[1] + 1:
        raise SensitivityError(f"{full.shape[0]} rows for {full.shape[1]} model columns")
    r2, beta = _ols(full, target)
    drop, coef, start = {}, {}, 0
    for name, cols in groups.items():
        others = np.delete(full, range(start, start + len(cols)), axis=1)
        drop[name] = max(0.0, r2 - (_ols(others, target)[0] if others.shape[1] else 0.0))
        if factors[name] == "numeric":
            coef[name] = float(beta[start + 1])
        start += len(cols)
    return _Fit(r2, drop, coef)


def _ols(x: np.ndarray, y: np.ndarray) -> tuple[float, np.ndarray]:
    """R2 and coefficients (intercept first) of a least-squares fit of ``y`` on ``x``."""
    import numpy as np

    design = np.column_stack([np.ones(len(y)), x])
    beta, *_ = np.linalg.lstsq(design, y, rcond=None)
    residual = y - design @ beta
    return 1.0 - float(residual @ residual) / float(((y - y.mean()) ** 2).sum()), beta


def _design_columns(column: pl.Series, kind: str, ranks: bool) -> list[np.ndarray]:
    """Model columns of one input: a standardized number (and a missing flag), or indicators."""
    from scipy.stats import rankdata

    if kind == "categorical":
        values = column.cast(pl.String).fill_null("None")
        levels = values.unique(maintain_order=True).sort().to_list()
        return [(values == level).cast(pl.Float64).to_numpy() for level in levels[1:]]
    x = column.to_physical().cast(pl.Float64)
    missing = x.is_null().to_numpy()
    x = x.fill_null(x.mean()).to_numpy()
    x = rankdata(x) if ranks else x
    cols = [(x - x.mean()) / (x.std() or 1.0)]
    return [*cols, missing.astype(float)] if missing.any() and not missing.all() else cols


def _rank_corr(column: pl.Series, y: np.ndarray, kind: str) -> float | None:
    """Spearman's rho (numeric input) or the correlation ratio of y's ranks over its levels."""
    import numpy as np
    from scipy.stats import rankdata, spearmanr

    r = rankdata(y)
    if kind == "numeric":
        x = column.to_physical().cast(pl.Float64).to_numpy()
        keep = np.isfinite(x)
        if keep.sum() < 3 or np.ptp(x[keep]) == 0:
            return None
        return float(spearmanr(x[keep], r[keep]).statistic)
    levels = column.cast(pl.String).fill_null("None").to_numpy()
    between = sum(
        (levels == lv).sum() * (r[levels == lv].mean() - r.mean()) ** 2 for lv in np.unique(levels)
    )
    return float(np.sqrt(between / ((r - r.mean()) ** 2).sum()))
