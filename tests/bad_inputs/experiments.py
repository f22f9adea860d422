"""Experiments the bad-input cases run (a module, so worker processes could import them)."""

from __future__ import annotations

from typing import Any

import pandera.polars as pa
import polars as pl
from pandera.typing.polars import DataFrame
from pydantic import Field

from scythe import ExperimentInputSpec, ExperimentOutputSpec, ExperimentRegistry
from scythe.errors import NonRetryableError


class Case(ExperimentInputSpec):
    """What the function should return wrongly, and an input with constraints."""

    x: float = Field(default=1.0, ge=0)
    y: float = 0.0
    mode: str = "ok"
    meta: dict[str, Any] = Field(default_factory=dict)


class Steps(pa.DataFrameModel):
    step: int
    value: float


class CaseOut(ExperimentOutputSpec):
    n: int
    label: str
    steps: DataFrame[Steps]


def _output(spec: Case) -> Any:
    steps = pl.DataFrame({"step": [0, 1], "value": [spec.x, spec.x * 2]})
    out = CaseOut(n=1, label="ok", steps=steps)
    # assignments after construction are not validated by pydantic: the leaf must catch them
    match spec.mode:
        case "float_in_int":
            out.n = 2.7  # type: ignore[assignment]
        case "bool_in_int":
            out.n = True
        case "int_in_str":
            out.label = 5  # type: ignore[assignment]
        case "frame_float_in_int":
            out.steps = pl.DataFrame({"step": [1.7, 2.2], "value": [0.0, 1.0]})  # type: ignore[assignment]
        case "frame_str_in_float":
            out.steps = pl.DataFrame({"step": [0], "value": ["zero"]})  # type: ignore[assignment]
        case "frame_missing_column":
            out.steps = pl.DataFrame({"step": [0]})  # type: ignore[assignment]
        case "frame_too_long":
            n = 5_000
            out.steps = pl.DataFrame({"step": list(range(n)), "value": [0.0] * n})  # type: ignore[assignment]
        case "wrong_type":
            return {"n": 1}
        case "non_retryable":
            raise NonRetryableError(f"spec {spec.sort_index}: the mesh cannot be built")
        case "raise":
            raise ValueError(f"spec {spec.sort_index} asked to fail")
    return out


@ExperimentRegistry.Register(name="bad_inputs_case", retries=2)
def bad_inputs_case(spec: Case) -> CaseOut:
    return _output(spec)
