import os
import pathlib
import subprocess
import sys

import pytest

DAGS = pathlib.Path(__file__).resolve().parent.parent / "dags"
sys.path.insert(0, str(DAGS))
os.environ.setdefault("AIRFLOW__CORE__LOAD_EXAMPLES", "False")
os.environ.setdefault("AIRFLOW__CORE__DAGS_FOLDER", str(DAGS))


@pytest.fixture(scope="session")
def dagbag():
    from airflow.dag_processing.dagbag import DagBag

    return DagBag(dag_folder=str(DAGS))


@pytest.fixture(scope="session")
def tributary_bin(tmp_path_factory):
    """The binary under test, built from this checkout."""
    out = tmp_path_factory.mktemp("bin") / "tributary"
    repo = DAGS.parent.parent
    subprocess.run(["go", "build", "-o", str(out), "./cmd/tributary"], cwd=repo, check=True)
    return str(out)
