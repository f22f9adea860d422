"""Text and Markdown renderings of a comparison (for a CI log and a pull request comment)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import polars as pl

if TYPE_CHECKING:
    from analysis.comparison import Comparison

_COLUMNS = ("output", "count", "mean |diff|", "max |diff|", "mean rel", "max rel", "outside")


def _number(value: object) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.6g}"
    return str(value)


def _summary_rows(comparison: Comparison) -> list[list[str]]:
    return [[_number(v) for v in row] for row in comparison.summary.iter_rows()]


def _spec_lines(comparison: Comparison, limit: int) -> list[str]:
    """One line per spec and output outside tolerance (at most ``limit``)."""
    lines = []
    for row in comparison.outside.head(limit).iter_rows(named=True):
        inputs = ", ".join(f"{k}={row[k]!r}" for k in comparison.keys)
        lines.append(
            f"sort_index {row['sort_index_a']} (a) / {row['sort_index_b']} (b) [{inputs}]: "
            f"{row['output']} {_number(row['value_a'])} -> {_number(row['value_b'])} "
            f"(|diff| {_number(row['abs_diff'])}, rel {_number(row['rel_diff'])})"
        )
    if comparison.outside.height > limit:
        lines.append(f"... and {comparison.outside.height - limit} more")
    return lines


def _unmatched_lines(frame: pl.DataFrame, side: str, other: str, limit: int) -> list[str]:
    if not frame.height:
        return []
    shown = ", ".join(
        f"{row['sort_index']} ({row['in_other']} in {other})"
        for row in frame.head(limit).iter_rows(named=True)
    )
    more = f" and {frame.height - limit} more" if frame.height > limit else ""
    return [f"{frame.height} spec(s) only in {side}: sort_index {shown}{more}"]


def _unit(comparison: Comparison) -> str:
    return "rows" if "sort_subindex" in comparison.keys else "specs"


def verdict(comparison: Comparison) -> str:
    """``OK: ...`` or ``DIFFERENT: ...`` with what differs."""
    tolerance = f"rtol={comparison.rtol:g}, atol={comparison.atol:g}"
    if comparison.ok:
        return f"OK: {comparison.matched} {_unit(comparison)} match within {tolerance}"
    problems = []
    if comparison.outside.height:
        specs = comparison.outside.select("sort_index_a").n_unique()
        problems.append(f"{specs} spec(s) outside {tolerance}")
    for frame, side in ((comparison.only_in_a, "a"), (comparison.only_in_b, "b")):
        if frame.height:
            problems.append(f"{frame.height} spec(s) only in {side}")
    return "DIFFERENT: " + "; ".join(problems)


def comparison_text(comparison: Comparison, *, limit: int) -> str:
    rows = [list(_COLUMNS), *_summary_rows(comparison)]
    widths = [max(len(row[i]) for row in rows) for i in range(len(_COLUMNS))]
    table = [
        "  ".join(cell.ljust(w) if i == 0 else cell.rjust(w) for i, (cell, w) in
                  enumerate(zip(row, widths, strict=True)))
        for row in rows
    ]  # fmt: skip
    lines = [
        f"compare {comparison.table}: a = {comparison.run_a}",
        f"{' ' * (len(comparison.table) + 9)}b = {comparison.run_b}",
        f"{comparison.matched} {_unit(comparison)} matched on {', '.join(comparison.keys)}",
        "",
        *table,
    ]
    details = _spec_lines(comparison, limit)
    if details:
        lines += ["", "outside tolerance:", *(f"  {line}" for line in details)]
    unmatched = [
        *_unmatched_lines(comparison.only_in_a, "a", "b", limit),
        *_unmatched_lines(comparison.only_in_b, "b", "a", limit),
    ]
    return "\n".join([*lines, *(["", *unmatched] if unmatched else []), "", verdict(comparison)])


def comparison_markdown(comparison: Comparison, *, limit: int) -> str:
    mark = "✅" if comparison.ok else "❌"
    lines = [
        f"### {mark} Run comparison: `{comparison.table}`",
        "",
        f"- **a**: `{comparison.run_a}`",
        f"- **b**: `{comparison.run_b}`",
        f"- {comparison.matched} {_unit(comparison)} matched on "
        + ", ".join(f"`{k}`" for k in comparison.keys),
        "",
        "| " + " | ".join(_COLUMNS) + " |",
        "| " + " | ".join(["---"] + ["---:"] * (len(_COLUMNS) - 1)) + " |",
        *("| " + " | ".join(row) + " |" for row in _summary_rows(comparison)),
    ]
    details = _spec_lines(comparison, limit)
    if details:
        lines += ["", "**Outside tolerance**", "", *(f"- {line}" for line in details)]
    unmatched = [
        *_unmatched_lines(comparison.only_in_a, "a", "b", limit),
        *_unmatched_lines(comparison.only_in_b, "b", "a", limit),
    ]
    lines += ["", *(f"- {line}" for line in unmatched)] if unmatched else []
    return "\n".join([*lines, "", f"**{verdict(comparison)}**"])
