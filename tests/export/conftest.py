"""The default job's digits CNN, copied for the export tests (a real CNN, trained once)."""

import pytest

from tests.conftest import copy_run


@pytest.fixture(scope="module")
def digits_run(default_job, tmp_path_factory):
    """(work folder, run dir) of a private copy of the default job's run, as `run`: these
    tests export it again, which rewrites its export.json."""
    work = tmp_path_factory.mktemp("export_work")
    return str(work), copy_run(default_job[1], work / "run")
