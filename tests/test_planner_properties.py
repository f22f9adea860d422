"""Grid-stride partitioning (DESIGN.md §5), pinned down with hypothesis."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from scythe.errors import RecursionMapError
from scythe.scatter_gather import (
    RecursionMap,
    TreeNode,
    congruence_class,
    is_terminal,
    iter_terminal_nodes,
    node_for,
    plan_children,
    root_node,
)

# Trees stay small enough to enumerate: f**max_depth is capped by the strategy.
shapes = st.tuples(
    st.integers(min_value=0, max_value=3000),
    st.integers(min_value=1, max_value=12),
    st.integers(min_value=0, max_value=4),
).filter(lambda t: t[1] ** t[2] <= 5000)


@given(shapes)
def test_every_index_lands_in_exactly_one_terminal_node(shape):
    n, factor, max_depth = shape
    rmap = RecursionMap(factor=factor, max_depth=max_depth)
    seen = [p for node in iter_terminal_nodes(n, rmap) for p in node.positions]
    assert sorted(seen) == list(range(n))


@given(shapes)
def test_terminal_nodes_respect_depth_and_count_bounds(shape):
    n, factor, max_depth = shape
    rmap = RecursionMap(factor=factor, max_depth=max_depth)
    nodes = list(iter_terminal_nodes(n, rmap))
    assert all(node.depth <= max_depth for node in nodes)
    assert len(nodes) <= factor**max_depth
    if max_depth == 0 or n <= factor:
        assert [node.path for node in nodes] == [()]


@given(shapes)
def test_sibling_sizes_differ_by_at_most_one(shape):
    n, factor, max_depth = shape
    rmap = RecursionMap(factor=factor, max_depth=max_depth)
    stack = [root_node(n)]
    while stack:
        node = stack.pop()
        children = plan_children(node, rmap)
        if children:
            sizes = [c.size for c in children]
            assert len(children) == factor
            assert max(sizes) - min(sizes) <= 1
            assert sum(sizes) == node.size
            stack.extend(children)


@given(shapes)
def test_terminal_node_holds_its_congruence_class(shape):
    n, factor, max_depth = shape
    rmap = RecursionMap(factor=factor, max_depth=max_depth)
    for node in iter_terminal_nodes(n, rmap):
        residue, modulus = congruence_class(node.path, factor)
        assert list(node.positions) == list(range(residue, n, modulus))
        assert all(i % modulus == residue for i in node.positions)


@given(shapes)
def test_plan_is_deterministic_and_addressable_by_path(shape):
    n, factor, max_depth = shape
    rmap = RecursionMap(factor=factor, max_depth=max_depth)
    first = list(iter_terminal_nodes(n, rmap))
    assert first == list(iter_terminal_nodes(n, rmap))
    # A node rebuilt from its path alone (what an engine receives) holds the same specs.
    for node in first:
        again = node_for(n, RecursionMap(factor=factor, max_depth=max_depth, path=node.path))
        assert again == node


@given(shapes)
def test_gathering_terminal_nodes_restores_sort_order(shape):
    n, factor, max_depth = shape
    rmap = RecursionMap(factor=factor, max_depth=max_depth)
    gathered = sorted(p for node in iter_terminal_nodes(n, rmap) for p in node.positions)
    assert gathered == list(range(n))


@settings(max_examples=50)
@given(st.integers(1, 12), st.integers(0, 10))
def test_zero_and_one_spec_are_a_single_terminal_root(factor, max_depth):
    rmap = RecursionMap(factor=factor, max_depth=max_depth)
    assert [(nd.path, list(nd.positions)) for nd in iter_terminal_nodes(0, rmap)] == [((), [])]
    assert [(nd.path, list(nd.positions)) for nd in iter_terminal_nodes(1, rmap)] == [((), [0])]


def test_worked_example_from_the_design():
    rmap = RecursionMap(factor=3, max_depth=2)
    nodes = {node.path: list(node.positions) for node in iter_terminal_nodes(20, rmap)}
    # Root splits 20 -> 7/7/6; each child (> 3 specs) splits again.
    assert nodes[(0, 0)] == [0, 9, 18]
    assert nodes[(1, 2)] == [7, 16]
    assert nodes[(2, 1)] == [5, 14]
    assert len(nodes) == 9


def test_terminal_rule():
    rmap = RecursionMap(factor=4, max_depth=2)
    assert is_terminal(4, 0, rmap)
    assert not is_terminal(5, 0, rmap)
    assert is_terminal(1000, 2, rmap)
    assert is_terminal(1000, 0, RecursionMap(factor=4, max_depth=0))


@pytest.mark.parametrize(
    "kwargs",
    [
        {"factor": 0},
        {"max_depth": 11},
        {"max_depth": -1},
        {"factor": 3, "max_depth": 1, "path": (3,)},
        {"factor": 3, "max_depth": 1, "path": (0, 0)},
    ],
)
def test_out_of_range_recursion_maps_are_rejected(kwargs):
    with pytest.raises(ValidationError):
        RecursionMap(**kwargs)


def test_a_path_below_a_terminal_node_is_an_error():
    rmap = RecursionMap(factor=3, max_depth=2, path=(0, 1))
    with pytest.raises(RecursionMapError, match="terminal"):
        node_for(3, rmap)


def test_tree_node_names_follow_paths():
    assert TreeNode(path=(), positions=range(3)).name == "root"
    assert TreeNode(path=(2, 0), positions=range(3)).name == "2-0"


@settings(max_examples=80, deadline=None)
@given(shapes)
def test_a_nodes_batch_rows_are_its_grid_stride_positions(shape):
    # Allocation cuts each batch out of the specs frame as a strided slice: the same rows,
    # in the same order, as gathering the node's positions one by one.
    import polars as pl

    from scythe.allocation import _rows

    n, factor, max_depth = shape
    frame = pl.DataFrame({"sort_index": range(n), "x": [i * 0.5 for i in range(n)]})
    for node in iter_terminal_nodes(n, RecursionMap(factor=factor, max_depth=max_depth)):
        rows = _rows(frame, node.positions)
        assert rows.get_column("sort_index").to_list() == list(node.positions)
        assert rows.schema == frame.schema
