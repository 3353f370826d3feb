"""A process that has imported TensorFlow, Keras and tfsuite once and forks `python -m
tfsuite.run` runs from there (what `run_cli` uses in the TensorFlow pass).

Every fresh `python -m tfsuite.run` pays about 11 CPU-seconds here to import TensorFlow and
Keras before it reads its arguments; the TensorFlow pass starts some twenty of them. A child
forked from this process starts with those modules loaded and nothing else: TensorFlow's runtime is not
started (no eager context, no devices, no thread pools), JAX's backends neither, Keras holds
its defaults. So logical devices, mixed precision, op determinism and XLA flags are set by the
child as in a new process, and its exit code, signals, files and the output of native
libraries on file descriptors 1 and 2 are a real process's.

Protocol (one request at a time, over this process's stdin and stdout): a JSON line
{"args", "cwd", "env", "stdout", "stderr"} -> {"pid": PID}, then {"status": EXIT_CODE} once
the child ended (negative: killed by that signal).
"""

import atexit
import json
import os
import runpy
import sys
import traceback


def _child(request):
    os.chdir(request["cwd"])
    os.environ.clear()
    os.environ.update(request["env"])
    for fd, path in ((1, request["stdout"]), (2, request["stderr"])):
        target = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        os.dup2(target, fd)
        os.close(target)
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    os.close(null)
    sys.argv = [os.path.join(os.path.dirname(sys.modules["tfsuite"].__file__), "run.py"),
                *request["args"]]
    code = 0
    try:
        runpy.run_module("tfsuite.run", run_name="__main__", alter_sys=True)
    except SystemExit as e:  # as Python: None is 0, a message is printed and is 1
        code = 0 if e.code is None else e.code
        if not isinstance(code, int):
            print(code, file=sys.stderr)
            code = 1
    except BaseException:  # what Python prints for an uncaught exception, and its exit code
        traceback.print_exc()
        code = 1
    try:
        atexit._run_exitfuncs()  # as at a normal interpreter exit
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)


def main():
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    from tfsuite.backends import import_tensorflow_quietly

    import_tensorflow_quietly()
    import keras  # noqa: F401
    import tfsuite.cli  # noqa: F401  (not tfsuite.run: `-m` runs it as __main__, unimported)

    print(json.dumps({"ready": keras.backend.backend()}), flush=True)
    for line in sys.stdin:
        request = json.loads(line)
        sys.stdout.flush()
        sys.stderr.flush()
        pid = os.fork()
        if pid == 0:
            try:
                _child(request)
            finally:
                os._exit(1)  # never back into this loop
        print(json.dumps({"pid": pid}), flush=True)
        _, status = os.waitpid(pid, 0)
        print(json.dumps({"status": os.waitstatus_to_exitcode(status)}), flush=True)


if __name__ == "__main__":
    main()
