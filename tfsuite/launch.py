"""`launch --workers N -- COMMAND`: N local workers of one multi-worker job.

Each worker is `python -m tfsuite.run COMMAND` with its own TF_CONFIG (or, with
`--backend jax`, Keras' JAX multi-process variables) on loopback ports. Their
output is streamed with a `[worker i]` prefix; when one fails the others are
stopped and the launcher exits with the failed worker's code. On several
machines, set the same variables by hand on each (README: Scaling out).
"""

import os
import signal
import socket
import subprocess
import sys
import threading
import time

from tfsuite.errors import user_error
from tfsuite.training.cluster import worker_environment

STOP_GRACE_SECONDS = 10


def free_ports(count, first=None):
    """`count` loopback ports: `first`, `first + 1`, ... or ones the system picks."""
    if first is not None:
        return list(range(first, first + count))
    sockets = []
    try:
        for _ in range(count):
            s = socket.socket()
            s.bind(("127.0.0.1", 0))
            sockets.append(s)
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


def pin_run_dir(command):
    """`train` without --run-dir: every worker must agree on one folder, so the launcher
    picks it (a new one, or the unfinished run it resumes) and passes it to all."""
    from tfsuite.config import load_config
    from tfsuite.run import build_parser
    from tfsuite.run_dir import resolve_run_dir

    args = build_parser().parse_args(command)
    if args.command != "train" or args.run_dir:
        return command
    config = load_config(args.experiment, args.config, args.overrides)
    run_dir, _ = resolve_run_dir(config)
    return [*command, "--run-dir", run_dir]


def _stream(process, prefix, out):
    for line in iter(process.stdout.readline, ""):
        out.write(f"{prefix}{line}")
        out.flush()


def _stop(processes):
    for process in processes:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
    deadline = time.time() + STOP_GRACE_SECONDS
    for process in processes:
        try:
            process.wait(timeout=max(0.1, deadline - time.time()))
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _exit_code(returncode):
    return 128 - returncode if returncode < 0 else returncode  # a signal: 128 + its number


def launch(num_workers, command, backend="tensorflow", port=None, out=None):
    """Runs `command` as `num_workers` local workers; returns the job's exit code.

    Args:
        num_workers: how many worker processes (>= 1).
        command: the tfsuite command line, e.g. `["train", "digits"]`.
        backend: "tensorflow" (TF_CONFIG, MultiWorkerMirroredStrategy) or "jax"
            (keras.distribution over every worker's devices). Defaults to "tensorflow".
        port: the first of the loopback ports; the system picks free ones when None.
        out: where the prefixed output goes. Defaults to `sys.stdout`.
    """
    out = out or sys.stdout
    if num_workers < 1:
        raise user_error("--workers must be positive", "an int >= 1",
                         f"workers={num_workers}")
    if not command:
        raise user_error("No command to launch", "a tfsuite command after `--`, e.g. "
                         "`launch --workers 2 -- train digits`", "command=[]")
    command = pin_run_dir(command)
    ports = free_ports(1 if backend == "jax" else num_workers, port)
    if backend == "jax":
        addresses = [f"127.0.0.1:{ports[0]}"] * num_workers  # the coordinator, for each
    else:
        addresses = [f"127.0.0.1:{p}" for p in ports]
    print(f"tfsuite launch: {num_workers} workers ({backend}) on "
          f"{', '.join(sorted(set(addresses)))}: {' '.join(command)}", file=out, flush=True)
    processes, threads = [], []
    for index in range(num_workers):
        env = {**os.environ, "KERAS_BACKEND": backend, "PYTHONUNBUFFERED": "1",
               **worker_environment(backend, index, addresses)}
        process = subprocess.Popen([sys.executable, "-m", "tfsuite.run", *command], env=env,
                                   stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                   text=True, bufsize=1)
        processes.append(process)
        print(f"tfsuite launch: worker {index} is pid {process.pid}", file=out, flush=True)
        threads.append(threading.Thread(target=_stream, args=(process, f"[worker {index}] ",
                                                              out), daemon=True))
        threads[-1].start()
    def terminated(signum, frame):  # the launcher stopped: no orphaned workers
        _stop(processes)
        raise SystemExit(128 + signum)

    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, terminated)
    try:
        failed = _wait(processes)
    except KeyboardInterrupt:
        _stop(processes)
        raise
    if failed is not None:
        index, code = failed
        print(f"tfsuite launch: worker {index} failed (exit code {code}); stopping the "
              "others. Run the same command again to resume after the last completed "
              "epoch.", file=out, flush=True)
        _stop(processes)
    for thread in threads:
        thread.join(timeout=5)
    return 0 if failed is None else _exit_code(failed[1])


def _wait(processes):
    """Waits for every worker; returns (index, exit code) of the first that failed."""
    while True:
        running = False
        for index, process in enumerate(processes):
            code = process.poll()
            if code is None:
                running = True
            elif code != 0:
                return index, code
        if not running:
            return None
        time.sleep(0.2)
