"""Which optional packages can be imported, asked without importing them.

TensorFlow is optional on the JAX and PyTorch backends (GPU machines often ship
only those), so code that can work without it asks here first.
"""

import importlib.util


def is_installed(name):
    """Whether `import name` would find the package (it is not imported)."""
    try:
        return importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):  # ValueError: blocked with sys.modules[name] = None
        return False


def has_tensorflow():
    return is_installed("tensorflow")


def require_tensorflow(purpose):
    """Raises a `UserError` when TensorFlow is missing, without importing it (the CLI imports
    it later, with its start-up logs silenced)."""
    if not has_tensorflow():
        from tfsuite.errors import user_error

        raise user_error(f"{purpose} needs tensorflow", "tensorflow installed",
                         "no tensorflow package on this machine",
                         "Install it with: pip install tensorflow (or run this step on a "
                         "machine that has it: the run directory can be copied).")


def installed_editable():
    """Whether tfsuite runs from a checkout (`pip install -e .`, or the source folder on
    the path) rather than from an installed wheel: the checkout has setup.cfg beside the
    package."""
    import os

    source = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))  # above tfsuite/
    return os.path.exists(os.path.join(source, "setup.cfg"))


def install_hint(extra):
    """The command that installs tfsuite's optional `extra`, fitting how tfsuite was
    installed: `pip install -e ".[rl]"` in a checkout, `pip install "tfsuite[rl]"` else."""
    if installed_editable():
        return f'pip install -e ".[{extra}]"'
    return f'pip install "tfsuite[{extra}]"'
