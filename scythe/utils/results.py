"""scythe-engine 1.x's helpers for result frames (pandas), under its import path.

>>> make_onerow_multiindex_from_dict({"a": 1, "b": "x"}, n_rows=2).tolist()
[(1, 'x'), (1, 'x')]
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd


def serialize_df_dict(dfs: dict[str, pd.DataFrame]) -> dict[str, dict[str, Any]]:
    """Each frame as pandas' ``to_dict(orient="tight")``."""
    return {key: frame.to_dict(orient="tight") for key, frame in dfs.items()}


def transpose_dataframe_dict(
    dataframe_results: list[dict[str, pd.DataFrame]],
) -> dict[str, pd.DataFrame]:
    """One frame per key: the frames of that key in every result, concatenated in order."""
    keys = list(dict.fromkeys(key for result in dataframe_results for key in result))
    return {key: pd.concat([r[key] for r in dataframe_results if key in r], axis=0) for key in keys}


def make_onerow_multiindex_from_dict(d: dict[str, Any], n_rows: int = 1) -> pd.MultiIndex:
    """``n_rows`` copies of one row of index values, named by ``d``'s keys."""
    return pd.MultiIndex.from_tuples([tuple(d.values())] * n_rows, names=list(d.keys()))


def save_and_upload_parquets(
    collected_dfs: dict[str, pd.DataFrame],
    s3: Any,
    bucket: str,
    output_key_constructor: Callable[[str], str],
    save_errors: bool = False,
) -> dict[str, str]:
    """Write each frame as Parquet to ``s3://bucket/<output_key_constructor(key)>``; return the URIs.

    Keys containing "error" are skipped unless ``save_errors``. Runs do not
    need this: their outputs go to Delta tables.
    """
    uris = {}
    with tempfile.TemporaryDirectory() as tmp:
        for key, frame in collected_dfs.items():
            if "error" in key.lower() and not save_errors:
                continue
            path = Path(tmp) / f"{key}.parquet"
            frame.to_parquet(path)
            output_key = output_key_constructor(key)
            s3.upload_file(Bucket=bucket, Key=output_key, Filename=str(path))
            uris[key] = f"s3://{bucket}/{output_key}"
    return uris


__all__ = [
    "make_onerow_multiindex_from_dict",
    "save_and_upload_parquets",
    "serialize_df_dict",
    "transpose_dataframe_dict",
]
