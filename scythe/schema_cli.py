"""``scythe schema export`` and ``scythe schema check``: experiments' schemas locked in a file.

``export`` writes the lock entry (:mod:`scythe.schema.lock`) of every
experiment registered by some modules; ``check`` compiles them again and
compares with the lock file, classifying each change (:mod:`scythe.schema.diff`).
"""

from __future__ import annotations

import importlib
import os
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Annotated, Any

import typer

from scythe.errors import ExperimentNotFoundError, ScytheError

LOCK_FILE = "scythe.schema.json"

schema_app = typer.Typer(
    name="schema",
    help="Lock experiments' compiled schemas in a file, and check the code against it.",
    no_args_is_help=True,
)

_TARGETS = Annotated[
    list[str],
    typer.Argument(
        metavar="MODULE[:EXPERIMENT]...",
        help="A module (every experiment registered in it) or module:name, where name is the "
        "experiment's attribute in the module or its registered name.",
    ),
]


def _module(name: str) -> Any:
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())  # the working directory is importable, as with python -m
    try:
        return importlib.import_module(name)
    except ImportError as exc:
        raise ExperimentNotFoundError(
            f"cannot import the module {name!r}: {exc}; run from the directory that holds it "
            "or install its package"
        ) from exc


def load_targets(targets: Iterable[str]) -> dict[str, Any]:
    """The experiments that ``module`` or ``module:name`` targets name, by registered name.

    A bare module gives every experiment registered by it or its (imported)
    submodules, plus those it holds as attributes.

    >>> sorted(load_targets(["examples.building_energy.experiment"]))
    ['building_energy']
    """
    from scythe.registry import ExperimentRegistry, ExperimentRunnable

    found: dict[str, ExperimentRunnable] = {}
    for target in targets:
        module_name, _, attr = target.partition(":")
        module = _module(module_name)
        if attr:
            obj = getattr(module, attr, None)
            if not isinstance(obj, ExperimentRunnable):
                obj = ExperimentRegistry.get(attr)  # by registered name; raises naming them all
            found[obj.name] = obj
            continue
        matches = [
            e
            for e in ExperimentRegistry.experiments()
            if e.__module__ == module_name or e.__module__.startswith(module_name + ".")
        ]
        matches += [v for v in vars(module).values() if isinstance(v, ExperimentRunnable)]
        if not matches:
            raise ExperimentNotFoundError(
                f"module {module_name!r} registers no experiment; pass module:name or register "
                "one with @ExperimentRegistry.Register()"
            )
        found.update((e.name, e) for e in matches)
    return dict(sorted(found.items()))


def export_lock(targets: Iterable[str]) -> str:
    """The lock file's text for the experiments ``targets`` name (see ``scythe schema export``).

    >>> import json
    >>> text = export_lock(["examples.building_energy.experiment:simulate_energy"])
    >>> json.loads(text)["building_energy"]["function"]
    'examples.building_energy.experiment:simulate_energy'
    """
    from scythe.schema.lock import dump_lock, experiment_entry

    entries = {
        name: experiment_entry(e.input_spec, e.output_spec, function=e.fn)
        for name, e in load_targets(targets).items()
    }
    return dump_lock(entries)


def _fail(command: str, exc: Exception) -> typer.Exit:
    typer.echo(f"scythe schema {command}: {exc}", err=True)
    return typer.Exit(2)


@schema_app.command("export")
def export(
    targets: _TARGETS,
    output: Annotated[
        Path, typer.Option("--output", "-o", help="The lock file to write ('-': stdout).")
    ] = Path(LOCK_FILE),
) -> None:
    """Write the compiled schema of every experiment the targets name to a lock file."""
    try:
        text = export_lock(targets)
    except ScytheError as exc:
        raise _fail("export", exc) from exc
    if str(output) == "-":
        typer.echo(text, nl=False)
        return
    output.write_text(text, encoding="utf-8")
    typer.echo(f"wrote {output} ({text.count(chr(10))} lines)")


@schema_app.command("check")
def check(
    targets: _TARGETS,
    lock: Annotated[
        Path, typer.Option("--lock", "-l", help="The lock file to compare with.")
    ] = Path(LOCK_FILE),
) -> None:
    """Compare the experiments' compiled schemas with a lock file: exit 0 if equal, 1 if not.

    Each change is classified: breaking (needs a major version), additive (needs a
    minor version) or cosmetic. Run `scythe schema export` to update the lock.
    """
    from scythe.schema.diff import diff_locks, format_changes, required_bump
    from scythe.schema.lock import load_lock

    try:
        if not lock.is_file():
            raise ExperimentNotFoundError(
                f"no lock file {lock}: write it with `scythe schema export`"
            )
        locked = load_lock(lock.read_text(encoding="utf-8"), source=str(lock))
        current = load_lock(export_lock(targets), source="the code")
    except ScytheError as exc:
        raise _fail("check", exc) from exc
    in_scope = {n: e for n, e in locked.items() if n in current or _in_modules(e, targets)}
    changes = diff_locks(in_scope, current)
    if not changes:
        typer.echo(f"{lock}: {len(current)} experiment(s) match the code")
        return
    bump = required_bump(changes)
    typer.echo(f"{lock} does not match the code ({len(changes)} change(s), needs {bump}):")
    typer.echo(format_changes(changes))
    typer.echo(
        "update the lock with: scythe schema export " + " ".join(targets) + f" --output {lock}"
    )
    raise typer.Exit(1)


def _in_modules(entry: dict[str, Any], targets: Iterable[str]) -> bool:
    """Whether a locked experiment's function lives in a module the targets name whole.

    Such an experiment is checked even when the code no longer registers it (a
    removal); locked experiments of other modules are left alone.
    """
    module = str(entry.get("function", "")).partition(":")[0]
    return any(":" not in t and (module == t or module.startswith(t + ".")) for t in targets)
