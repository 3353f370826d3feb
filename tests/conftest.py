"""Shared fixtures: real image folders written with PIL, run directories, the CLI.

Two ways to drive the CLI:
- `run_cli` starts `python -m tfsuite.run` in a fresh process (7-15 s each here: Python,
  TensorFlow and Keras start again; in the TensorFlow pass it is forked from a process that
  imported them once, `tests/zygote.py`). Runs that set process-wide state go this way (logical
  devices, mixed precision, op determinism, another Keras backend), as do the checks of
  what a real process prints and returns.
- `call_cli` calls the same `tfsuite.run.main` in this process (no start-up cost): for
  bad input, for commands that read a run (evaluate, predict, export, compress) and for
  short single-device float32 trainings.

`trained_run` trains a run once per test session, whichever xdist worker asks first; the
others wait for it and read the same folder. Tests that change a run take `copy_run`.
"""

import contextlib
import hashlib
import io
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile

import numpy as np
import pytest
from filelock import FileLock
from PIL import Image

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

# XLA's LLVM optimizations take most of what compiling costs on the CPU: JAX compiles every
# step, and op by op each operation it runs outside one. The suite's models are tiny, so
# their steps gain little from optimized machine code; at level 0 the same programs compile
# in about half the time (the JAX pass: 600 -> 470 s, tests/README.md).
_XLA_FLAGS = os.environ.get("XLA_FLAGS", "")
if "--xla_backend_optimization_level" not in _XLA_FLAGS:  # a level the caller set stays
    os.environ["XLA_FLAGS"] = f"{_XLA_FLAGS} --xla_backend_optimization_level=0".strip()

# One JAX compilation cache for the test session: every xdist worker and every process the
# tests start inherit it (set before any of them imports JAX). Many tests compile the same
# programs (the MLP's train step, the tiny T5, the DQN update), and XLA compilation is a
# large part of what a JAX test costs on 2 cores. The pytest process that starts the
# workers makes it and removes it at the end.
_OWN_JAX_CACHE = None
if "JAX_COMPILATION_CACHE_DIR" not in os.environ and not os.environ.get("PYTEST_XDIST_WORKER"):
    _OWN_JAX_CACHE = tempfile.mkdtemp(prefix="tfsuite-tests-jax-cache-")
    os.environ["JAX_COMPILATION_CACHE_DIR"] = _OWN_JAX_CACHE
    os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0")

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _shape_image(kind, size, rng):
    """A learnable picture: class 0 a bright square, class 1 a bright disc, on noise."""
    image = rng.integers(0, 60, (size, size, 3)).astype(np.uint8)
    yy, xx = np.mgrid[:size, :size]
    c = size // 2 + rng.integers(-3, 4, 2)
    if kind == 0:
        mask = (abs(yy - c[0]) < size // 4) & (abs(xx - c[1]) < size // 4)
    else:
        mask = (yy - c[0]) ** 2 + (xx - c[1]) ** 2 < (size // 4) ** 2 // 2
    image[mask] = [230, 200, 40] if kind == 0 else [40, 200, 230]
    return image


def write_messy_folder(root, per_class=24, seed=0):
    """A real-world-looking folder: mixed formats, modes, case, nesting, junk, broken files.

    Returns (root, number of good images, number of files that must be skipped).
    """
    rng = np.random.default_rng(seed)
    good = 0
    for label, name in enumerate(["squares", "discs"]):
        folder = os.path.join(root, name)
        os.makedirs(os.path.join(folder, "nested", "deeper"), exist_ok=True)
        for i in range(per_class):
            array = _shape_image(label, int(rng.integers(28, 48)), rng)
            picture = Image.fromarray(array)
            variant = i % 11
            sub = os.path.join(folder, "nested", "deeper") if i % 5 == 0 else folder
            if variant == 0:
                picture.save(os.path.join(sub, f"img {i} ü.PNG"))
            elif variant == 1:
                picture.convert("L").save(os.path.join(sub, f"gray_{i}.jpg"), quality=90)
            elif variant == 2:
                picture.convert("RGBA").save(os.path.join(sub, f"alpha_{i}.png"))
            elif variant == 3:
                picture.convert("P").save(os.path.join(sub, f"palette_{i}.gif"))
            elif variant == 4:
                picture.save(os.path.join(sub, f"bitmap_{i}.BMP"))
            elif variant == 5:
                picture.convert("CMYK").save(os.path.join(sub, f"cmyk_{i}.jpeg"), quality=90)
            elif variant == 6:
                deep = (np.asarray(picture.convert("L"), dtype=np.uint16) * 257)
                Image.fromarray(deep).save(os.path.join(sub, f"sixteen_bit_{i}.png"))
            elif variant == 7:
                picture.save(os.path.join(sub, f"really_a_tiff_{i}.png"), format="TIFF")
            elif variant == 8:
                picture.convert("1").save(os.path.join(sub, f"one_bit_{i}.bmp"))
            elif variant == 9:
                picture.convert("P").save(os.path.join(sub, f"palette_{i}.bmp"))
            else:
                picture.save(os.path.join(sub, f"photo_{i}.JPG"), quality=85)
            good += 1
        # Junk that must be skipped and counted, never fatal.
        open(os.path.join(folder, "empty.jpg"), "wb").close()
        with open(os.path.join(folder, "notes.txt"), "w") as f:
            f.write("not an image")
        with open(os.path.join(folder, "fake.png"), "w") as f:
            f.write("this is text with a png name")
        with open(_first_jpeg(folder), "rb") as f:
            data = f.read()
        with open(os.path.join(folder, "truncated.jpg"), "wb") as f:
            f.write(data[: len(data) // 3])
    with open(os.path.join(root, "README.txt"), "w") as f:  # stray file at the top level
        f.write("dataset notes")
    os.makedirs(os.path.join(root, ".hidden_cache"), exist_ok=True)
    return root, good, 2 * 4


def _first_jpeg(folder):
    for dirpath, _, files in os.walk(folder):
        for name in sorted(files):
            if name.lower().endswith((".jpg",)) and os.path.getsize(os.path.join(dirpath, name)):
                return os.path.join(dirpath, name)
    raise FileNotFoundError(folder)


@pytest.fixture(scope="session")
def messy_folder(tmp_path_factory):
    return write_messy_folder(str(tmp_path_factory.mktemp("messy")))


def tree_hashes(folder):
    """{relative path: sha256} of every file under `folder` (to show nothing changed)."""
    hashes = {}
    for root, _, names in os.walk(folder):
        for name in names:
            path = os.path.join(root, name)
            with open(path, "rb") as f:
                hashes[os.path.relpath(path, folder)] = hashlib.sha256(f.read()).hexdigest()
    return hashes


def run_cli(*args, cwd=None, timeout=600, env=None):
    """Runs `python -m tfsuite.run ARGS` in a fresh process; returns CompletedProcess.

    In the TensorFlow pass the process is forked from a `tests/zygote.py` process that
    imported TensorFlow, Keras and tfsuite once (a one-epoch MLP run: 15.3 CPU-s as a new
    interpreter, 4.2 forked), unless the run would import them otherwise: another backend
    named in `env` or the arguments, or an environment variable read at import (KERAS_*,
    JAX_*, PYTHON*, ...). Then, and in the JAX pass (five such runs: no gain), it is a new
    interpreter.
    """
    full_env = dict(os.environ)
    full_env["PYTHONPATH"] = REPO + os.pathsep + full_env.get("PYTHONPATH", "")
    full_env.update(env or {})
    args = [str(a) for a in args]
    if _forkable(args, env or {}):
        return _zygote().run(args, cwd or os.getcwd(), full_env, timeout)
    return subprocess.run([sys.executable, "-m", "tfsuite.run", *args], cwd=cwd,
                          capture_output=True, text=True, timeout=timeout, env=full_env)


_IMPORT_TIME_VARIABLES = ("KERAS_", "JAX_", "PYTHON", "TF_ENABLE_ONEDNN_OPTS",
                          "TF_USE_LEGACY_KERAS")


def _forkable(args, env):
    if os.environ.get("KERAS_BACKEND", "tensorflow") != "tensorflow" or not hasattr(os, "fork"):
        return False
    if any(key.startswith(_IMPORT_TIME_VARIABLES) for key in env):
        return False
    return not any("backend" in arg for arg in args)  # runtime.backend=..., launch --backend


class _Zygote:
    def __init__(self):
        env = dict(os.environ)
        env["PYTHONPATH"] = REPO + os.pathsep + env.get("PYTHONPATH", "")
        self.process = subprocess.Popen([sys.executable, os.path.join(REPO, "tests", "zygote.py")],
                                        stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                        stderr=subprocess.DEVNULL, text=True, env=env, cwd=REPO)
        self._read()  # {"ready": backend}

    def _read(self, timeout=None):
        import select

        if timeout is not None and not select.select([self.process.stdout], [], [], timeout)[0]:
            return None
        line = self.process.stdout.readline()
        if not line:
            raise RuntimeError("tests/zygote.py ended")
        return json.loads(line)

    def run(self, args, cwd, env, timeout):
        command = [sys.executable, "-m", "tfsuite.run", *args]  # what the child stands for
        with tempfile.TemporaryDirectory(prefix="tfsuite-run-cli-") as folder:
            out, err = os.path.join(folder, "stdout"), os.path.join(folder, "stderr")
            self.process.stdin.write(json.dumps({"args": args, "cwd": str(cwd), "env": env,
                                                 "stdout": out, "stderr": err}) + "\n")
            self.process.stdin.flush()
            pid = self._read()["pid"]
            reply = self._read(timeout)
            if reply is None:  # as subprocess.run: the child is killed, then the error
                os.kill(pid, signal.SIGKILL)
                self._read()
                raise subprocess.TimeoutExpired(command, timeout)
            with open(out, errors="replace") as f_out, open(err, errors="replace") as f_err:
                return subprocess.CompletedProcess(command, reply["status"], f_out.read(),
                                                   f_err.read())

    def close(self):
        self.process.stdin.close()
        self.process.wait(timeout=60)


_ZYGOTES = []


def _zygote():
    if not _ZYGOTES or _ZYGOTES[0].process.poll() is not None:
        _ZYGOTES[:] = [_Zygote()]
    return _ZYGOTES[0]


def assert_user_error(result, *fragments):
    """A CLI run refused bad input: exit 2, one `error:` line holding `fragments`, no
    traceback."""
    assert result.returncode == 2, (result.stdout, result.stderr)
    assert "Traceback" not in result.stderr
    error_lines = [l for l in result.stderr.splitlines() if l.startswith("error:")]
    assert len(error_lines) == 1, result.stderr
    for fragment in fragments:
        assert fragment in result.stderr, result.stderr


def call_cli(*args, cwd=None, env=None):
    """Runs `tfsuite.run.main(ARGS)` in this process, as `python -m tfsuite.run ARGS` would;
    returns a CompletedProcess with the exit code and what it printed.

    `env` adds environment variables for the call; a KERAS_BACKEND in it must be the
    backend Keras already runs on here (another one needs `run_cli`). The working
    directory, environment and SIGTERM handler are restored afterwards.
    """
    import keras

    if (env or {}).get("KERAS_BACKEND", keras.backend.backend()) != keras.backend.backend():
        raise ValueError("call_cli runs on this process's Keras backend; use run_cli")
    from tfsuite import run

    stdout, stderr = io.StringIO(), io.StringIO()
    old_cwd, old_env = os.getcwd(), dict(os.environ)
    old_handler = signal.getsignal(signal.SIGTERM)
    try:
        if cwd is not None:
            os.chdir(cwd)
        os.environ.update(env or {})
        with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
            try:
                code = run.main([str(a) for a in args])
            except SystemExit as e:  # argparse's own errors (exit 2) and --help (0)
                code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
    finally:
        os.chdir(old_cwd)
        os.environ.clear()
        os.environ.update(old_env)
        signal.signal(signal.SIGTERM, old_handler)
    return subprocess.CompletedProcess(list(args), code, stdout.getvalue(), stderr.getvalue())


def _shared_folder(tmp_path_factory):
    """The base folder every xdist worker of this test session sees (their parent)."""
    base = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        base = base.parent
    folder = base / "trained_runs"
    folder.mkdir(exist_ok=True)
    return folder


def trained_run(tmp_path_factory, name, *args, prepare=None):
    """Runs `python -m tfsuite.run ARGS` in `<shared>/NAME/` once per test session.

    Every later call with the same NAME (from any worker) waits for that one and gets its
    result: (work folder, CompletedProcess). A failed run is not retried: each test that
    uses it fails with its stderr. The folder is shared: read it, or `copy_run` it.

    Args:
        name: the run's folder name; one NAME must always mean the same ARGS.
        args: the CLI arguments (run in the work folder, so `runs/...` lands there).
        prepare: called with the work folder before the run (to write its data there).

    A module fixture alone is not enough: xdist runs other files' tests in between a
    group's, and pytest then tears the module fixture down and trains it again.
    """
    shared = _shared_folder(tmp_path_factory)
    work, record = shared / name, shared / f"{name}.json"
    with FileLock(str(shared / f"{name}.lock")):
        if not record.exists():
            if work.exists():
                shutil.rmtree(work)
            work.mkdir()
            if prepare is not None:
                prepare(str(work))
            result = run_cli(*args, cwd=str(work))
            record.write_text(json.dumps({"args": list(args), "returncode": result.returncode,
                                          "stdout": result.stdout, "stderr": result.stderr}))
        saved = json.loads(record.read_text())
    if saved["args"] != list(args):
        raise ValueError(f"trained_run {name!r} was first asked with other arguments: "
                         f"{saved['args']} != {list(args)}")
    return str(work), subprocess.CompletedProcess(saved["args"], saved["returncode"],
                                                  saved["stdout"], saved["stderr"])


def copy_run(run_dir, destination):
    """A private copy of a shared run (for tests that compress, export or break it)."""
    shutil.copytree(run_dir, destination, symlinks=True)
    return str(destination)


@pytest.fixture(scope="session")
def default_job(tmp_path_factory):
    """The README's first command, `python -m tfsuite.run`, run once for the whole session:
    the digits CNN (30 epochs), pruned and quantized, then exported in every format.

    Returns (work folder, run dir, CompletedProcess). The image-classification tests that
    need a trained digits CNN read this run; those that compress or export it again work on
    a `copy_run`.
    """
    work, result = trained_run(tmp_path_factory, "default_job")
    return work, os.path.join(work, "runs", "digits"), result


# How `pytest -n 3 --dist loadgroup` (the README's command) shares the tests out. xdist
# hands out groups with the most tests first and single tests last. A file whose tests share
# a trained run (a module fixture) is one group, so the run is built once; every reader of
# the default job is in one group, so no two workers both wait for it. All other
# tests go out one by one, and fill in around the long groups to the end: the slowest of
# them first, so that the run does not end on one worker's long notebook.
GROUPS = {"default_job": ("tests/test_default_job.py", "tests/test_cli.py",
                          "tests/compression/test_stage.py", "tests/compression/test_bridge.py",
                          "tests/export/test_stage.py", "tests/export/test_errors.py"),
          "dqn_run": ("tests/rl/test_cli.py",),
          "translation_run": ("tests/translation/test_cli.py",),
          "number_tokenizer": ("tests/translation/test_corpus_and_tokenizer.py",),
          "movielens_run": ("tests/recommend/test_cli.py",),
          "python_without_tensorflow": ("tests/test_without_tensorflow.py",)}
SLOW_FIRST = ("tests/test_notebooks.py", "tests/training/test_distributed.py",
              "tests/export/test_backends.py", "tests/training/test_trainer.py",
              "tests/translation/test_preset.py", "tests/training/test_runtime.py",
              "tests/reliability/test_kill_loop.py", "tests/reliability/test_disk_full.py",
              "tests/reliability/test_resume.py")


def _path(item):
    return os.path.relpath(str(item.path), REPO).replace(os.sep, "/")


@pytest.hookimpl(tryfirst=True)  # before xdist's, which reads the groups into the node ids
def pytest_collection_modifyitems(config, items):
    group_of = {path: group for group, paths in GROUPS.items() for path in paths}
    for item in items:
        group = group_of.get(_path(item))
        if group:
            item.add_marker(pytest.mark.xdist_group(group))
    items.sort(key=lambda item: _path(item) not in SLOW_FIRST)  # stable: files keep order


def pytest_unconfigure(config):
    for zygote in _ZYGOTES:
        zygote.close()
    if _OWN_JAX_CACHE:
        shutil.rmtree(_OWN_JAX_CACHE, ignore_errors=True)
