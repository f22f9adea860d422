"""Storage faults between Scythe and S3: real runs through a fault-injecting proxy.

Every run here goes through its own :class:`~faults.proxy.FaultProxy` in
front of the session's moto server (``SCYTHE_STORAGE_ENDPOINT_URL`` points at
the proxy when the run's ``s3://<bucket>/faults`` store is opened, so boto3
and deltalake alike are faulted) and is compared with a fault-free run of the
same specs on the direct endpoint. The runs of one test go at once (each in
its engine's thread, each with its proxy and bucket), so that the clients'
retry back-offs overlap; a proxy sees only its own run's requests.

The faults are seeded; which request a fault hits may vary with thread
timing, so the assertions hold for any request it hits: every spec exactly
once, with the fault-free values, and no table version showing part of a run.

A reply lost after S3 applied a conditional PUT is ridden out too: the
retried PUT finds the object holding its own bytes and counts it as written.

``pytest -s`` prints one summary line per run and the suite's totals.
"""

from __future__ import annotations

import http.client
import uuid
from collections import Counter
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from typing import Any

import boto3
import polars as pl
import pytest
from deltalake import DeltaTable
from scythe_test_experiments import Probe, probe

import scythe.engines.local as local_engine
from scythe import BaseExperiment, ExperimentRun, LocalEngine, RecursionMap
from scythe.errors import EngineError
from scythe.storage import S3Store

from .proxy import DELTA_LOG, FaultProxy, FaultSchedule, Only

pytestmark = pytest.mark.s3

REGION = "us-east-1"
N_SPECS = 10
RMAP = RecursionMap(factor=2, max_depth=1)  # two terminal nodes
TABLES = ("scalars", "result_file_refs", "failures", "rows")
RUN_TIMEOUT = 180.0
NO_DIFFERENCE = {"lost": 0, "duplicated": 0, "changed": 0}

# transient faults every S3 client must ride out: 9% of requests fail, 2% are slow
TRANSIENT = {"drop": 0.03, "500": 0.03, "503": 0.03, "delay": 0.02}
TRANSIENT_SEEDS = (1, 2, 3)
# faults on the Delta log during the root's commit, replies lost after S3 applied them too
COMMIT_FAULTS = {"lost": 0.08, "drop": 0.05, "500": 0.05, "503": 0.05, "delay": 0.02}
COMMIT_SEEDS = (11, 12)

TOTALS: Counter[str] = Counter()
COUNTED = ("lost", "duplicated", "changed", "half_visible_versions", "resumed_after_failure")


@dataclass
class Trial:
    """One run through its own proxy, into its own bucket."""

    name: str
    seed: int
    bucket: str
    proxy: FaultProxy
    run: ExperimentRun
    ref: Any


def specs() -> list[Probe]:
    return [Probe(x=float(i), floors=None if i % 4 else i) for i in range(N_SPECS)]


def new_bucket(endpoint: str) -> str:
    bucket = f"scythe-faults-{uuid.uuid4().hex[:12]}"
    boto3.client("s3", endpoint_url=endpoint, region_name=REGION).create_bucket(Bucket=bucket)
    return bucket


def start_trial(
    name: str,
    seed: int,
    schedule: FaultSchedule,
    *,
    moto_server: str,
    proxies: ExitStack,
    monkeypatch: pytest.MonkeyPatch,
) -> Trial:
    """Allocate a run of the specs on ``s3://<new bucket>/faults`` through a new proxy.

    The store is opened (and remembered for the run's nodes, by bucket) while
    ``SCYTHE_STORAGE_ENDPOINT_URL`` names the proxy.
    """
    bucket = new_bucket(moto_server)  # a bucket per run: stores are remembered by bucket
    proxy = proxies.enter_context(FaultProxy(moto_server, schedule))
    monkeypatch.setenv("SCYTHE_STORAGE_ENDPOINT_URL", proxy.url)
    monkeypatch.setenv("SCYTHE_STORAGE_REGION", REGION)
    experiment = BaseExperiment(runnable=probe, storage=f"s3://{bucket}/faults")
    run, ref = experiment.allocate(
        specs(), recursion_map=RMAP, wait=False, engine=LocalEngine(slots=0, progress=False)
    )
    assert isinstance(run.store, S3Store) and run.store.endpoint_url == proxy.url
    return Trial(name, seed, bucket, proxy, run, ref)


def outcome(trial: Trial) -> str:
    """``complete``/``partial``/..., or ``failed (<reason>)`` if the engine gave up."""
    try:
        return trial.ref.result(timeout=RUN_TIMEOUT).status
    except EngineError as err:
        return f"failed ({str(err).rsplit(': ', 1)[-1][:70]})"


def direct_store(endpoint: str, bucket: str) -> S3Store:
    """A run's store on the direct endpoint, to inspect it without faults."""
    return S3Store(bucket, "faults", endpoint_url=endpoint, region=REGION)


def observed(run: ExperimentRun) -> dict[str, pl.DataFrame]:
    """The run's tables without what names the run; file references as their key and content."""
    results = run.results()
    frames = {name: results.table(name).drop("experiment_id") for name in TABLES}
    refs = frames["result_file_refs"]
    root = run.store.uri(run.run_id) + "/"
    keys = [uri.removeprefix(root) for uri in refs["report"].to_list()]
    contents = [run.store.get_bytes(f"{run.run_id}/{key}").decode() for key in keys]
    frames["result_file_refs"] = refs.with_columns(
        pl.Series("report", keys), pl.Series("report_content", contents)
    )
    return frames


def compare(frames: dict[str, pl.DataFrame], baseline: dict[str, pl.DataFrame]) -> dict[str, int]:
    """Specs lost, duplicated and changed against the fault-free run, over every table."""
    lost: set[int] = set()
    duplicated: set[int] = set()
    changed: set[int] = set()
    for name, base in baseline.items():
        frame = frames[name]
        assert frame.columns == base.columns, name
        for sort_index in range(N_SPECS):
            want = base.filter(pl.col("sort_index") == sort_index).rows()
            got = frame.filter(pl.col("sort_index") == sort_index).rows()
            if want and not got:
                lost.add(sort_index)
            elif len(got) > len(want):
                duplicated.add(sort_index)
            elif got != want:
                changed.add(sort_index)
        strangers = frame.filter(~pl.col("sort_index").is_in(list(range(N_SPECS))))
        changed.update(strangers["sort_index"].to_list())
    return {"lost": len(lost), "duplicated": len(duplicated), "changed": len(changed)}


def table_versions(store: S3Store, run: ExperimentRun, name: str) -> list[list[int]]:
    """The sorted ``sort_index`` column of every readable version of one table, oldest first."""
    uri, options = run.table_uri(name), store.storage_options()
    history = DeltaTable(uri, storage_options=options).history()
    return [
        sorted(
            DeltaTable(uri, version=version, storage_options=options)
            .to_pyarrow_table(columns=["sort_index"])
            .column("sort_index")
            .to_pylist()
        )
        for version in sorted(int(entry["version"]) for entry in history)
    ]


def commit_counts(store: S3Store, run: ExperimentRun) -> dict[str, int]:
    """Commits in each table's history (the create commit included)."""
    options = store.storage_options()
    return {
        name: len(DeltaTable(run.table_uri(name), storage_options=options).history())
        for name in TABLES
    }


def injected(stats: dict[str, Any]) -> int:
    """Faults that made a request fail (a delay does not)."""
    return sum(n for kind, n in stats["faults"].items() if kind != "delay")


def only_own_bucket(trial: Trial) -> bool:
    return all(path.startswith(f"/{trial.bucket}") for _, _, _, path, _ in trial.proxy.log)


def summary(test: str, seed: int, stats: dict[str, Any], **extra: Any) -> None:
    """Print one run's line and add it to the suite's totals."""
    TOTALS["runs"] += 1
    TOTALS["requests"] += stats["requests"]
    for kind, n in stats["faults"].items():
        TOTALS[f"fault:{kind}"] += n
    for key in COUNTED:
        TOTALS[key] += extra.get(key, 0)
    text = " ".join(f"{k}={v}" for k, v in {"faults": stats["faults"], **extra}.items())
    print(f"\n[faults] {test} seed={seed} requests={stats['requests']} {text}")


@pytest.fixture(scope="module", autouse=True)
def report_totals() -> Iterator[None]:
    yield
    faults = {k.removeprefix("fault:"): v for k, v in sorted(TOTALS.items()) if ":" in k}
    rest = {k: v for k, v in sorted(TOTALS.items()) if ":" not in k}
    print(f"\n[faults] TOTALS {rest} faults={faults}")


@pytest.fixture
def proxies() -> Iterator[ExitStack]:
    with ExitStack() as stack:
        yield stack


@pytest.fixture(scope="module")
def baseline(moto_server: str) -> dict[str, pl.DataFrame]:
    """The tables of a fault-free run of the same specs on the direct endpoint."""
    store = S3Store(new_bucket(moto_server), "direct", endpoint_url=moto_server, region=REGION)
    run, ref = BaseExperiment(runnable=probe, storage=store).allocate(
        specs(), recursion_map=RMAP, engine=LocalEngine(slots=0, progress=False)
    )
    assert ref.result().status == "complete"
    frames = observed(run)
    assert frames["scalars"].height == N_SPECS and frames["failures"].height == 0
    return frames


def test_runs_ride_out_transient_faults(
    moto_server: str, baseline, proxies: ExitStack, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Dropped connections, 500s, 503s and slow replies, from allocation to reading the
    results, cost retries, never a row."""
    trials = [
        start_trial(
            "transient",
            seed,
            FaultSchedule(seed=seed, rates=TRANSIENT),
            moto_server=moto_server,
            proxies=proxies,
            monkeypatch=monkeypatch,
        )
        for seed in TRANSIENT_SEEDS
    ]
    for trial in trials:
        status = outcome(trial)
        frames = observed(trial.run) if status == "complete" else None  # through the faults too
        diff = compare(frames, baseline) if frames is not None else None
        commits = commit_counts(direct_store(moto_server, trial.bucket), trial.run)
        stats = trial.proxy.stats()
        summary("transient", trial.seed, stats, status=status, **(diff or {}))
        assert injected(stats) > 0, "no fault was injected"
        assert only_own_bucket(trial)
        assert status == "complete", f"seed {trial.seed}"
        assert diff == NO_DIFFERENCE, f"seed {trial.seed}"
        for name in TABLES:
            assert frames is not None and frames[name].equals(baseline[name]), (trial.seed, name)
        assert commits == dict.fromkeys(TABLES, 2), "create + one commit by the root per table"


def test_a_faulted_commit_is_never_half_visible_and_resumes_exactly_once(
    moto_server: str, baseline, proxies: ExitStack, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Faults on the Delta log while the root commits, lost replies included: every
    version of every table shows none of the run's rows or all of them, and a resume
    commits what is missing, exactly once.

    Besides the seeded schedules, one run loses the reply to every table's commit
    (a conditional PUT that S3 applied) once.
    """
    by_bucket: dict[str, FaultProxy] = {}
    real_finalize = local_engine.finalize_run

    def finalize(inp: Any, *args: Any, **kwargs: Any) -> Any:
        proxy = by_bucket.get(inp.storage_uri.removeprefix("s3://").split("/")[0])
        if proxy is not None:
            proxy.arm()  # the terminal nodes have staged: fault the commit from here on
        try:
            return real_finalize(inp, *args, **kwargs)
        finally:
            if proxy is not None:
                proxy.arm(False)

    monkeypatch.setattr(local_engine, "finalize_run", finalize)
    on_the_log = Only(contains=DELTA_LOG, when_armed=True)
    cases = [
        ("commit", seed, FaultSchedule(seed=seed, rates=COMMIT_FAULTS, only=on_the_log))
        for seed in COMMIT_SEEDS
    ]
    # the reply to each table's commit (a conditional PUT that S3 applied) is lost, once
    commit_puts = Only(methods=("PUT",), contains=DELTA_LOG, when_armed=True)
    lost_replies = FaultSchedule(
        seed=0, rates={"lost": 1.0}, only=commit_puts, max_faults_per_request=1
    )
    cases.append(("lost-commit-replies", 0, lost_replies))
    trials = []
    for name, seed, schedule in cases:
        trial = start_trial(
            name, seed, schedule, moto_server=moto_server, proxies=proxies, monkeypatch=monkeypatch
        )
        by_bucket[trial.bucket] = trial.proxy
        trials.append(trial)
    expected = {name: sorted(baseline[name]["sort_index"].to_list()) for name in TABLES}
    firsts = [outcome(trial) for trial in trials]
    half_visible = []  # per trial: table versions that show part of the run
    for trial in trials:
        direct = direct_store(moto_server, trial.bucket)
        partial = 0
        for name in TABLES:
            for version, seen in enumerate(table_versions(direct, trial.run, name)):
                if seen not in ([], expected[name]):
                    partial += 1
                    print(f"[faults] {name} v{version} shows {len(seen)} of {len(expected[name])}")
        half_visible.append(partial)
    stats = [trial.proxy.stats() for trial in trials]  # the faulted attempts, before resuming
    resumes = []
    for trial in trials:
        trial.proxy.reset(FaultSchedule(seed=trial.seed, rates={}))  # resume without faults
        resumed = ExperimentRun.open(trial.run.run_id, storage=f"s3://{trial.bucket}/faults")
        assert resumed.store.endpoint_url == trial.proxy.url  # type: ignore[attr-defined]
        ref = resumed.resume(engine=LocalEngine(slots=0, progress=False), wait=False)
        resumes.append((resumed, ref))
    for trial, first, partial, faulted, (resumed, ref) in zip(
        trials, firsts, half_visible, stats, resumes, strict=True
    ):
        status = ref.result(timeout=RUN_TIMEOUT).status
        diff = compare(observed(resumed), baseline)
        commits = commit_counts(direct_store(moto_server, trial.bucket), trial.run)
        summary(
            trial.name,
            trial.seed,
            faulted,
            first_attempt=first,
            resumed=status,
            resumed_after_failure=int(first.startswith("failed")),
            half_visible_versions=partial,
            **diff,
        )
        assert injected(faulted) > 0, "no fault was injected"
        assert only_own_bucket(trial)
        assert partial == 0, f"seed {trial.seed}"
        assert status == "complete", f"seed {trial.seed}"
        assert diff == NO_DIFFERENCE, f"seed {trial.seed}"
        assert commits == dict.fromkeys(TABLES, 2), "create + one commit by the root per table"


def test_a_lost_reply_to_a_staged_upload_does_not_fail_the_run(
    moto_server: str, baseline, proxies: ExitStack, monkeypatch: pytest.MonkeyPatch
) -> None:
    # the first attempt of every staged data file reaches S3, but its reply is lost
    staged_uploads = Only(methods=("PUT",), contains="/part-")
    trial = start_trial(
        "lost-staged-reply",
        0,
        FaultSchedule(seed=0, rates={"lost": 1.0}, only=staged_uploads, max_faults_per_request=1),
        moto_server=moto_server,
        proxies=proxies,
        monkeypatch=monkeypatch,
    )
    try:
        status = trial.ref.result(timeout=RUN_TIMEOUT).status
    except EngineError as err:
        summary("lost-staged-reply", 0, trial.proxy.stats(), status=f"failed ({str(err)[-95:]})")
        raise
    summary("lost-staged-reply", 0, trial.proxy.stats(), status=status)
    assert status == "complete"
    assert compare(observed(trial.run), baseline) == NO_DIFFERENCE


def signed_headers(method: str, url: str) -> dict[str, str]:
    """SigV4 headers for a request without a signed payload (moto checks no payload hash)."""
    from botocore.auth import S3SigV4Auth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials

    request = AWSRequest(method=method, url=url)
    S3SigV4Auth(Credentials("testing", "testing"), "s3", REGION).add_auth(request)
    return dict(request.headers.items())


def test_the_proxy_keeps_requests_apart_on_one_connection(moto_server: str, s3_bucket: str) -> None:
    """A chunked upload, an injected 503, a HEAD and a GET, one after another on one
    keep-alive connection, each get their own reply."""
    only_deletes = Only(methods=("DELETE",))
    schedule = FaultSchedule(
        seed=0, rates={"503": 1.0}, only=only_deletes, max_faults_per_request=1
    )
    with FaultProxy(moto_server, schedule) as proxy:
        host, port = proxy.url.removeprefix("http://").split(":")
        conn = http.client.HTTPConnection(host, int(port), timeout=30)
        key = f"/{s3_bucket}/chunked.bin"
        replies = []
        sockets = set()
        for method, body in [
            ("PUT", [b"abc", b"defg"]),
            ("DELETE", None),
            ("HEAD", None),
            ("GET", None),
            ("DELETE", None),
        ]:
            headers = signed_headers(method, proxy.url + key)
            if body is None:
                conn.request(method, key, headers=headers)
            else:
                conn.request(method, key, body=iter(body), headers=headers, encode_chunked=True)
            sockets.add(id(conn.sock))
            reply = conn.getresponse()
            replies.append((method, reply.status, reply.read()))
        conn.close()
        stats = proxy.stats()
    assert [(m, s) for m, s, _ in replies] == [
        ("PUT", 200),
        ("DELETE", 503),
        ("HEAD", 200),
        ("GET", 200),
        ("DELETE", 204),
    ]
    assert b"<Code>SlowDown</Code>" in replies[1][2]
    assert replies[3][2] == b"abcdefg"
    assert len(sockets) == 1, "the connection was kept alive through the fault"
    assert stats == {"requests": 5, "faults": {"503": 1}}
