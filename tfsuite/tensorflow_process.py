"""Running a tfsuite command in a TensorFlow-backend process.

The TensorFlow-only steps (SavedModel, LiteRT and ONNX conversion, TFMOT) need
Keras on the TensorFlow backend; a run trained on JAX or PyTorch hands them to
`python -m tfsuite.run ...` with KERAS_BACKEND=tensorflow. The child prints
its progress; the parent reads the report it writes and prints that.
"""

import dataclasses
import json
import os
import subprocess
import sys

from tfsuite.errors import UserError, VerificationError
from tfsuite.run_dir import HELD_ENV, held_run_dirs
from tfsuite.training.cluster import without_cluster

CHILD = "TFSUITE_CHILD_PROCESS"  # set in the child: its parent prints the final report


def is_child():
    return bool(os.environ.get(CHILD))


def overrides(section, values, skip=()):
    """`--set section.key=value` arguments for every field of a config dataclass."""
    arguments = []
    for field in dataclasses.fields(values):
        value = getattr(values, field.name)
        if field.name not in skip:  # null too: it may override a value in config.yaml
            if dataclasses.is_dataclass(value):
                value = dataclasses.asdict(value)
            arguments += ["--set", f"{section}.{field.name}={json.dumps(value)}"]  # JSON is YAML
    return arguments


def run_tensorflow_process(arguments, what, quiet):
    """Runs `python -m tfsuite.run ARGUMENTS` on the TensorFlow backend; raises on failure."""
    import keras

    from tfsuite.packages import require_tensorflow

    require_tensorflow(what[0].upper() + what[1:])
    if not quiet:
        print(f"  ({what} in a TensorFlow-backend process: this one runs Keras on "
              f"{keras.backend.backend()})", flush=True)
    # Not a worker of the run's job: the chief alone compresses and exports.
    # It writes the run directories this process holds, under this process's lock.
    env = {**without_cluster(os.environ), "KERAS_BACKEND": "tensorflow",
           "TF_FORCE_GPU_ALLOW_GROWTH": "true", CHILD: "1", HELD_ENV: held_run_dirs()}
    command = [sys.executable, "-m", "tfsuite.run", *arguments, *(["--quiet"] if quiet else [])]
    result = subprocess.run(command, env=env, check=False)
    if result.returncode == VerificationError.exit_code:
        raise VerificationError(f"The {what} failed its verification; see above.")
    if result.returncode != 0:
        raise UserError(f"The {what} failed (TensorFlow-backend process, exit code "
                        f"{result.returncode}); its message is above.")
