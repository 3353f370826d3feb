"""Run directories: where a run goes, whether it resumes, who may write it, and what is
never overwritten."""

import contextlib
import fcntl
import functools
import json
import logging
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
DIVERGED = "diverged.json"  # in RUN_DIR/checkpoints: where the loss became NaN, if it did
DIAGNOSIS = "diagnosis"  # RUN_DIR/diagnosis/: what `diagnose` wrote
HISTORY = "history.csv"
CURVES = "training_curves.png"
EVALUATION = "evaluation"
COMPRESS_DIR = "compress"  # RUN_DIR/compress/<method>/ (model, report.json, comparison.png)
COMPRESS_REPORT = "report.json"
EXPORT_REPORT = "export.json"  # the latest export (also in each exported version folder)
# What every run writes before its first epoch ends; a folder holding only these (and its
# task's `Task.run_files`) is an abandoned start that may begin again. Anything else in it
# is the user's.
RUN_FILES = {CONFIG, CHECKPOINTS, "logs", HISTORY, DIAGNOSIS}  # (a diverged start diagnosed)
LOCK = ".tfsuite.lock"  # held (fcntl) by the process writing the run; names that process
# Run directories a parent process holds for the child it waits on (a TensorFlow-backend
# compression or export): the child writes them under its parent's lock.
HELD_ENV = "TFSUITE_HELD_RUN_DIRS"
# `resolve_run_dir`'s answer for a run whose training finished but whose compression or
# export stages did not (it was interrupted): the same command finishes them.
FINISH_STAGES = "finish stages"
# Its answer for a completed run asked for more `train.epochs` and nothing else: training
# continues from the last epoch's checkpoint (a truthy `resuming`).
EXTEND = "extend"
logger = logging.getLogger("tfsuite")
_held = {}  # real path -> [open lock file descriptor, nesting depth, lock file]


def compress_dir(run_dir, method):
    """RUN_DIR/compress/<method>: one compression method's output."""
    return os.path.join(run_dir, COMPRESS_DIR, method)


def _read_run_json(path, what, when):
    """A JSON object tfsuite wrote atomically, or None when the file does not exist yet;
    a damaged one (empty, cut short, not UTF-8, not an object) is one clear error."""
    if not os.path.isfile(path):
        return None
    try:
        data = read_json(path)
    except (ValueError, OSError) as e:  # empty or cut short (JSONDecodeError), not UTF-8
        data = e
    if not isinstance(data, dict):
        raise user_error(f"The run's {what} is damaged", f"a complete {os.path.basename(path)}"
                         f" (tfsuite writes it {when}, atomically)", f"{path} ("
                         f"{type(data).__name__}: {str(data)[:120]})", "It was changed "
                         "outside tfsuite. Restore it from a copy, or move the run folder "
                         "aside and train again; nothing was changed.")
    return data


def read_state(checkpoint_dir):
    """The saved training state, or None when there is no complete epoch yet."""
    state = _read_run_json(os.path.join(checkpoint_dir, STATE_FILE), "training state",
                           "after every epoch")
    if state is None or not os.path.isfile(os.path.join(checkpoint_dir,
                                                        state.get("weights", ""))):
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


def read_summary(run_dir):
    """RUN_DIR/summary.json, or None before training finished."""
    return _read_run_json(os.path.join(run_dir, SUMMARY), "summary", "when training ends")


def is_completed(run_dir):
    return (read_summary(run_dir) or {}).get("status") == "completed"


EXTENDING = "extending"  # summary.json's status while a completed run trains more epochs:
# interrupted there, the run is an unfinished one (the same command resumes it).


def pending_stages(config, run_dir):
    """The stages chained after training (`compress.methods`, then `export`) that a finished
    run has not done: summary.json records each compression, export.json the export."""
    done = (read_summary(run_dir) or {}).get("compress", {})
    return ([m for m in config.compress.methods if m not in done]
            + (["export"] if config.export.formats
               and not os.path.isfile(os.path.join(run_dir, EXPORT_REPORT)) else []))


def failed_stage(run_dir):
    """The chained stage that failed with an error (not a kill) the last time, or None."""
    return (read_summary(run_dir) or {}).get("failed_stage")


def _extension_refused(old, new, run_dir):
    """Why the completed run (config `old`) cannot be extended to `new`: None when it can
    (`new` is `old` with only a larger `train.epochs`, and the run can continue), "" when
    `new` asks for more than an extension, else the reason."""
    import dataclasses

    same = dataclasses.replace(new, train=dataclasses.replace(
        new.train, epochs=old.train.epochs)).to_dict() == old.to_dict()
    if not same or new.train.epochs <= old.train.epochs:
        return ""
    if read_state(os.path.join(run_dir, CHECKPOINTS)) is None:
        return "it keeps no checkpoint to continue from (a DQN run trains again)"
    if (read_summary(run_dir) or {}).get("early_stopped"):
        return "it stopped early: more epochs would not train"
    if old.train.fine_tune_epochs:
        return "its fine-tuning phase would come before the new epochs"
    return None


def resolve_run_dir(config, run_dir=None, task_files=(), held_ok=False, extend_ok=True):
    """Chooses the run directory without writing anything; returns (run_dir, resuming):
    resuming is False (a new run), True (resume training), `FINISH_STAGES` or `EXTEND`.

    Without `run_dir`, runs go to `runs/<experiment>`, or to the first of
    `runs/<experiment>-2`, `-3`, ... that is free, unfinished with the same
    config (it resumes), or abandoned before its first epoch: completed runs
    and unfinished runs with other settings are stepped over, never touched.
    An explicit `run_dir` is used as given. An unfinished run with the same
    config and at least one completed epoch is resumed; one that stopped before
    its first epoch starts again; a finished one with the same config whose
    compression or export did not finish gets those stages; a finished one given
    as `run_dir` (`extend_ok`) with a larger train.epochs and nothing else changed
    trains on from its last epoch. A folder another
    process holds (`hold`) is refused, unless `held_ok` (a worker of a multi-worker
    job: its chief holds the folder). Nothing a user has is overwritten: a
    completed run, a run with another config, or a folder that is not a run is
    an error.
    """
    if run_dir is None:
        base = os.path.join("runs", config.name)
        for n in range(1, 10000):
            candidate = base if n == 1 else f"{base}-{n}"
            try:
                chosen = resolve_run_dir(config, candidate, task_files, held_ok,
                                         extend_ok=False)
            except UserError:
                continue  # someone's finished or different run: leave it, try the next
            # A stage that failed with an error is retried with --run-dir, not by default
            # (it would fail again, and no new run would ever start).
            if chosen[1] != FINISH_STAGES or not failed_stage(candidate):
                return chosen
    _check_path(run_dir)
    if os.path.exists(run_dir) and not os.path.isdir(run_dir):
        raise user_error("The run directory is a file", "a folder (new, or an unfinished run)",
                         f"run_dir={run_dir!r}", "Choose another --run-dir.")
    if os.path.isdir(run_dir) and not held_ok:
        refuse_if_held(run_dir)
    if not (os.path.isdir(run_dir) and _entries(run_dir)):
        return run_dir, False
    if not os.path.isfile(os.path.join(run_dir, "config.yaml")):
        raise user_error("The run directory exists and is not a tfsuite run",
                         "a new or empty folder", f"run_dir={run_dir!r}",
                         "Choose another --run-dir; nothing was changed.")
    if is_completed(run_dir):
        old = read_run_config(run_dir)
        changed = differences(old.to_dict(), config.to_dict())
        if pending_stages(config, run_dir) and not changed:
            return run_dir, FINISH_STAGES
        refused = _extension_refused(old, config, run_dir) if extend_ok else ""
        if refused is None:
            return run_dir, EXTEND
        raise user_error("The run directory holds a completed run", "a new folder, or the "
                         "run's own config with a larger train.epochs (to extend it)",
                         f"run_dir={run_dir!r}"
                         + (f" with {'; '.join(changed)}" if changed else "")
                         + (f", which cannot be extended: {refused}" if refused else ""),
                         "Choose another --run-dir (or leave it out to get a fresh one); the "
                         "finished run was left as it is.")
    if read_state(os.path.join(run_dir, "checkpoints")) is None:
        if not os.path.isdir(os.path.join(run_dir, "checkpoints")) or \
                _entries(run_dir) - RUN_FILES - set(task_files):
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


def _entries(run_dir):
    """What a run directory holds, less its lock and the temporary files of tfsuite's own
    atomic writes (a kill can leave one)."""
    ours = {LOCK, *(name + ".tmp" for name in RUN_FILES)}
    return set(os.listdir(run_dir)) - ours


def holder(run_dir):
    """The pid (text) of another process that holds the run directory's lock, or None."""
    key = os.path.realpath(run_dir)
    if key in _held or key in _inherited():
        return None
    try:
        fd = os.open(os.path.join(run_dir, LOCK), os.O_RDONLY)
    except OSError:
        return None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return os.read(fd, 64).decode("ascii", "replace").strip() or "unknown"
        except OSError:  # a file system without flock: see `_lock`
            return None
        fcntl.flock(fd, fcntl.LOCK_UN)
        return None
    finally:
        os.close(fd)


def _inherited():
    """Run directories the parent process holds for this one (`HELD_ENV`, JSON: paths may
    hold any character)."""
    try:
        return set(json.loads(os.environ.get(HELD_ENV) or "[]"))
    except ValueError:
        return set()


class RunDirInUse(UserError):
    """Another process holds the run directory."""


def refuse_if_held(run_dir):
    pid = holder(run_dir)
    if pid is not None:
        raise in_use_error(run_dir, f"process {pid}", f" (held by pid {pid})")


def in_use_error(run_dir, who, detail=""):
    return RunDirInUse(f"The run directory is in use by another tfsuite process. Expected a "
                       f"run directory no other process is writing. Received: "
                       f"run_dir={run_dir!r}{detail}. Wait for {who} to finish (or stop "
                       "it), or choose another run directory; nothing was changed.")


@contextlib.contextmanager
def hold(run_dir):
    """Holds the run directory's lock (an fcntl advisory lock on RUN_DIR/.tfsuite.lock, released
    on exit, even a kill -9) while the block writes it; nested holds in one process are
    one. A second process gets one clear error naming the pid that holds it."""
    key = os.path.realpath(run_dir)
    if key in _held or key in _inherited():
        _held.setdefault(key, [None, 0, None])[1] += 1
        try:
            yield
        finally:
            _release(key)
        return
    fd = _lock(run_dir)
    with contextlib.suppress(OSError):  # a full disk: the stage then says so itself
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
    _held[key] = [fd, 1, os.path.join(run_dir, LOCK)]
    try:
        yield
    finally:
        _release(key)


def _lock(run_dir):
    """An open, exclusively locked descriptor of the lock file. The file is removed when the
    lock is released (a folder keeps no trace of a `compress` it refused), so a lock taken
    on a file that was removed meanwhile is let go and taken again on the new one."""
    path = os.path.join(run_dir, LOCK)
    for _ in range(100):
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as e:
            raise user_error("The run directory cannot be written", "a folder this user can "
                             "write", f"run_dir={run_dir!r} ({e.strerror or e})",
                             "Choose another run directory, or fix its permissions.") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            refuse_if_held(run_dir)
            continue  # released in between: try again
        except OSError as e:  # no flock on this file system (some NFS mounts): go on
            logger.warning("Cannot lock %s (%s); nothing stops a second process from "
                           "writing this run at the same time.", path, e.strerror or e)
            return fd
        try:
            if os.stat(path).st_ino == os.fstat(fd).st_ino:
                return fd
        except FileNotFoundError:
            pass
        os.close(fd)
    raise in_use_error(run_dir, "other processes")


def holding(function):
    """Decorates a stage `function(run_dir, ...)` that writes the run: it holds the lock."""
    @functools.wraps(function)
    def wrapper(run_dir, *args, **kwargs):
        with hold(run_dir):
            return function(run_dir, *args, **kwargs)
    return wrapper


def _release(key):
    entry = _held[key]
    entry[1] -= 1
    if entry[1] == 0:
        del _held[key]
        if entry[0] is not None:
            with contextlib.suppress(OSError):
                os.remove(entry[2])  # while still held: see `_lock`
            os.close(entry[0])  # closing the descriptor releases the lock


def held_run_dirs():
    """The run directories this process holds, as `HELD_ENV` gives them to a child process
    it waits on."""
    return json.dumps(sorted({*_held, *_inherited()}))


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


def space_needed(run_dir, times=3):
    """About what a stage writing the run still needs: a few times its largest file."""
    sizes = [os.path.getsize(os.path.join(root, name))
             for root, _, names in os.walk(run_dir) for name in names]
    return times * max(sizes, default=0) + 2 ** 20


def make_run_dir(run_dir):
    try:
        os.makedirs(run_dir, exist_ok=True)
    except OSError as e:  # read-only or special file systems (/proc), no permission, ...
        raise user_error("The run directory cannot be created", "a folder this user can "
                         "write", f"run_dir={run_dir!r} ({e.strerror or e})",
                         "Choose another --run-dir.") from None


def start_run_dir(run_dir, resuming):
    """Creates the folder; a fresh start drops the CSV log of an attempt that never
    finished an epoch (tfsuite's own file), so the history starts clean."""
    make_run_dir(run_dir)
    os.makedirs(os.path.join(run_dir, CHECKPOINTS), exist_ok=True)  # marks it as a run
    history = os.path.join(run_dir, HISTORY)
    if not resuming and os.path.isfile(history):
        os.remove(history)
