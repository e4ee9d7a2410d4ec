#!/usr/bin/env bash
# Creates (once per version of airflow/requirements.txt) a Python venv with
# the pinned Airflow and pytest, in the cache, and prints its path.
set -euo pipefail
cd "$(dirname "$0")/.."
CACHE="${TRIBUTARY_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/tributary}"
sum=$(sha256sum airflow/requirements.txt | cut -c1-12)
VENV="$CACHE/airflow-venv-$sum"
# A venv cannot be moved (its scripts name their own path), so completion is
# marked by a stamp written last.
if [[ -f "$VENV/.complete" ]]; then echo "$VENV"; exit 0; fi
rm -rf "$VENV"
python3 -m venv "$VENV" >&2
"$VENV/bin/pip" install -q --disable-pip-version-check -r airflow/requirements.txt >&2
touch "$VENV/.complete"
echo "$VENV"
