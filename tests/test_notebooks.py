"""Every notebook runs top to bottom, as a user would run it.

Each notebook opens with a cell tagged `parameters` that holds its full-size settings (what a
reader runs). Here, as papermill does, a cell with smaller values is injected right after it:
the same cells run, on a smaller problem, so the suite stays fast.
"""

import glob
import os

import nbformat
import pytest
from nbclient import NotebookClient

from tests.conftest import REPO

NOTEBOOKS = sorted(glob.glob(os.path.join(REPO, "notebooks", "*.ipynb")))

SMALL = {
    "01_image_classification.ipynb": "EPOCHS = 4",
    "02_distributed_and_mixed_precision.ipynb": ('EPOCHS = 1\nWARMUP_EPOCHS = 0\n'
                                                 'PRECISIONS = ["float32"]\n'
                                                 'EXPERIMENT = "digits_mlp"'),
    "03_compression.ipynb": ('EPOCHS = 2\nFINE_TUNE_EPOCHS = {"prune": 1, "low_rank": 1, '
                             '"distill": 1}\nSWEEP_SPARSITIES = [0.9]\n'
                             'SWEEP_FINE_TUNE_EPOCHS = 1'),
    "04_export_and_serving.ipynb": "EPOCHS = 1\nFINE_TUNE_EPOCHS = 1",
    "05_translation.ipynb": ('NUM_PAIRS = 1_500\nOVERRIDES = ["train.epochs=1", '
                             '"translation.num_layers=1", "data.test_split=0.02"]'),
    "06_dqn_cartpole.ipynb": "TOTAL_STEPS = 2_000\nEVAL_INTERVAL = 1_000",
    "07_recommender.ipynb": "NUM_USERS = 400\nEPOCHS = 2",
    "08_when_training_goes_wrong.ipynb": ("HEALTHY_EPOCHS = 1\nOVERFIT_EPOCHS = 4\n"
                                          "DIVERGE_EPOCHS = 1\nLR_FIND_STEPS = 20"),
    "09_language_models.ipynb": (
        'EPOCHS = 1\nLORA_EPOCHS = 1\nMAX_NEW_TOKENS = 6\nCHAPTERS = 40\nPSALMS = 24\n'
        'SHORT = {"language_model.sequence_length": 32, "language_model.loss_chunk": 16, '
        '"language_model.samples": 0, "train.batch_size": 16, '
        '"train.jit_compile": False}\n'
        'MODEL = {**SHORT, "language_model.num_layers": 2, "language_model.hidden_dim": 32, '
        '"language_model.intermediate_dim": 64, "language_model.vocab_size": 300}\n'
        'LORA = SHORT'),
}


def with_small_parameters(notebook, source):
    """Inserts `source` as a code cell after the cell tagged `parameters`."""
    tagged = [i for i, cell in enumerate(notebook.cells)
              if "parameters" in cell.metadata.get("tags", [])]
    assert len(tagged) == 1, "a notebook needs one cell tagged `parameters`"
    cell = nbformat.v4.new_code_cell("# Injected by tests/test_notebooks.py\n" + source)
    notebook.cells.insert(tagged[0] + 1, cell)
    return notebook


@pytest.mark.slow
@pytest.mark.parametrize("path", NOTEBOOKS, ids=os.path.basename)
def test_notebook_executes(path, tmp_path, monkeypatch):
    monkeypatch.setenv("PYTHONPATH", REPO + os.pathsep + os.environ.get("PYTHONPATH", ""))
    notebook = with_small_parameters(nbformat.read(path, as_version=4),
                                     SMALL[os.path.basename(path)])
    NotebookClient(notebook, timeout=600, kernel_name="python3",
                   resources={"metadata": {"path": str(tmp_path)}}).execute()
    outputs = [o for cell in notebook.cells if cell.cell_type == "code" for o in cell.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    assert any("image/png" in o.get("data", {}) for o in outputs)  # the plots rendered


def test_every_notebook_has_small_parameters():
    assert {os.path.basename(p) for p in NOTEBOOKS} == set(SMALL)
    assert any(p.endswith("01_image_classification.ipynb") for p in NOTEBOOKS)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=os.path.basename)
def test_notebooks_ship_with_their_outputs(path):
    """A reader sees the curves and tables without running anything (notebooks/execute.py
    writes them), in files small enough to review."""
    notebook = nbformat.read(path, as_version=4)
    code = [cell for cell in notebook.cells if cell.cell_type == "code"]
    outputs = [o for cell in code for o in cell.outputs]
    assert all(cell.execution_count for cell in code), "every code cell ran"
    assert not [o for o in outputs if o.output_type == "error"]
    assert any("image/png" in o.get("data", {}) for o in outputs)
    assert os.path.getsize(path) < 1_500_000
