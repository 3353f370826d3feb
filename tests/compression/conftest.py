"""The default job's digits CNN, copied for the compression tests (real data, a real CNN)."""

import pytest

from tests.conftest import copy_run


@pytest.fixture(scope="module")
def cnn_run(default_job, tmp_path_factory):
    """(work folder, run dir): a private copy of the default job's run (30 epochs, the
    model the issue's bars are stated for), which these tests compress again."""
    work = tmp_path_factory.mktemp("compress_work")
    return str(work), copy_run(default_job[1], work / "run")
