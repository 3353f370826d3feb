"""A trained digits run shared by the export tests (a real CNN, three epochs)."""

import os

import pytest

from tests.conftest import run_cli


@pytest.fixture(scope="session")
def digits_run(tmp_path_factory):
    """(work folder, run dir) of a finished digits CNN run with no export of its own."""
    work = tmp_path_factory.mktemp("export_work")
    result = run_cli("train", "digits", "--run-dir", "run", "--set", "train.epochs=3",
                     "--set", "export.formats=[]", "--set", "compress.methods=[]", "--quiet", cwd=str(work))
    assert result.returncode == 0, result.stderr
    return str(work), os.path.join(str(work), "run")
