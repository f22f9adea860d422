"""The registry's contract and the leaf middleware's file fetching."""

from __future__ import annotations

import functools
import http.server
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import pytest

from scythe import ExperimentInputSpec, ExperimentOutputSpec, ExperimentRegistry
from scythe.errors import DuplicateExperimentError, LeafError, RegistryError
from scythe.leaf import fetch_file


class In(ExperimentInputSpec):
    x: float


class Out(ExperimentOutputSpec):
    y: float


def test_duplicate_names_raise_and_include_registers_a_runnable():
    @ExperimentRegistry.Register(name="registry_dupe")
    def first(spec: In) -> Out:
        return Out(y=spec.x)

    try:
        with pytest.raises(DuplicateExperimentError, match="'registry_dupe' is already registered"):

            @ExperimentRegistry.Register(name="registry_dupe")
            def second(spec: In) -> Out:
                return Out(y=-spec.x)

        ExperimentRegistry.unregister("registry_dupe")
        assert ExperimentRegistry.Include(first) is first
        assert ExperimentRegistry.get("registry_dupe") is first
        assert first(In(x=2.0)).y == 2.0  # callable like the function
    finally:
        ExperimentRegistry.unregister("registry_dupe")


def test_signatures_without_specs_are_refused_with_the_function_named():
    with pytest.raises(RegistryError, match=r"no_spec must take exactly one parameter"):

        @ExperimentRegistry.Register(name="registry_no_spec")
        def no_spec(x: float) -> Out:
            return Out(y=x)

    with pytest.raises(RegistryError, match="return an ExperimentOutputSpec subclass"):

        @ExperimentRegistry.Register(name="registry_no_out")
        def no_out(spec: In) -> float:
            return spec.x


def test_unknown_experiment_names_list_the_registered_ones():
    with pytest.raises(RegistryError, match="no experiment named 'nope'"):
        ExperimentRegistry.get("nope")


@pytest.fixture
def http_root(tmp_path):
    (tmp_path / "weather.csv").write_text("t,ghi\n1,2\n")
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(tmp_path))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()


def test_http_inputs_are_downloaded_once_into_the_cache(http_root, tmp_path):
    cache = tmp_path / "cache"
    first = fetch_file(f"{http_root}/weather.csv", cache)
    assert first.read_text() == "t,ghi\n1,2\n"
    assert cache in first.parents
    first.write_text("cached copy")  # a second fetch reuses the cached file
    assert fetch_file(f"{http_root}/weather.csv", cache).read_text() == "cached copy"


def test_file_uris_and_paths_are_used_in_place(tmp_path):
    target = tmp_path / "w.csv"
    target.write_text("x")
    assert fetch_file(target.as_uri(), tmp_path / "cache") == target
    assert fetch_file(target, tmp_path / "cache") == target
    with pytest.raises(LeafError, match="unsupported scheme 'ftp'"):
        fetch_file("ftp://host/w.csv", tmp_path / "cache")


def test_an_experiment_defined_in_a_script_runs_on_worker_processes(tmp_path):
    script = tmp_path / "my_study.py"
    script.write_text(
        textwrap.dedent(
            """
            from __future__ import annotations

            import sys
            from pathlib import Path

            from scythe import (BaseExperiment, ExperimentInputSpec, ExperimentOutputSpec,
                                ExperimentRegistry, LocalEngine)


            class Square(ExperimentInputSpec):
                x: int


            class Squared(ExperimentOutputSpec):
                y: int


            @ExperimentRegistry.Register()
            def square(spec: Square, tempdir: Path) -> Squared:
                assert tempdir.is_dir()
                return Squared(y=spec.x * spec.x)


            if __name__ == "__main__":
                run, ref = BaseExperiment(runnable=square, storage=sys.argv[1]).allocate(
                    [Square(x=i) for i in range(7)], engine=LocalEngine(slots=2, progress=False))
                print(ref.result().status, run.results().scalars["y"].to_list())
            """
        )
    )
    done = subprocess.run(
        [sys.executable, str(script), str(tmp_path / "store")],
        capture_output=True,
        text=True,
        timeout=180,
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().splitlines()[-1] == "complete [0, 1, 4, 9, 16, 25, 36]"
    assert Path(tmp_path / "store" / "square").is_dir()


class SeenIds(ExperimentOutputSpec):
    y: float
    seen: str


@pytest.mark.parametrize("inject", [True, False])
def test_the_function_sees_run_ids_only_when_injected_and_the_rows_always_have_them(
    tmp_path, inject
):
    from scythe import BaseExperiment, LocalEngine

    @ExperimentRegistry.Register(name=f"registry_ids_{inject}", inject_workflow_run_id=inject)
    def ids(spec: In) -> SeenIds:
        return SeenIds(y=spec.x, seen=f"{spec.workflow_run_id}|{spec.root_workflow_run_id}")

    try:
        run, ref = BaseExperiment(ids, storage=tmp_path).allocate(
            [In(x=float(i)) for i in range(3)], engine=LocalEngine(slots=0, progress=False)
        )
        assert ref.result().status == "complete"
        scalars = run.results().scalars
        node_ids = set(scalars["workflow_run_id"])
        assert node_ids and None not in node_ids  # the rows carry the engine's ids either way
        seen = {s.split("|")[0] for s in scalars["seen"]}
        assert seen == (node_ids if inject else {"None"})
    finally:
        ExperimentRegistry.unregister(f"registry_ids_{inject}")


def test_the_spec_reaches_the_function_however_its_parameters_are_declared(tmp_path):
    from scythe import BaseExperiment, LocalEngine

    class Doubled(ExperimentOutputSpec):
        y: float

    def keyword_only(*, spec: In) -> Doubled:
        return Doubled(y=2 * spec.x)

    def tempdir_first(tempdir: Path, spec: In) -> Doubled:
        assert tempdir.is_dir()
        return Doubled(y=2 * spec.x)

    def positional(spec: In, scale: float = 2.0) -> Doubled:
        return Doubled(y=scale * spec.x)

    for fn in (keyword_only, tempdir_first, positional):
        name = f"registry_params_{fn.__name__}"
        runnable = ExperimentRegistry.Register(name=name)(fn)
        try:
            run, ref = BaseExperiment(runnable, storage=tmp_path).allocate(
                [In(x=1.5), In(x=2.0)], engine=LocalEngine(slots=0, progress=False)
            )
            assert ref.result().status == "complete", fn.__name__
            assert run.results().scalars["y"].to_list() == [3.0, 4.0], fn.__name__
        finally:
            ExperimentRegistry.unregister(name)
