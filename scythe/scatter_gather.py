"""Pure partition planning for the recursive scatter/gather tree.

A node holds the specs at positions ``range(offset, n, stride)`` of a run's
``n`` specs. Children split their parent grid-stride: child ``k`` of a node
takes every ``factor``-th of its parent's specs starting at the ``k``-th, which
is again a range (``parent[k::factor]``). A terminal node at path offsets
``(o1, ..., od)`` therefore holds exactly the positions ``i`` with
``i ≡ o1 + f·o2 + ... + f^(d-1)·od (mod f^d)``.

The node payloads live here too: what passes between tree nodes
(:class:`ScatterGatherInput` down, :class:`ScatterGatherResult` up) is
references and counts only, a few hundred bytes whatever the number of specs.

Nothing here does I/O or knows an engine: the engines run the plan.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from pydantic import BaseModel, ConfigDict, Field, model_validator

from scythe.errors import RecursionMapError

MAX_DEPTH_LIMIT = 10


class RecursionMap(BaseModel):
    """How a run's specs are split into a tree of nodes.

    ``factor`` is the branching factor, ``max_depth`` the deepest level a node
    may sit at (0 means: one terminal node holds every spec; the default, 10, as
    in scythe-engine 1.x, lets the tree go as deep as ``factor`` needs), and
    ``path`` the child offsets from the root to the node this map describes
    (empty at the root).

    >>> RecursionMap(factor=10, max_depth=2)
    RecursionMap(factor=10, max_depth=2, path=())
    """

    model_config = ConfigDict(frozen=True)

    factor: int = Field(10, ge=1, description="Branching factor of every fan node.")
    max_depth: int = Field(
        MAX_DEPTH_LIMIT,
        ge=0,
        le=MAX_DEPTH_LIMIT,
        description="Deepest level of the tree (root = 0).",
    )
    path: tuple[int, ...] = Field(
        (), description="Child offsets from the root to this node; empty at the root."
    )

    @model_validator(mode="after")
    def _check_path(self) -> RecursionMap:
        if len(self.path) > self.max_depth:
            raise ValueError(f"path {list(self.path)} is deeper than max_depth={self.max_depth}")
        for level, offset in enumerate(self.path):
            if not 0 <= offset < self.factor:
                raise ValueError(
                    f"path offset {offset} at level {level} is outside 0..{self.factor - 1}"
                )
        return self

    @property
    def depth(self) -> int:
        """Level of the node this map describes (root = 0)."""
        return len(self.path)

    def child(self, offset: int) -> RecursionMap:
        """The map of this node's child at ``offset``."""
        return self.model_copy(update={"path": (*self.path, offset)})


@dataclass(frozen=True)
class TreeNode:
    """One node of the plan: its path from the root and the spec positions it holds."""

    path: tuple[int, ...]
    positions: range

    @property
    def depth(self) -> int:
        return len(self.path)

    @property
    def size(self) -> int:
        return len(self.positions)

    @property
    def name(self) -> str:
        """A stable, path-derived name: ``root``, ``0``, ``0-3``, ..."""
        return "-".join(map(str, self.path)) or "root"


def node_positions(n_specs: int, recursion_map: RecursionMap) -> range:
    """Spec positions held by the node at ``recursion_map.path`` in a run of ``n_specs``.

    >>> node_positions(10, RecursionMap(factor=3, max_depth=2, path=(1,)))
    range(1, 10, 3)
    """
    if n_specs < 0:
        raise RecursionMapError(f"n_specs must be >= 0, got {n_specs}")
    positions = range(n_specs)
    for level, offset in enumerate(recursion_map.path):
        if len(positions) <= recursion_map.factor:
            raise RecursionMapError(
                f"path {list(recursion_map.path)} goes below a terminal node at level {level} "
                f"({len(positions)} specs <= factor {recursion_map.factor})"
            )
        positions = positions[offset :: recursion_map.factor]
    return positions


def is_terminal(size: int, depth: int, recursion_map: RecursionMap) -> bool:
    """Whether a node of ``size`` specs at ``depth`` runs its leaves instead of fanning out."""
    return (
        recursion_map.max_depth == 0
        or depth >= recursion_map.max_depth
        or size <= recursion_map.factor
    )


def plan_children(node: TreeNode, recursion_map: RecursionMap) -> list[TreeNode]:
    """Children of ``node``: empty for a terminal node, else ``factor`` grid-stride slices.

    >>> root = TreeNode(path=(), positions=range(7))
    >>> [c.positions for c in plan_children(root, RecursionMap(factor=3, max_depth=1))]
    [range(0, 7, 3), range(1, 7, 3), range(2, 7, 3)]
    """
    if is_terminal(node.size, node.depth, recursion_map):
        return []
    f = recursion_map.factor
    return [TreeNode(path=(*node.path, k), positions=node.positions[k::f]) for k in range(f)]


def root_node(n_specs: int) -> TreeNode:
    """The root of a run of ``n_specs`` specs."""
    return TreeNode(path=(), positions=range(n_specs))


def node_for(n_specs: int, recursion_map: RecursionMap) -> TreeNode:
    """The node that ``recursion_map.path`` points at."""
    return TreeNode(path=recursion_map.path, positions=node_positions(n_specs, recursion_map))


def iter_terminal_nodes(n_specs: int, recursion_map: RecursionMap) -> Iterator[TreeNode]:
    """Every terminal node of the tree, depth first, in path order."""
    stack = [root_node(n_specs)]
    while stack:
        node = stack.pop()
        children = plan_children(node, recursion_map)
        if not children:
            yield node
        else:
            stack.extend(reversed(children))


def congruence_class(path: tuple[int, ...], factor: int) -> tuple[int, int]:
    """``(residue, modulus)`` of the positions a node at ``path`` holds.

    >>> congruence_class((1, 2), 3)
    (7, 9)
    """
    residue = sum(offset * factor**level for level, offset in enumerate(path))
    return residue, factor ** len(path)


# --------------------------------------------------------------------------- node payloads


class ScatterGatherInput(BaseModel):
    """The input of one tree node: references only, a few hundred bytes for any run size.

    >>> root = ScatterGatherInput(storage_uri="/data", run_id="exp/v1.0.0/t", experiment="exp",
    ...     experiment_ref="mod:exp", n_specs=7, recursion_map=RecursionMap(factor=3, max_depth=1))
    >>> root.child(1).node
    TreeNode(path=(1,), positions=range(1, 7, 3))
    """

    storage_uri: str = Field(description="Root of the store holding the run")
    run_id: str = Field(description="<experiment>/<vM.m.p>/<time>")
    experiment: str = Field(description="Registered name of the experiment (the leaf task name)")
    experiment_ref: str = Field(description="module:qualname to import the experiment from")
    n_specs: int = Field(ge=0)
    recursion_map: RecursionMap
    round: int = Field(
        default=0, ge=0, description="0: the run's tree; n: the tree of its n-th retry"
    )

    @property
    def node(self) -> TreeNode:
        return node_for(self.n_specs, self.recursion_map)

    def child(self, offset: int) -> ScatterGatherInput:
        return self.model_copy(update={"recursion_map": self.recursion_map.child(offset)})

    def at(self, path: tuple[int, ...]) -> ScatterGatherInput:
        """The input of the node at ``path`` of the same run."""
        return self.model_copy(
            update={"recursion_map": self.recursion_map.model_copy(update={"path": path})}
        )

    def terminal_inputs(self) -> list[ScatterGatherInput]:
        """The inputs of every terminal node of this run's tree, in path order."""
        return [
            self.at(node.path) for node in iter_terminal_nodes(self.n_specs, self.recursion_map)
        ]


class ScatterGatherResult(BaseModel):
    """The output of one tree node: counts and the key of its node manifest."""

    node: str
    specs: int
    done: int
    failed: int
    manifest_key: str


@dataclass(frozen=True)
class RunSummary:
    """How a run ended: counts per outcome and the status written to ``manifest.yml``."""

    run_id: str
    status: str
    specs: int
    done: int
    failed: int
    missing: int
    message: str

    def __str__(self) -> str:
        return self.message
