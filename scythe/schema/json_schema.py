"""The JSON Schema of an experiment's input and output specs (``experiment_io_spec.yml``)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

from scythe.base import ExperimentInputSpec, ExperimentOutputSpec


def experiment_io_spec(
    input_spec: type[ExperimentInputSpec], output_spec: type[ExperimentOutputSpec]
) -> dict[str, Any]:
    """JSON Schema of the input/output pair, with field descriptions.

    >>> class In(ExperimentInputSpec):
    ...     r_value: float
    >>> class Out(ExperimentOutputSpec):
    ...     heating: float
    >>> sorted(experiment_io_spec(In, Out)["properties"])
    ['input', 'output']
    """

    def schema_of(cls: type[BaseModel]) -> dict[str, Any]:
        return cls.model_json_schema(mode="serialization")

    return {
        "title": f"{input_spec.__name__} -> {output_spec.__name__}",
        "type": "object",
        "properties": {"input": schema_of(input_spec), "output": schema_of(output_spec)},
        "required": ["input", "output"],
    }
