"""Runs the tributary binary for Airflow tasks and reads its --json output.

Task logic lives in the binary; this module only passes parameters, parses
the one JSON object the command prints, and maps exit statuses onto Airflow:
0 succeeds, 1 (a real finding, such as Postgres and BigQuery differing)
fails the task without retrying, anything else (an error) fails it so the
task's retries apply. Nothing here runs at DAG parse time.
"""

from __future__ import annotations

import json
import os
import shlex
import subprocess

from airflow.sdk.exceptions import AirflowException, AirflowFailException

# The binary: TRIBUTARY_BIN, else `tributary` on PATH.
BIN_ENV = "TRIBUTARY_BIN"


def binary() -> str:
    return os.environ.get(BIN_ENV, "tributary")


def run(args: list[str], timeout: float = 6 * 3600) -> dict:
    """Runs `tributary <args> --json` and returns the JSON object it printed."""
    cmd = [binary(), *args, "--json"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False)
    if proc.stderr:
        print(proc.stderr, end="")
    result = _last_json(proc.stdout)
    if proc.returncode == 0 and result is not None:
        return result
    if proc.returncode == 1 and result is not None:
        # A finding, not a failure to run: retrying would find it again.
        raise AirflowFailException(
            f"{shlex.join(cmd)} reported a finding:\n{json.dumps(result, indent=2)}"
        )
    raise AirflowException(
        f"{shlex.join(cmd)} exited {proc.returncode}: {proc.stderr.strip() or proc.stdout.strip()}"
    )


def _last_json(stdout: str) -> dict | None:
    for line in reversed(stdout.strip().splitlines()):
        line = line.strip()
        if line.startswith("{"):
            try:
                return json.loads(line)
            except json.JSONDecodeError:
                return None
    return None
