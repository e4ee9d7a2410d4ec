"""tributary_backfill: re-read tables into BigQuery while the stream keeps running.

preflight (the slot exists and capture is streaming) -> one mapped `tributary backfill`
per table -> one mapped `tributary verify` per table. Each task runs the binary and keeps
its --json summary in XCom."""

from __future__ import annotations

from datetime import datetime, timedelta

from airflow.sdk import DAG, Param, task

with DAG(
    dag_id="tributary_backfill",
    description="Backfill tables while streaming, then verify them",
    schedule=None,
    start_date=datetime(2026, 1, 1),
    catchup=False,
    tags=["tributary"],
    params={
        "config": Param(
            "/etc/tributary/tributary.yaml",
            type="string",
            minLength=1,
            description="tributary config file the workers can read",
        ),
        "tables": Param(
            [],
            type="array",
            items={"type": "string", "minLength": 3},
            minItems=1,
            description="tables to backfill, as schema.table",
        ),
        "where": Param(
            "",
            type="string",
            description="optional SQL condition limiting the rows re-read",
        ),
    },
    default_args={
        "retries": 2,
        "retry_delay": timedelta(minutes=1),
        "retry_exponential_backoff": True,
        "max_retry_delay": timedelta(minutes=15),
    },
) as dag:

    @task(task_id="preflight")
    def preflight(params=None) -> list[str]:
        import tributary_cli
        from airflow.sdk.exceptions import AirflowFailException

        report = tributary_cli.run(["status", "--config", params["config"]])
        slot = report.get("slot", {})
        if not slot.get("exists"):
            raise AirflowFailException(f"replication slot {slot.get('name')!r} does not exist: start capture first")
        if not slot.get("active"):
            raise AirflowFailException(f"replication slot {slot.get('name')!r} is not being read: capture is not running")
        return list(params["tables"])

    @task(task_id="backfill")
    def backfill(table: str, params=None) -> dict:
        import tributary_cli

        args = ["backfill", "--config", params["config"], "--table", table]
        if params.get("where"):
            args += ["--where", params["where"]]
        return tributary_cli.run(args)

    @task(task_id="verify")
    def verify(table: str, params=None) -> dict:
        import tributary_cli

        return tributary_cli.run(["verify", "--config", params["config"], "--table", table])

    tables = preflight()
    backfill.expand(table=tables) >> verify.expand(table=tables)
