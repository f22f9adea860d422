"""What a user would write without Scythe: the same spec objects mapped over a process pool,
results written to Parquet files.

The functions compute the same values as the experiments in
``bench_experiments`` and ``bench_frames``, from the same ``Point`` specs, with
no validation, no Delta tables and no pandera: a raw process pool.
"""

from __future__ import annotations

import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import polars as pl


def _chunks(items: list, workers: int) -> list[list]:
    size = max(1, len(items) // (workers * 8))
    return [items[i : i + size] for i in range(0, len(items), size)]


def pool_map(fn, items: list, workers: int) -> list:
    """``fn`` over chunks of ``items`` in a process pool, results concatenated in order."""
    with ProcessPoolExecutor(max_workers=workers) as pool:
        return [y for part in pool.map(fn, _chunks(items, workers)) for y in part]


def trivial_chunk(points: list) -> list[float]:
    return [p.x * 2 + p.k for p in points]


def cpu_chunk(points: list) -> list[float]:
    out = []
    for p in points:
        x = p.x
        deadline = time.process_time() + 0.020
        acc = x
        while time.process_time() < deadline:
            for _ in range(200):
                acc = (acc * 1.000001 + 1.0) % 1000.0
        out.append(acc)
    return out


def frames_chunk(points: list) -> list[tuple[float, pl.DataFrame]]:
    """Per point: the peak and a 24-row frame of (sort_index, sort_subindex, hour, load)."""
    out = []
    for p in points:
        i, x, k = p.sort_index, p.x, p.k
        load = [abs(x) + h * (k + 1) for h in range(24)]
        frame = pl.DataFrame(
            {
                "sort_index": [i] * 24,
                "sort_subindex": list(range(24)),
                "hour": list(range(24)),
                "load": load,
            }
        )
        out.append((max(load), frame))
    return out


def files_chunk(args: list[tuple]) -> list[tuple[float, str]]:
    """Per point: a ~200-byte file written straight to its final place, and its path."""
    out = []
    for p, root in args:
        i, x, k = p.sort_index, p.x, p.k
        folder = Path(root) / "results" / "report" / str(i)
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / "report.txt"
        path.write_text(f"x={x}\nk={k}\n" + "#" * 180)
        out.append((x * 2 + k, str(path)))
    return out
