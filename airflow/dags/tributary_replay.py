"""tributary_replay: rebuild a table in BigQuery from the Avro objects on GCS alone
(`tributary replay`), into the live dataset (built aside and swapped in) or another one
(a point-in-time copy as of `to`). Keeps the --json summary in XCom."""

from __future__ import annotations

from datetime import datetime, timedelta

from airflow.sdk import DAG, Param, task

with DAG(
    dag_id="tributary_replay",
    description="Rebuild a table in BigQuery from GCS",
    schedule=None,
    start_date=datetime(2026, 1, 1),
    catchup=False,
    tags=["tributary"],
    params={
        "config": Param("/etc/tributary/tributary.yaml", type="string", minLength=1),
        "table": Param("", type="string", minLength=3, description="schema.table"),
        "from": Param("", type="string", description="commit LSN or RFC 3339 time; empty: the beginning"),
        "to": Param("", type="string", description="commit LSN or RFC 3339 time; empty: the end"),
        "target": Param("", type="string", description="dataset to build into; empty: the live dataset"),
    },
    default_args={"retries": 1, "retry_delay": timedelta(minutes=2)},
) as dag:

    @task(task_id="replay")
    def replay(params=None) -> dict:
        import tributary_cli

        args = ["replay", "--config", params["config"], "--table", params["table"]]
        for flag, key in (("--from", "from"), ("--to", "to"), ("--into", "target")):
            if params.get(key):
                args += [flag, params[key]]
        return tributary_cli.run(args)

    replay()
