"""Which process of a multi-worker job this is: TF_CONFIG (TensorFlow) or Keras' JAX
multi-process variables, read and written in one place.

TensorFlow's `MultiWorkerMirroredStrategy` reads `TF_CONFIG`
(`{"cluster": {"worker": ["host:port", ...]}, "task": {"type": "worker",
"index": i}}`); Keras' `keras.distribution.initialize()` on JAX reads
`KERAS_DISTRIBUTION_JOB_ADDRESSES` (the coordinator first),
`KERAS_DISTRIBUTION_NUM_PROCESSES` and `KERAS_DISTRIBUTION_PROCESS_ID`. The
launcher writes these for local workers; on several machines users set them.
"""

import json
import os
from dataclasses import dataclass

from tfsuite.errors import user_error

JAX_ADDRESSES = "KERAS_DISTRIBUTION_JOB_ADDRESSES"
JAX_NUM_PROCESSES = "KERAS_DISTRIBUTION_NUM_PROCESSES"
JAX_PROCESS_ID = "KERAS_DISTRIBUTION_PROCESS_ID"


@dataclass(frozen=True)
class Cluster:
    """This process's place in a job: `num_workers` processes, this one `index`."""

    num_workers: int = 1
    index: int = 0
    kind: str = "local"  # local, tf_config, jax

    @property
    def is_chief(self):
        """The chief writes the run directory; the other workers write temporary folders."""
        return self.index == 0


def _tf_config():
    text = os.environ.get("TF_CONFIG")
    if not text:
        return None
    try:
        config = json.loads(text)
        workers = list(config["cluster"].get("chief", [])) + list(config["cluster"]["worker"])
        task = config["task"]
        index = int(task["index"]) + (len(config["cluster"].get("chief", []))
                                      if task["type"] == "worker" else 0)
    except (ValueError, KeyError, TypeError, AttributeError) as e:
        raise user_error("TF_CONFIG is not a valid cluster description",
                         '{"cluster": {"worker": ["host:port", ...]}, "task": {"type": '
                         '"worker", "index": 0}}', f"TF_CONFIG={text[:200]!r} "
                         f"({type(e).__name__}: {e})", "Fix the variable, or unset it to "
                         "train on this machine alone.") from None
    if task["type"] not in ("chief", "worker"):
        raise user_error("TF_CONFIG names a task type tfsuite does not run",
                         "task.type 'chief' or 'worker'", f"task.type={task['type']!r}")
    if not 0 <= index < len(workers):
        raise user_error("TF_CONFIG's task index is outside its cluster",
                         f"an index below {len(workers)}", f"task={task!r}")
    return Cluster(len(workers), index, "tf_config")


def _jax_processes():
    count = os.environ.get(JAX_NUM_PROCESSES)
    if not count:
        return None
    try:
        num, index = int(count), int(os.environ.get(JAX_PROCESS_ID, ""))
    except ValueError:
        raise user_error("The JAX multi-process variables are not integers",
                         f"{JAX_NUM_PROCESSES} and {JAX_PROCESS_ID} as integers",
                         f"{JAX_NUM_PROCESSES}={count!r}, "
                         f"{JAX_PROCESS_ID}={os.environ.get(JAX_PROCESS_ID)!r}") from None
    if not os.environ.get(JAX_ADDRESSES) or not 0 <= index < num:
        raise user_error("The JAX multi-process variables are incomplete",
                         f"{JAX_ADDRESSES}=host:port (the coordinator) and a process id "
                         f"below {num}", f"{JAX_ADDRESSES}={os.environ.get(JAX_ADDRESSES)!r}, "
                         f"{JAX_PROCESS_ID}={index}")
    return Cluster(num, index, "jax")


def current_cluster(backend):
    """This process's `Cluster`, from the variables of its backend's engine.

    The other engine's variables are an error: each worker would train alone
    and write the same run directory.
    """
    tensorflow, jax = _tf_config(), _jax_processes()
    found = {"tensorflow": tensorflow, "jax": jax}.get(backend)
    others = [(name, cluster) for name, cluster in (("TF_CONFIG", tensorflow),
                                                    (JAX_NUM_PROCESSES, jax))
              if cluster is not None and cluster.num_workers > 1 and cluster is not found]
    if others:
        name, cluster = others[0]
        engine = {"TF_CONFIG": "TensorFlow's MultiWorkerMirroredStrategy",
                  JAX_NUM_PROCESSES: "JAX (keras.distribution)"}[name]
        raise user_error(f"{name} describes a {cluster.num_workers}-worker job for {engine}, "
                         f"but this run trains on {backend}",
                         "the backend whose cluster variables are set",
                         f"backend={backend!r}, {name} set",
                         "Launch with the run's backend (`launch --backend ...`, or drop "
                         "runtime.backend), or unset the variable.")
    return found if found is not None and found.num_workers > 1 else Cluster()


def worker_environment(backend, index, addresses):
    """The variables that make local process `index` worker `index` of `addresses`."""
    if backend == "jax":
        return {JAX_ADDRESSES: ",".join(addresses), JAX_NUM_PROCESSES: str(len(addresses)),
                JAX_PROCESS_ID: str(index)}
    return {"TF_CONFIG": json.dumps({"cluster": {"worker": list(addresses)},
                                     "task": {"type": "worker", "index": index}})}


def without_cluster(env):
    """`env` without the variables that would make a child process join the job."""
    return {k: v for k, v in env.items()
            if k not in ("TF_CONFIG", JAX_ADDRESSES, JAX_NUM_PROCESSES, JAX_PROCESS_ID)}
