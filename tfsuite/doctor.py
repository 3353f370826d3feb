"""`doctor`: the environment, checked. Python, tfsuite, Keras and each package tfsuite uses
(installed, importable, at versions that work together), the devices and their memory,
half-precision support, XLA, ONNX Runtime's providers, LiteRT, TensorRT and Gymnasium's
rendering; each problem with the command that fixes it.

The packages and their version ranges come from tfsuite's own metadata (setup.cfg's
install_requires: required; its extras: optional), so the check follows the README's
install. Exit code 1 when something the default job needs is broken.
"""

import dataclasses
import importlib
import importlib.metadata as metadata
import os
import re
import sys
import time

# Distribution name -> import name, where they differ.
IMPORT_NAMES = {"scikit-learn": "sklearn", "pillow": "PIL", "pyyaml": "yaml",
                "tensorflow-datasets": "tensorflow_datasets", "ai-edge-litert": "ai_edge_litert",
                "tensorflow-serving-api": "tensorflow_serving", "keras-rs": "keras_rs",
                "tf-keras": "tf_keras", "tensorflow-model-optimization":
                "tensorflow_model_optimization", "keras-hub": "keras_hub",
                "tensorflow-text": "tensorflow_text", "gymnasium": "gymnasium",
                "importlib_resources": "importlib_resources"}
# Extras that hold tools, not parts of tfsuite: not checked.
TOOL_EXTRAS = {"test", "notebook", "all", "benchmark"}
EXTRA_USE = {"translation": "translation (T5)", "rl": "DQN", "tfmot": "TFMOT pruning",
             "jax": "the JAX backend", "torch": "the PyTorch backend",
             "tensorrt": "TensorRT export"}


@dataclasses.dataclass
class Check:
    """One line of the report: `status` is ok, missing (optional, not installed), warning
    or problem; `required` problems make the exit code 1."""

    name: str
    status: str
    detail: str
    fix: str = ""
    required: bool = False


def _requirements():
    """[(distribution, specifier, extra or None)] from tfsuite's metadata."""
    from packaging.requirements import Requirement  # a dependency of matplotlib

    found = []
    for line in metadata.requires("tfsuite") or []:
        requirement = Requirement(line)
        extra = re.search(r'extra\s*==\s*"([^"]+)"', str(requirement.marker or ""))
        extra = extra.group(1) if extra else None
        if extra not in TOOL_EXTRAS and requirement.name not in (n for n, _, _ in found):
            found.append((requirement.name, str(requirement.specifier), extra))
    return found


def _satisfies(version, specifier):
    from packaging.specifiers import SpecifierSet

    return SpecifierSet(specifier).contains(version, prereleases=True)


def _install(name, specifier, extra):
    from tfsuite.packages import install_hint

    if extra:
        return install_hint(extra)
    return f'pip install --force-reinstall "{name}{specifier}"'


def check_package(name, specifier, extra):
    """Installed, at a version in range, and importable."""
    required = extra is None
    use = "required" if required else f"optional: {EXTRA_USE.get(extra, extra)}"
    try:
        version = metadata.version(name)
    except metadata.PackageNotFoundError:
        return Check(name, "problem" if required else "missing", f"not installed ({use})",
                     _install(name, specifier, extra), required)
    if not _satisfies(version, specifier):
        return Check(name, "problem" if required else "warning", f"{version} installed, "
                     f"tfsuite needs {name}{specifier} ({use})",
                     f'pip install "{name}{specifier}"', required)
    module = IMPORT_NAMES.get(name, name.replace("-", "_"))
    started = time.perf_counter()
    try:
        importlib.import_module(module)
    except Exception as e:  # noqa: BLE001 - any import failure is the finding
        return Check(name, "problem" if required else "warning",
                     f"{version} installed but `import {module}` fails: "
                     f"{type(e).__name__}: {str(e).splitlines()[0][:160] if str(e) else ''}",
                     f'pip install --force-reinstall "{name}{specifier}"', required)
    seconds = time.perf_counter() - started
    return Check(name, "ok", f"{version} ({use}; imports in {seconds:.1f}s)"
                 if seconds >= 1 else f"{version} ({use})", required=required)


def check_python():
    version = ".".join(map(str, sys.version_info[:3]))
    tested = sys.version_info[:2] == (3, 11)
    return Check("python", "ok" if tested else "warning", f"{version} at {sys.executable}"
                 + ("" if tested else " (tfsuite's CI tests Python 3.11)"))


def check_tfsuite():
    import tfsuite
    from tfsuite.packages import installed_editable

    where = os.path.dirname(tfsuite.__file__)
    return Check("tfsuite", "ok", f"{tfsuite.__version__} at {where}"
                 + (" (editable checkout)" if installed_editable() else ""), required=True)


def check_pairs():
    """Versions that must move together, and packages that must not sit side by side."""
    def version(name):
        try:
            return metadata.version(name)
        except metadata.PackageNotFoundError:
            return None

    def minor(text):
        return ".".join(text.split(".")[:2]) if text else None

    checks = []
    tf, cpu = version("tensorflow"), version("tensorflow-cpu")
    if tf and cpu:
        checks.append(Check("tensorflow-cpu", "problem", f"tensorflow-cpu {cpu} is installed "
                            f"next to tensorflow {tf}: they share the tensorflow/ folder and "
                            "break each other", 'pip uninstall -y tensorflow-cpu && pip '
                            'install --force-reinstall "tensorflow==2.21.*"', True))
    for other in ("tf-keras", "tensorflow-text"):
        theirs = version(other)
        if tf and theirs and minor(theirs) != minor(tf):
            checks.append(Check(other, "problem" if other == "tf-keras" else "warning",
                                f"{other} {theirs} does not match tensorflow {tf} (they are "
                                "released together, minor version for minor version)",
                                f'pip install "{other}=={minor(tf)}.*"'))
    if version("tensorflow-model-optimization") and not version("tf-keras"):
        checks.append(Check("tensorflow-model-optimization", "warning", "TFMOT is installed "
                            "without tf-keras, which it needs (Keras 2 models)",
                            f'pip install "tf-keras=={minor(tf) or "2.21"}.*"'))
    if version("keras-hub") and not version("tensorflow-text") and tf:
        checks.append(Check("keras-hub", "warning", "keras-hub is installed without "
                            "tensorflow-text: its T5 tokenizers need it",
                            f'pip install "tensorflow-text=={minor(tf)}.*"'))
    return checks


def check_devices():
    """The devices each installed backend sees, their memory and half precision."""
    checks = []
    from tfsuite.packages import is_installed

    if is_installed("tensorflow"):
        checks += _tensorflow_devices()
    if is_installed("jax"):
        try:
            import jax

            devices = jax.devices()
            text = ", ".join(f"{d.platform}:{d.id} {_memory(d)}".strip() for d in devices)
            checks.append(Check("jax devices", "ok", text))
        except Exception as e:  # noqa: BLE001
            checks.append(Check("jax devices", "warning", f"jax.devices() fails: {e}",
                                'pip install --force-reinstall jax'))
    if is_installed("torch"):
        try:
            import torch

            cuda = torch.cuda.is_available()
            checks.append(Check("torch devices", "ok", f"torch {torch.__version__}, CUDA "
                                + (f"{torch.cuda.device_count()} GPU(s)" if cuda else
                                   "not available (CPU only)")))
        except Exception as e:  # noqa: BLE001
            checks.append(Check("torch devices", "warning", f"torch fails: {e}"))
    return checks


def _memory(device):
    try:
        limit = (device.memory_stats() or {}).get("bytes_limit")
    except Exception:  # noqa: BLE001 - CPUs have none
        limit = None
    return f"({limit / 2 ** 30:.1f} GiB)" if limit else ""


def _tensorflow_devices():
    try:
        import tensorflow as tf

        gpus = tf.config.list_physical_devices("GPU")
        cpus = tf.config.list_physical_devices("CPU")
    except Exception as e:  # noqa: BLE001
        return [Check("tensorflow devices", "problem", f"TensorFlow cannot list devices: {e}",
                      'pip install --force-reinstall "tensorflow==2.21.*"', True)]
    checks = [Check("tensorflow devices", "ok", f"{len(cpus)} CPU, {len(gpus)} GPU"
                    + ("" if gpus else " (training runs on the CPU)"))]
    for gpu in gpus:
        details = tf.config.experimental.get_device_details(gpu)
        capability = details.get("compute_capability") or (0, 0)
        half = ("bfloat16 and float16" if capability >= (8, 0) else "float16 (no fast "
                "bfloat16 before compute capability 8.0)" if capability >= (7, 0) else
                "no fast half precision")
        checks.append(Check(gpu.name, "ok", f"{details.get('device_name', 'GPU')}, compute "
                            f"capability {capability[0]}.{capability[1]}: {half}; "
                            "runtime.precision=auto picks it"))
    if not gpus:
        checks.append(Check("half precision", "ok", "CPU only: runtime.precision=auto "
                            "trains in float32 (bfloat16 on a CPU is emulated, not faster)"))
    try:
        value = tf.function(lambda x: tf.reduce_sum(x * 2.0), jit_compile=True)(tf.ones([4]))
        checks.append(Check("xla", "ok", f"XLA compiles (a test function gave {float(value):g})"))
    except Exception as e:  # noqa: BLE001
        checks.append(Check("xla", "warning", f"XLA does not compile: {str(e)[:160]}",
                            "Train with --set train.jit_compile=false"))
    return checks


def check_runtimes():
    """ONNX Runtime's providers, LiteRT's interpreter, Gymnasium's rendering (TensorRT is
    checked with the packages: it needs a GPU machine)."""
    from tfsuite.packages import is_installed

    checks = []
    if is_installed("onnxruntime"):
        try:
            import onnxruntime

            providers = onnxruntime.get_available_providers()
            checks.append(Check("onnxruntime providers", "ok", ", ".join(providers)))
        except Exception as e:  # noqa: BLE001
            checks.append(Check("onnxruntime providers", "problem", str(e)[:160],
                                'pip install --force-reinstall onnxruntime', True))
    if is_installed("ai_edge_litert"):
        try:
            from ai_edge_litert.interpreter import Interpreter  # noqa: F401

            checks.append(Check("litert", "ok", "the LiteRT interpreter loads"))
        except Exception as e:  # noqa: BLE001
            checks.append(Check("litert", "problem", f"the LiteRT interpreter fails: "
                                f"{str(e)[:160]}", 'pip install --force-reinstall '
                                'ai-edge-litert', True))
    if is_installed("gymnasium"):
        checks.append(_gymnasium_rendering())
    return checks


def _gymnasium_rendering():
    # Off-screen, as `render` draws: no display, no sound (pygame asks SDL for both).
    os.environ.setdefault("SDL_VIDEODRIVER", "dummy")
    os.environ.setdefault("SDL_AUDIODRIVER", "dummy")
    try:
        import gymnasium

        env = gymnasium.make("CartPole-v1", render_mode="rgb_array")
        env.reset(seed=0)
        frame = env.render()
        env.close()
        return Check("gymnasium rendering", "ok", f"CartPole renders {frame.shape[1]}x"
                     f"{frame.shape[0]} frames (`render` writes GIFs)")
    except Exception as e:  # noqa: BLE001
        return Check("gymnasium rendering", "warning", f"CartPole does not render: "
                     f"{type(e).__name__}: {str(e)[:120]}",
                     'pip install "gymnasium[classic-control]>=1.1"')


def run_checks():
    """Every check, in the order the report shows them."""
    checks = [check_python(), check_tfsuite()]
    checks += [check_package(*requirement) for requirement in _requirements()]
    checks += [check_package("torch", ">=2.1", "torch")] if not any(
        name == "torch" for name, _, _ in _requirements()) else []
    checks += check_pairs()
    checks += check_devices()
    checks += check_runtimes()
    return checks


def format_checks(checks):
    """The report: one line per check, the fixes under their problems, a last verdict."""
    width = max(len(c.name) for c in checks)
    lines = [f"tfsuite doctor: {sys.platform}, KERAS_BACKEND="
             f"{os.environ.get('KERAS_BACKEND', 'tensorflow (default)')}"]
    for check in checks:
        lines.append(f"  {check.status.upper() if check.status in ('problem', 'warning') else check.status:<8} "
                     f"{check.name:<{width}}  {check.detail}")
        if check.fix and check.status != "ok":
            lines.append(f"  {'':<8} {'':<{width}}  fix: {check.fix}")
    broken = [c for c in checks if c.status == "problem" and c.required]
    others = [c for c in checks if c.status in ("problem", "warning") and c not in broken]
    if broken:
        lines.append(f"Broken: {', '.join(c.name for c in broken)}. The default job needs "
                     "them; run the fixes above.")
    else:
        lines.append("Everything the default job needs works"
                     + (f"; {len(others)} optional part(s) to look at." if others else "."))
    return "\n".join(lines)


def exit_code(checks):
    return 1 if any(c.status == "problem" and c.required for c in checks) else 0
