"""dag.test() of tributary_backfill against the local stack: real Airflow, the
real binary, real Postgres and the emulators. Rows written before capture
existed reach BigQuery only through the backfill; the DAG's verify task
passes only when BigQuery equals Postgres."""

import os
import pathlib
import subprocess
import sys
import time

import pytest

REPO = pathlib.Path(__file__).resolve().parents[2]


def _wait(pred, timeout, what):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return
        time.sleep(0.2)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def _psql(env, sql):
    return subprocess.run(
        ["psql", env["DATABASE_URL"], "-Atc", sql], env=env, capture_output=True, text=True, check=True
    ).stdout.strip()


@pytest.fixture(scope="module")
def stack(tributary_bin, tmp_path_factory):
    d = tmp_path_factory.mktemp("stack")
    dev = subprocess.Popen(
        [tributary_bin, "dev", "--dir", str(d)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    try:
        _wait(lambda: (d / "env").exists() and (d / "tributary.yaml").exists(), 120, "tributary dev")
        env = dict(os.environ)
        for line in (d / "env").read_text().splitlines():
            key, _, value = line.removeprefix("export ").partition("=")
            env[key] = value.strip("'")
        yield d, env
    finally:
        dev.terminate()
        dev.wait(timeout=60)


@pytest.fixture(scope="module")
def pipeline(stack, tributary_bin):
    d, env = stack
    # Rows that exist before capture's slot: only a backfill brings them.
    _psql(env, "CREATE TABLE items (id bigint PRIMARY KEY, name text, price numeric(10,2))")
    _psql(env, "INSERT INTO items SELECT g, 'item ' || g, g * 0.5 FROM generate_series(1, 500) g")
    run = subprocess.Popen(
        [
            tributary_bin, "run", "--config", str(d / "tributary.yaml"),
            "--set", "http.listen=127.0.0.1:0", "--set", "sink.flush_age=1s", "--set", "sink.load_interval=2s",
            # No initial snapshot: the rows from before reach BigQuery only through the DAG.
            "--set", "postgres.initial_snapshot=false",
        ],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    try:
        _wait(lambda: _psql(env, "SELECT count(*) FROM pg_replication_slots WHERE active") == "1", 60, "capture to stream")
        # Changes while the DAG runs: the stream and the backfill meet.
        _psql(env, "UPDATE items SET price = price + 1 WHERE id % 10 = 0")
        _psql(env, "DELETE FROM items WHERE id % 25 = 0")
        yield d, env
    finally:
        run.terminate()
        run.wait(timeout=120)


def test_backfill_dag_end_to_end(pipeline, tributary_bin, monkeypatch):
    d, env = pipeline
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("TRIBUTARY_BIN", tributary_bin)
    # The metadata database dag.test() records the run in (AIRFLOW_HOME is a
    # fresh directory per test session).
    airflow = str(pathlib.Path(sys.executable).parent / "airflow")
    subprocess.run([airflow, "db", "migrate"], env=dict(os.environ), check=True, capture_output=True)

    from airflow.dag_processing.dagbag import DagBag
    from airflow.utils.state import DagRunState

    dag = DagBag(dag_folder=str(REPO / "airflow" / "dags")).dags["tributary_backfill"]
    # backfill returns once the sink has loaded what it wrote, so verify
    # compares a caught-up BigQuery.
    run = dag.test(run_conf={"config": str(d / "tributary.yaml"), "tables": ["public.items"]})
    assert run.state == DagRunState.SUCCESS, f"backfill DAG ended {run.state}"
    out = subprocess.run(
        [tributary_bin, "verify", "--config", str(d / "tributary.yaml"), "--table", "public.items", "--json"],
        env=env, capture_output=True, text=True,
    )
    assert out.returncode == 0, out.stdout + out.stderr
    assert '"postgres_rows":480' in out.stdout
