"""Distributed training through the real CLI: MirroredStrategy over logical CPUs, local
multi-worker jobs (launch), their resume after a killed worker, JAX data and model
parallelism over host devices. Each run is a fresh process: device setup happens once."""

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from tests.conftest import REPO, call_cli, run_cli

MLP = ["train", "digits_mlp", "--set", "model.dropout=0", "--set", "train.batch_size=64"]


def _summary(run_dir):
    with open(os.path.join(run_dir, "summary.json")) as f:
        return json.load(f)


def _weights(run_dir):
    """The weights of a run's model.keras, in order."""
    import tfsuite

    return tfsuite.load_model(os.path.join(run_dir, "model.keras")).get_weights()


@pytest.mark.slow
def test_mirrored_over_two_cpus_matches_one_device_after_an_epoch(tmp_path):
    single, mirrored = str(tmp_path / "single"), str(tmp_path / "mirrored")
    common = [*MLP, "--set", "train.epochs=1", "--set", "runtime.seed=3"]
    one = run_cli(*common, "--run-dir", single, "--set", "runtime.strategy=none", "--quiet")
    two = run_cli(*common, "--run-dir", mirrored, "--set", "runtime.strategy=mirrored",
                  "--set", "runtime.cpu_devices=2")
    assert one.returncode == 0, one.stderr
    assert two.returncode == 0, two.stderr
    assert "2 replica(s)" in two.stdout
    runtime = _summary(mirrored)["runtime"]
    assert runtime["strategy"] == "mirrored" and runtime["num_replicas"] == 2
    assert runtime["per_replica_batch_size"] == 32
    scaling = _summary(mirrored)["scaling"]
    assert scaling["strategy"] == "mirrored" and scaling["num_replicas"] == 2
    assert scaling["per_replica_batch_size"] == 32 and scaling["global_batch_size"] == 64
    a, b = _weights(single), _weights(mirrored)
    assert len(a) == len(b) == 6  # three Dense layers
    # Same initial weights and data order, one epoch of 20 steps: the same model.
    assert max(float(np.abs(x - y).max()) for x, y in zip(a, b)) < 1e-4
    assert max(float(np.abs(x).max()) for x in a) > 0.05  # trained, not all zeros


def _launch(*args, **kwargs):
    return run_cli("launch", "--workers", "2", "--", *args, **kwargs)


def _state(run_dir):
    try:
        with open(os.path.join(run_dir, "checkpoints", "state.json")) as f:
            return json.load(f)["epochs_completed"]
    except (FileNotFoundError, json.JSONDecodeError, KeyError):
        return 0


@pytest.mark.slow
def test_a_killed_worker_stops_the_job_and_a_relaunch_resumes(tmp_path):
    """Two workers train the MLP; worker 1 is killed after two epochs: the job stops. The
    same command again resumes both from the chief's checkpoint, and the chief alone
    writes the run and exports it."""
    run_dir = str(tmp_path / "mlp")
    args = [sys.executable, "-m", "tfsuite.run", "launch", "--workers", "2", "--", *MLP,
            "--set", "train.epochs=6", "--run-dir", run_dir,
            "--set", "export.formats=[saved_model]", "--set", f"export.out={tmp_path / 'out'}"]
    env = dict(os.environ, PYTHONPATH=REPO, TF_CPP_MIN_LOG_LEVEL="3")
    launcher = subprocess.Popen(args, env=env, stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, text=True)
    pids = {}
    for line in launcher.stdout:  # "tfsuite launch: worker 1 is pid 1234"
        if "is pid" in line:
            pids[int(line.split("worker ")[1].split()[0])] = int(line.split()[-1])
        if len(pids) == 2:
            break
    deadline = time.time() + 300
    while _state(run_dir) < 2 and time.time() < deadline:
        time.sleep(0.5)
    assert _state(run_dir) >= 2, "the job did not get through two epochs"
    os.kill(pids[1], signal.SIGKILL)
    output, _ = launcher.communicate(timeout=120)
    assert launcher.returncode == 128 + signal.SIGKILL, output[-2000:]
    assert "worker 1 failed" in output
    killed_at = _state(run_dir)
    assert killed_at < 6
    resumed = run_cli(*args[3:], timeout=600)
    assert resumed.returncode == 0, resumed.stdout[-3000:]
    summary = _summary(run_dir)
    assert summary["resumed_from_epoch"] == killed_at
    assert summary["epochs_completed"] == 6
    assert summary["runtime"]["strategy"] == "multi_worker"
    assert summary["scaling"]["num_workers"] == 2 and summary["scaling"]["num_replicas"] == 2
    assert summary["metrics"]["test_accuracy"] > 0.85  # chance is 0.1
    assert "(resuming)" in resumed.stdout
    assert "[worker 1] Done: worker 1 of 2" in resumed.stdout
    assert "[worker 0] Done: digits_mlp" in resumed.stdout
    assert "scaling: multi_worker, 2 workers, 2 replicas x 32 images" in resumed.stdout
    assert summary["export"]["version"] == 1  # the chief alone exports
    assert os.path.isfile(tmp_path / "out" / "digits_mlp" / "1" / "saved_model.pb")
    # Only the chief writes the run: no worker folder is left anywhere in it.
    assert not [name for name in os.listdir(run_dir) if "worker" in name]


JAX = {"KERAS_BACKEND": "jax"}


@pytest.mark.slow
def test_jax_data_parallel_on_two_host_devices_trains_digits(tmp_path):
    import jax  # noqa: F401  a [test] dependency: its absence is a failure, not a skip
    run_dir = str(tmp_path / "jax")
    result = run_cli(*MLP, "--run-dir", run_dir, "--set", "runtime.cpu_devices=2",
                     "--set", "train.epochs=3", env=JAX)
    assert result.returncode == 0, result.stderr[-3000:]
    summary = _summary(run_dir)
    assert summary["runtime"]["backend"] == "jax"
    assert summary["runtime"]["strategy"] == "data_parallel"  # auto, with 2 devices
    assert summary["scaling"]["num_replicas"] == 2
    assert summary["metrics"]["test_accuracy"] > 0.85
    assert "2 replicas x 32 images" in result.stdout


MODEL_PARALLEL_CHECK = r"""
import json, sys
import numpy as np
from tfsuite.config import load_config
from tfsuite.task import get_task
from tfsuite.training.runtime import select_backend, setup_runtime
config = load_config("digits_mlp", overrides=["runtime.strategy=model_parallel",
                                              "runtime.cpu_devices=2"])
select_backend(config.runtime)
import keras
from tfsuite.training.distribution import variable_shardings
runtime = setup_runtime(config.runtime)
task = get_task(config)
data = task.build_inputs(augment=False)
sharded = runtime.build_model(lambda: task.build_model(data))
single = task.build_model(data)  # no distribution: every variable on one device
single.set_weights(sharded.get_weights())
images = next(iter(data.test))[0].numpy()
shards = {v.path: [tuple(s.data.shape) for s in v.value.addressable_shards]
          for v in sharded.variables if v.path == "dense_512/kernel"}
print(json.dumps({
    "shardings": variable_shardings(sharded), "shards": shards,
    "report": runtime.report(),
    "difference": float(np.abs(keras.ops.convert_to_numpy(sharded(images))
                               - keras.ops.convert_to_numpy(single(images))).max())}))
"""


@pytest.mark.slow
def test_jax_model_parallel_shards_dense_kernels_and_matches_one_device(tmp_path):
    env = dict(os.environ, PYTHONPATH=REPO, KERAS_BACKEND="jax", TF_CPP_MIN_LOG_LEVEL="3")
    result = subprocess.run([sys.executable, "-c", MODEL_PARALLEL_CHECK], env=env,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    found = json.loads(result.stdout.strip().splitlines()[-1])
    # The 64x512 and 512x256 kernels are split on their output axis, half per device;
    # the 256x10 head (2,560 weights) is under model_parallel_min_params and replicated.
    assert found["shardings"] == {"dense_512/kernel": [None, "model"],
                                  "dense_256/kernel": [None, "model"]}
    assert found["shards"] == {"dense_512/kernel": [[64, 256], [64, 256]]}
    assert found["report"]["mesh_shape"] == [1, 2]
    assert found["difference"] < 1e-5
    # And through the CLI: a model-parallel run trains and reports its layout.
    run_dir = str(tmp_path / "mp")
    trained = run_cli(*MLP, "--set", "train.epochs=3", "--run-dir", run_dir,
                      "--set", "runtime.strategy=model_parallel", "--set",
                      "runtime.cpu_devices=2", "--set", "runtime.mesh_shape=[1,2]", env=JAX)
    assert trained.returncode == 0, trained.stderr[-3000:]
    runtime = _summary(run_dir)["runtime"]
    assert runtime["sharded_variables"] == {"dense_512/kernel": [None, "model"],
                                            "dense_256/kernel": [None, "model"]}
    assert _summary(run_dir)["metrics"]["test_accuracy"] > 0.85


@pytest.mark.parametrize("overrides, env, message", [
    (["runtime.strategy=multi_worker"], {}, "needs a cluster.*launch --workers"),
    (["runtime.strategy=data_parallel"], {"KERAS_BACKEND": "tensorflow"},
     "does not run on the tensorflow backend.*KERAS_BACKEND=jax"),
    (["runtime.strategy=model_parallel", "runtime.cpu_devices=2",
      "runtime.mesh_shape=[2,2]"], JAX, "mesh_shape does not cover the devices"),
    (["runtime.strategy=data_parallel", "runtime.cpu_devices=2", "train.batch_size=33"],
     JAX, "does not split over the replicas.*batch_size=32"),
    (["runtime.strategy=none"], {"TF_CONFIG": json.dumps(
        {"cluster": {"worker": ["127.0.0.1:1", "127.0.0.1:2"]},
         "task": {"type": "worker", "index": 0}})}, "trains each process alone"),
    ([], {"TF_CONFIG": "{not json"}, "TF_CONFIG is not a valid cluster description"),
])
def test_strategy_mistakes_are_clear_errors(tmp_path, overrides, env, message):
    run_dir = tmp_path / "run"
    sets = [a for o in overrides for a in ("--set", o)]
    # In this process unless the case needs another Keras backend than the one loaded here.
    import keras

    cli = call_cli if env.get("KERAS_BACKEND", keras.backend.backend()) == \
        keras.backend.backend() else run_cli
    result = cli("train", "digits_mlp", "--run-dir", str(run_dir), *sets, env=env)
    assert result.returncode == 2, result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert __import__("re").search(message, result.stderr), result.stderr
    assert "Received:" in result.stderr
    assert not run_dir.exists()  # nothing was written


def test_launch_refuses_bad_arguments(tmp_path):
    no_command = call_cli("launch", "--workers", "2", "--")
    assert no_command.returncode == 2 and "No command to launch" in no_command.stderr
    zero = call_cli("launch", "--workers", "0", "--", "train", "digits_mlp")
    assert zero.returncode == 2 and "--workers must be positive" in zero.stderr
    typo = call_cli("launch", "--workers", "2", "--", "train", "digitz")
    assert typo.returncode == 2 and "Did you mean 'digits'" in typo.stderr
    other = call_cli("launch", "--workers", "2", "--", "export", str(tmp_path))
    assert other.returncode == 2 and "launch runs training jobs" in other.stderr
    port = call_cli("launch", "--workers", "2", "--port", "80", "--", "train", "digits_mlp")
    assert port.returncode == 2 and "--port is out of range" in port.stderr
    backend = call_cli("launch", "--workers", "2", "--backend", "jax", "--", "train",
                      "digits_mlp", "--set", "runtime.backend=tensorflow")
    assert backend.returncode == 2 and "--backend and the run's runtime.backend" in backend.stderr
    assert not os.path.exists(os.path.join(REPO, "runs", "digitz"))


def test_a_worker_that_ignores_sigterm_is_killed_after_the_grace_period(monkeypatch):
    """When one worker fails, launch stops the others: SIGTERM first, SIGKILL for one that
    is stuck (a worker blocked in a collective op never runs its Python handler)."""
    from tfsuite import launch

    monkeypatch.setattr(launch, "STOP_GRACE_SECONDS", 0.5)
    stuck = subprocess.Popen(
        [sys.executable, "-c", "import signal, time; signal.signal(signal.SIGTERM, "
         "signal.SIG_IGN); print('ready', flush=True); time.sleep(60)"],
        stdout=subprocess.PIPE, text=True, start_new_session=True)
    assert stuck.stdout.readline().strip() == "ready"
    started = time.time()
    launch._stop([stuck])
    assert stuck.returncode == -signal.SIGKILL
    assert time.time() - started < 10


def test_free_ports_are_below_the_ephemeral_range():
    """The workers bind their ports seconds later: in the ephemeral range another process's
    outgoing connection could take one first (a worker then fails with "Could not start
    gRPC server", seen with three test workers launching jobs at once)."""
    import socket

    from tfsuite.launch import _ephemeral_low, free_ports

    ports = free_ports(4)
    assert len(set(ports)) == 4 and all(1024 <= p < _ephemeral_low() for p in ports)
    for port in ports:
        with socket.socket() as s:
            s.bind(("127.0.0.1", port))


def test_cluster_variables_are_read_and_written_consistently(monkeypatch):
    from tfsuite.training.cluster import current_cluster, worker_environment, without_cluster

    addresses = ["127.0.0.1:5000", "127.0.0.1:5001", "127.0.0.1:5002"]
    for backend in ("tensorflow", "jax"):
        for index in range(3):
            env = worker_environment(backend, index, addresses)
            for key, value in env.items():
                monkeypatch.setenv(key, value)
            cluster = current_cluster(backend)
            assert (cluster.num_workers, cluster.index) == (3, index)
            assert cluster.is_chief == (index == 0)
            assert without_cluster(env) == {}
            for key in env:
                monkeypatch.delenv(key)
    chief = json.dumps({"cluster": {"chief": ["a:1"], "worker": ["b:1"]},
                        "task": {"type": "worker", "index": 0}})
    monkeypatch.setenv("TF_CONFIG", chief)  # a chief task: the worker is index 1
    assert current_cluster("tensorflow").index == 1
    from tfsuite.errors import UserError

    with pytest.raises(UserError, match="TF_CONFIG describes a 2-worker job.*trains on jax"):
        current_cluster("jax")  # each process would train alone into the same folder


def test_strategies_a_backend_has_no_engine_for_are_clear_errors():
    """Checked before anything starts, so without a process of each backend."""
    from tfsuite.errors import UserError
    from tfsuite.training.cluster import Cluster
    from tfsuite.training.runtime import _check_strategy

    for name in ("mirrored", "multi_worker", "data_parallel", "model_parallel"):
        with pytest.raises(UserError, match="does not run on the torch backend.*one device"):
            _check_strategy(name, "torch", Cluster())
    for name in ("auto", "none"):
        _check_strategy(name, "torch", Cluster())  # single-device training is fine
    for name in ("mirrored", "multi_worker"):
        with pytest.raises(UserError, match="does not run on the jax backend.*Received:"):
            _check_strategy(name, "jax", Cluster())


@pytest.mark.slow
def test_launch_jax_processes_train_one_job(tmp_path):
    import jax  # noqa: F401  a [test] dependency
    run_dir = str(tmp_path / "jax")
    result = run_cli("launch", "--workers", "2", "--backend", "jax", "--", *MLP,
                     "--set", "train.epochs=3", "--run-dir", run_dir)
    assert result.returncode == 0, result.stdout[-3000:]
    summary = _summary(run_dir)
    assert summary["runtime"]["backend"] == "jax"
    assert summary["scaling"]["strategy"] == "data_parallel"
    assert summary["scaling"]["num_workers"] == 2 and summary["scaling"]["num_replicas"] == 2
    assert summary["metrics"]["test_accuracy"] > 0.85
    assert "[worker 1] Done: worker 1 of 2" in result.stdout


@pytest.mark.slow
def test_workers_that_would_start_from_different_epochs_stop(tmp_path):
    """A worker that cannot read the chief's checkpoints (its own --run-dir here, as on a
    machine without shared storage) would start over while the chief resumes."""
    chief_dir, worker_dir = str(tmp_path / "chief"), str(tmp_path / "worker")
    args = [*MLP, "--set", "train.epochs=3", "--quiet"]
    first = call_cli(*args, "--run-dir", chief_dir)  # alone: auto is one device
    assert first.returncode == 0, first.stderr
    os.remove(os.path.join(chief_dir, "summary.json"))  # as if stopped after its last epoch
    ports = __import__("tfsuite.launch", fromlist=["free_ports"]).free_ports(2)
    env = dict(os.environ, PYTHONPATH=REPO, TF_CPP_MIN_LOG_LEVEL="3")
    processes = []
    for index, run_dir in enumerate((chief_dir, worker_dir)):
        tf_config = json.dumps({"cluster": {"worker": [f"127.0.0.1:{p}" for p in ports]},
                                "task": {"type": "worker", "index": index}})
        processes.append(subprocess.Popen(
            [sys.executable, "-m", "tfsuite.run", *args, "--run-dir", run_dir],
            env={**env, "TF_CONFIG": tf_config}, stdout=subprocess.PIPE,
            stderr=subprocess.PIPE, text=True))
    for process in processes:
        _, stderr = process.communicate(timeout=300)
        assert process.returncode == 2, stderr
        assert "The workers would start from different epochs" in stderr
        assert "by worker: [3, 0]" in stderr
    assert not os.path.exists(os.path.join(chief_dir, "summary.json"))  # nothing finished
