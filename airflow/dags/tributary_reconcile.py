"""tributary_reconcile: every day, compare every published table in Postgres
with its current state in BigQuery (`tributary verify`). The run fails, listing
each discrepancy (key and columns), when any table differs."""

from __future__ import annotations

from datetime import datetime, timedelta

from airflow.sdk import DAG, Param, task

with DAG(
    dag_id="tributary_reconcile",
    description="Verify Postgres against BigQuery's current state, daily",
    schedule="@daily",
    start_date=datetime(2026, 1, 1),
    catchup=False,
    max_active_runs=1,
    tags=["tributary"],
    params={
        "config": Param(
            "/etc/tributary/tributary.yaml",
            type="string",
            minLength=1,
            description="tributary config file the workers can read",
        ),
        "table": Param(
            "",
            type="string",
            description="only this table (schema.table); empty verifies every published table",
        ),
    },
    default_args={
        "retries": 3,
        "retry_delay": timedelta(minutes=2),
        "retry_exponential_backoff": True,
        "max_retry_delay": timedelta(minutes=30),
    },
) as dag:

    @task(task_id="verify")
    def verify(params=None) -> dict:
        import tributary_cli

        args = ["verify", "--config", params["config"]]
        if params.get("table"):
            args += ["--table", params["table"]]
        return tributary_cli.run(args)

    verify()
