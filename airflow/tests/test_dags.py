import pathlib
import subprocess

import pytest

REPO = pathlib.Path(__file__).resolve().parents[2]


def test_dagbag_has_no_import_errors(dagbag):
    assert dagbag.import_errors == {}
    assert {"tributary_reconcile", "tributary_backfill", "tributary_replay"} <= set(dagbag.dags)


def test_backfill_dag_shape(dagbag):
    dag = dagbag.dags["tributary_backfill"]
    assert {t.task_id for t in dag.tasks} == {"preflight", "backfill", "verify"}
    assert dag.get_task("preflight").downstream_task_ids == {"backfill", "verify"}
    assert dag.get_task("backfill").downstream_task_ids == {"verify"}
    assert type(dag.timetable).__name__ == "NullTimetable"  # triggered, never scheduled
    assert set(dag.params.keys()) == {"config", "tables", "where"}


def test_replay_dag_shape(dagbag):
    dag = dagbag.dags["tributary_replay"]
    assert [t.task_id for t in dag.tasks] == ["replay"]
    assert set(dag.params.keys()) == {"config", "table", "from", "to", "target"}


def test_dag_files_do_no_work_at_import(tmp_path):
    """Parsing the DAG files runs no binary and opens no connection: with the
    binary pointed at something that fails loudly, they still import."""
    import importlib.util
    import os

    os.environ["TRIBUTARY_BIN"] = str(tmp_path / "absent")
    for name in ("tributary_reconcile", "tributary_backfill", "tributary_replay"):
        spec = importlib.util.spec_from_file_location(name, REPO / "airflow" / "dags" / f"{name}.py")
        spec.loader.exec_module(importlib.util.module_from_spec(spec))


def test_reconcile_dag_shape(dagbag):
    dag = dagbag.dags["tributary_reconcile"]
    assert [t.task_id for t in dag.tasks] == ["verify"]
    assert dag.max_active_runs == 1 and not dag.catchup
    verify = dag.get_task("verify")
    assert verify.retries == 3 and verify.retry_exponential_backoff
    assert set(dag.params.keys()) == {"config", "table"}


def test_cli_errors_are_retryable(tributary_bin, tmp_path, monkeypatch):
    import tributary_cli
    from airflow.sdk.exceptions import AirflowException, AirflowFailException

    monkeypatch.setenv(tributary_cli.BIN_ENV, tributary_bin)
    # A config that points at nothing: the real binary exits 2, an error the
    # task's retries should handle.
    cfg = tmp_path / "tributary.yaml"
    cfg.write_text(
        "project: tributary-test\n"
        "postgres:\n  url: postgres://nobody:secret@127.0.0.1:1/none\n"
        "gcs:\n  bucket: nothing-here\n"
        "bigquery:\n  dataset: nothing\n"
    )
    with pytest.raises(AirflowException) as err:
        tributary_cli.run(["verify", "--config", str(cfg)])
    assert not isinstance(err.value, AirflowFailException)
    assert "secret" not in str(err.value), "the DSN's password leaked into the task's error"
