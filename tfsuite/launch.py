"""`launch --workers N -- train ...`: N local workers of one multi-worker job.

Each worker is `python -m tfsuite.run train ...` with its own TF_CONFIG (or,
on JAX, Keras' multi-process variables) on loopback ports. Their output is
streamed with a `[worker i]` prefix; when one fails the others are stopped and
the launcher exits with the failed worker's code. On several machines, set the
same variables by hand on each (README: Scaling out).
"""

import os
import random
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
    """`count` loopback ports: `first`, `first + 1`, ... or free ones below the ephemeral
    range.

    The workers bind their ports seconds after this returns (once TensorFlow is imported).
    A port the system picks (bind to 0) comes from the ephemeral range, where any process's
    outgoing connection may take it in between: another job's gRPC clients did, and the
    worker then failed with "Could not start gRPC server". Below that range only a server
    that binds the very port can take it.
    """
    if first is not None:
        return list(range(first, first + count))
    low = _ephemeral_low()
    ports = []
    while len(ports) < count:
        port = random.randrange(max(1024, low - 20000), low)
        if port not in ports and _bind_error(port) is None:
            ports.append(port)
    return ports


def _ephemeral_low():
    """The first port of the system's ephemeral range (Linux's default where unreadable)."""
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
            return int(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


def _bind_error(port):
    """The OSError of binding a loopback `port` now, or None when it is free."""
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError as e:
            return e
    return None


def check_ports(ports):
    """Every port is a valid loopback port that nothing listens on yet."""
    for port in ports:
        if not 1024 <= port <= 65535:
            raise user_error("--port is out of range", "ports in 1024-65535 (one per worker "
                             "from --port on)", f"port={port}", "Choose another --port, or "
                             "leave it out to take free ports.")
        error = _bind_error(port)
        if error is not None:
            raise user_error("A worker port is taken", "free loopback ports",
                             f"port={port} ({error.strerror})", "Choose another --port, or "
                             "leave it out to take free ports.")


def prepare(command, backend, parser):
    """(command, backend, run directory) for the workers.

    Only `train` runs as a job. Every worker must agree on one run folder, so the
    launcher picks it (a new one, or the unfinished run it resumes). The backend
    is the run's own `runtime.backend` when its config pins one.
    """
    from tfsuite.config import load_config
    from tfsuite.run_dir import resolve_run_dir
    from tfsuite.task import get_task

    if not command:
        raise user_error("No command to launch", "a tfsuite command after `--`, e.g. "
                         "`launch --workers 2 -- train digits`", "command=[]")
    args = parser.parse_args(command)
    if args.command != "train":
        raise user_error("launch runs training jobs", "`-- train EXPERIMENT ...` (evaluate, "
                         "compress and export run in one process on the finished run)",
                         f"command={args.command!r}")
    config = load_config(args.experiment, args.config, args.overrides)
    pinned = config.runtime.backend
    if pinned != "auto" and backend not in (None, pinned):
        raise user_error("--backend and the run's runtime.backend differ",
                         "the same backend (or leave --backend out)",
                         f"--backend={backend}, runtime.backend={pinned}")
    if pinned != "auto":
        backend = pinned
    backend = backend or os.environ.get("KERAS_BACKEND", "tensorflow")
    if backend not in ("tensorflow", "jax"):
        raise user_error("launch runs TensorFlow or JAX workers", "--backend tensorflow or "
                         "jax (Keras' PyTorch backend trains on one device)",
                         f"backend={backend!r}")
    run_dir = args.run_dir
    if not run_dir:
        run_dir = resolve_run_dir(config, task_files=get_task(config).run_files)[0]
        command = [*command, "--run-dir", run_dir]
    return command, backend, run_dir


def _stream(process, prefix, out):
    for line in iter(process.stdout.readline, ""):
        try:
            out.write(f"{prefix}{line}")
            out.flush()
        except (OSError, ValueError):
            pass  # keep draining the pipe, or the worker would block on a full one


def _signal_group(process, signum):
    try:
        os.killpg(process.pid, signum)  # the worker and its compress/export children
    except ProcessLookupError:
        pass


def _stop(processes):
    for process in processes:
        if process.poll() is None:
            _signal_group(process, signal.SIGTERM)
    deadline = time.time() + STOP_GRACE_SECONDS
    for process in processes:
        try:
            process.wait(timeout=max(0.1, deadline - time.time()))
        except subprocess.TimeoutExpired:
            _signal_group(process, signal.SIGKILL)
            process.wait()


def _exit_code(returncode):
    return 128 - returncode if returncode < 0 else returncode  # a signal: 128 + its number


def _start(command, backend, addresses, out):
    """The worker processes and the threads that stream their output."""
    processes, threads = [], []
    for index in range(len(addresses)):
        env = {**os.environ, "KERAS_BACKEND": backend, "PYTHONUNBUFFERED": "1",
               **worker_environment(backend, index, addresses)}
        # A session of its own: Ctrl-C reaches the launcher, which then stops each
        # worker's whole process group (its compress/export children too).
        process = subprocess.Popen(
            [sys.executable, "-m", "tfsuite.run", *command], env=env, stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT, text=True, errors="replace", bufsize=1,
            start_new_session=True)
        processes.append(process)
        print(f"tfsuite launch: worker {index} is pid {process.pid}", file=out, flush=True)
        threads.append(threading.Thread(target=_stream, daemon=True,
                                        args=(process, f"[worker {index}] ", out)))
        threads[-1].start()
    return processes, threads


def launch(num_workers, command, parser, backend=None, port=None, out=None):
    """Runs a `train` command as `num_workers` local workers; returns the job's exit code.

    Args:
        num_workers: how many worker processes (>= 1).
        command: the tfsuite command line, e.g. `["train", "digits"]`.
        parser: the CLI's `argparse` parser, which reads `command`.
        backend: "tensorflow" (TF_CONFIG, MultiWorkerMirroredStrategy) or "jax"
            (keras.distribution over every worker's devices). Defaults to the run's
            `runtime.backend`, else KERAS_BACKEND, else "tensorflow".
        port: the first of the loopback ports; the system picks free ones when None.
        out: where the prefixed output goes. Defaults to `sys.stdout`.
    """
    out = out or sys.stdout
    if num_workers < 1:
        raise user_error("--workers must be positive", "an int >= 1",
                         f"workers={num_workers}")
    command, backend, run_dir = prepare(command, backend, parser)
    ports = free_ports(1 if backend == "jax" else num_workers, port)
    if port is not None:
        check_ports(ports)
    if backend == "jax":
        addresses = [f"127.0.0.1:{ports[0]}"] * num_workers  # the coordinator, for each
    else:
        addresses = [f"127.0.0.1:{p}" for p in ports]
    print(f"tfsuite launch: {num_workers} workers ({backend}) on "
          f"{', '.join(sorted(set(addresses)))}: {' '.join(command)}", file=out, flush=True)
    processes = []

    def terminated(signum, frame):  # the launcher was stopped: no orphaned workers
        _stop(processes)
        raise SystemExit(128 + signum)

    main_thread = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGTERM, terminated) if main_thread else None
    try:
        started, threads = _start(command, backend, addresses, out)
        processes.extend(started)
        failed = _wait(processes)
    except BaseException:
        _stop(processes)
        raise
    finally:
        if main_thread:
            signal.signal(signal.SIGTERM, previous)
    if failed is not None:
        _stop(processes)
        print(f"tfsuite launch: worker {failed[0]} failed (exit code {failed[1]}); the "
              f"others were stopped. {_next_step(failed[1], run_dir)}", file=out, flush=True)
    for thread in threads:
        thread.join(timeout=5)
    return 0 if failed is None else _exit_code(failed[1])


def _next_step(code, run_dir):
    """What to do after a failed job, from the failure and what the run kept."""
    from tfsuite.run_dir import is_completed

    if code == 2:
        return "Fix the error above and run the same command again."
    if is_completed(run_dir):
        return (f"Training had finished ({run_dir} is complete): retry what failed after it "
                f"with `python -m tfsuite.run compress` or `export` on {run_dir}.")
    return "Run the same command again to resume after the last completed epoch."


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
