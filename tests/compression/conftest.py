"""A trained digits CNN run shared by the compression tests (real data, a real CNN)."""

import os

import pytest

from tests.conftest import run_cli


@pytest.fixture(scope="session")
def cnn_run(tmp_path_factory):
    """(work folder, run dir) of the default digits CNN (30 epochs), neither compressed nor
    exported: the issue's bars are stated for this model."""
    work = tmp_path_factory.mktemp("compress_work")
    result = run_cli("train", "digits", "--run-dir", "run",
                     "--set", "export.formats=[]", "--set", "compress.methods=[]", "--quiet",
                     cwd=str(work))
    assert result.returncode == 0, result.stderr
    return str(work), os.path.join(str(work), "run")
