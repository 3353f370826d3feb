"""Run directories: where a run goes, whether it resumes, and what is never overwritten."""

import os

from tfsuite.config import RUN_CONFIG, read_run_config
from tfsuite.errors import UserError, user_error
from tfsuite.io import read_json

# The run directory's layout: every module names its files through these.
CONFIG = RUN_CONFIG  # written first: the resolved config
SUMMARY = "summary.json"  # written last: status "completed", metrics, paths
MODEL = "model.keras"
CHECKPOINTS = "checkpoints"
STATE_FILE = "state.json"  # in RUN_DIR/checkpoints, written after every epoch
HISTORY = "history.csv"
CURVES = "training_curves.png"
EVALUATION = "evaluation"
COMPRESS_DIR = "compress"  # RUN_DIR/compress/<method>/ (model, report.json, comparison.png)
COMPRESS_REPORT = "report.json"
EXPORT_REPORT = "export.json"  # the latest export (also in each exported version folder)
# What every run writes before its first epoch ends; a folder holding only these (and its
# task's `Task.run_files`) is an abandoned start that may begin again. Anything else in it
# is the user's.
RUN_FILES = {CONFIG, CHECKPOINTS, "logs", HISTORY}


def compress_dir(run_dir, method):
    """RUN_DIR/compress/<method>: one compression method's output."""
    return os.path.join(run_dir, COMPRESS_DIR, method)


def read_state(checkpoint_dir):
    """The saved training state, or None when there is no complete epoch yet."""
    path = os.path.join(checkpoint_dir, STATE_FILE)
    if not os.path.isfile(path):
        return None
    try:
        state = read_json(path)
    except (ValueError, OSError) as e:  # empty or cut short (JSONDecodeError), not UTF-8
        state = e
    if not isinstance(state, dict):
        raise user_error("The run's training state is damaged", f"a complete {STATE_FILE} "
                         "(tfsuite writes it after every epoch, atomically)",
                         f"{path} ({type(state).__name__}: {str(state)[:120]})",
                         "It was changed outside tfsuite (or cut by a full disk). Restore it "
                         "from a copy, or move the run folder aside and train again; "
                         "nothing was changed.")
    if not os.path.isfile(os.path.join(checkpoint_dir, state.get("weights", ""))):
        return None
    return state


def differences(old, new, prefix=""):
    """`key: old -> new` lines for the leaves that differ between two nested dicts."""
    keys = []
    for key in sorted(set(old) | set(new)):
        a, b = old.get(key), new.get(key)
        if isinstance(a, dict) and isinstance(b, dict):
            keys.extend(differences(a, b, prefix + key + "."))
        elif a != b:
            keys.append(f"{prefix}{key}: {a!r} -> {b!r}")
    return keys


def is_completed(run_dir):
    path = os.path.join(run_dir, SUMMARY)
    return os.path.isfile(path) and read_json(path).get("status") == "completed"


def resolve_run_dir(config, run_dir=None, task_files=()):
    """Chooses the run directory without writing anything; returns (run_dir, resuming).

    Without `run_dir`, runs go to `runs/<experiment>`, or to the first of
    `runs/<experiment>-2`, `-3`, ... that is free, unfinished with the same
    config (it resumes), or abandoned before its first epoch: completed runs
    and unfinished runs with other settings are stepped over, never touched.
    An explicit `run_dir` is used as given. An unfinished run with the same
    config and at least one completed epoch is resumed; one that stopped before
    its first epoch starts again. Nothing a user has is overwritten: a
    completed run, a run with another config, or a folder that is not a run is
    an error.
    """
    if run_dir is None:
        base = os.path.join("runs", config.name)
        for n in range(1, 10000):
            candidate = base if n == 1 else f"{base}-{n}"
            try:
                return resolve_run_dir(config, candidate, task_files)
            except UserError:
                continue  # someone's finished or different run: leave it, try the next
    _check_path(run_dir)
    if os.path.exists(run_dir) and not os.path.isdir(run_dir):
        raise user_error("The run directory is a file", "a folder (new, or an unfinished run)",
                         f"run_dir={run_dir!r}", "Choose another --run-dir.")
    if not (os.path.isdir(run_dir) and os.listdir(run_dir)):
        return run_dir, False
    if not os.path.isfile(os.path.join(run_dir, "config.yaml")):
        raise user_error("The run directory exists and is not a tfsuite run",
                         "a new or empty folder", f"run_dir={run_dir!r}",
                         "Choose another --run-dir; nothing was changed.")
    if is_completed(run_dir):
        raise user_error("The run directory holds a completed run", "a new folder",
                         f"run_dir={run_dir!r}", "Choose another --run-dir (or leave it "
                         "out to get a fresh one); the finished run was left as it is.")
    if read_state(os.path.join(run_dir, "checkpoints")) is None:
        if not os.path.isdir(os.path.join(run_dir, "checkpoints")) or \
                set(os.listdir(run_dir)) - RUN_FILES - set(task_files):
            raise user_error("The run directory exists and is not a tfsuite run",
                             "a new or empty folder", f"run_dir={run_dir!r}",
                             "Choose another --run-dir; nothing was changed.")
        return run_dir, False  # stopped before finishing an epoch: nothing to resume
    changed = differences(read_run_config(run_dir).to_dict(), config.to_dict())
    if changed:
        raise user_error("The unfinished run in this directory used another config",
                         "the same settings to resume it", f"run_dir={run_dir!r} with "
                         + "; ".join(changed), "Resume with the original settings, or "
                         "choose another --run-dir.")
    return run_dir, True


def _check_path(run_dir):
    """A run directory path that cannot be a folder: a broken or looping symlink, or a path
    under a file."""
    if os.path.islink(run_dir) and not os.path.exists(run_dir):
        raise user_error("The run directory is a broken symbolic link (or a loop of them)",
                         "a folder, or a link to one", f"run_dir={run_dir!r} -> "
                         f"{os.readlink(run_dir)!r}", "Choose another --run-dir, or fix the "
                         "link.")
    parent = os.path.dirname(os.path.abspath(run_dir))
    while parent and not os.path.exists(parent) and parent != os.path.dirname(parent):
        parent = os.path.dirname(parent)
    if os.path.exists(parent) and not os.path.isdir(parent):
        raise user_error("The run directory would be inside a file", "a path under folders",
                         f"run_dir={run_dir!r} ({parent} is a file)", "Choose another "
                         "--run-dir.")


def start_run_dir(run_dir, resuming):
    """Creates the folder; a fresh start drops the CSV log of an attempt that never
    finished an epoch (tfsuite's own file), so the history starts clean."""
    try:
        os.makedirs(os.path.join(run_dir, CHECKPOINTS), exist_ok=True)  # marks it as a run
    except OSError as e:  # read-only or special file systems (/proc), no permission, ...
        raise user_error("The run directory cannot be created", "a folder this user can "
                         "write", f"run_dir={run_dir!r} ({e.strerror or e})",
                         "Choose another --run-dir.") from None
    history = os.path.join(run_dir, "history.csv")
    if not resuming and os.path.isfile(history):
        os.remove(history)
