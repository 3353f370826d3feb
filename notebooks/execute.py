"""Runs notebooks top to bottom with their own (full-size) parameters and saves them with their
outputs, so a reader sees the curves, tables and images without running anything.

Usage: python notebooks/execute.py [NOTEBOOK ...]   (default: every notebook here)

Each runs in a fresh kernel in a scratch folder (its runs and exports go there, not into the
repository). Long text outputs are cut to their last lines, so the files stay reviewable;
images are kept. A notebook that fails is left as it was, and the script exits 1.
"""

import glob
import os
import sys
import tempfile
import time

import nbformat
from nbclient import NotebookClient

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
MAX_LINES = 40  # of one text output


def trim(notebook):
    """Cuts long text outputs to their last `MAX_LINES` lines; drops execution timestamps."""
    for cell in notebook.cells:
        cell.metadata.pop("execution", None)
        for output in cell.get("outputs", []):
            if output.output_type == "stream":
                lines = output.text.splitlines(keepends=True)
                if len(lines) > MAX_LINES:
                    output.text = (f"[... {len(lines) - MAX_LINES} lines cut ...]\n"
                                   + "".join(lines[-MAX_LINES:]))
    return notebook


def execute(path):
    notebook = nbformat.read(path, as_version=4)
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="tfsuite-notebook-") as work:
        os.environ["PYTHONPATH"] = REPO + os.pathsep + os.environ.get("PYTHONPATH", "")
        NotebookClient(notebook, timeout=3600, kernel_name="python3",
                       resources={"metadata": {"path": work}}).execute()
    nbformat.write(trim(notebook), path)
    return time.perf_counter() - started


def main():
    paths = sys.argv[1:] or sorted(glob.glob(os.path.join(HERE, "*.ipynb")))
    failed = []
    for path in paths:
        try:
            seconds = execute(path)
        except Exception as e:  # the notebook's own error, shown with its cell
            failed.append(path)
            print(f"FAILED {os.path.basename(path)}: {str(e)[-2000:]}", flush=True)
        else:
            size = os.path.getsize(path) / 1e3
            print(f"{os.path.basename(path)}: {seconds:.0f} s, {size:.0f} kB", flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
