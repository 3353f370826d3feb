"""The one exception type for mistakes a user can cause (bad config, bad data path, ...).

The CLI prints its message alone and exits 2; everything else is a bug and keeps
its traceback.
"""

import contextlib
import os


class UserError(ValueError):
    """A problem the user can fix: what happened, what was expected, how to fix it."""

    exit_code = 2


class VerificationError(UserError):
    """An exported artifact disagrees with the model it came from (nothing was published)."""

    exit_code = 3


class DiskFull(UserError):
    """The disk filled up (ENOSPC): what was written stays; the CLI exits at once, since
    libraries with a half-written file open can crash while Python shuts down."""


def is_disk_full(error):
    """ENOSPC, as Python, h5py or TensorFlow reports it."""
    return getattr(error, "errno", None) == 28 or "No space left on device" in str(error)


def free_space(where):
    """Bytes free on the file system of `where` (or of its nearest existing parent)."""
    import shutil

    folder = os.path.abspath(where)
    while not os.path.isdir(folder) and folder != os.path.dirname(folder):
        folder = os.path.dirname(folder)
    return shutil.disk_usage(folder).free


def require_free_space(where, needed_bytes):
    """Refuses to start a stage that cannot fit on the disk (before writing anything)."""
    free = free_space(where)
    if free < needed_bytes:
        raise DiskFull(f"Not enough free disk space. Expected at least "
                       f"{megabytes(needed_bytes)} free on the file system of {where} "
                       f"(this stage's files). Received: {megabytes(free)} free. Free some "
                       "space, or choose a folder on another disk.")


def disk_full_error(error, where, needed_bytes):
    """A `DiskFull` error: how much space the stage needs and where."""
    free = free_space(where)
    detail = " ".join(str(error).split())[:200]
    return DiskFull(f"The disk is full. Expected at least {megabytes(needed_bytes)} free on "
                    f"the file system of {where} (this stage's files). Received: "
                    f"{megabytes(free)} free ({type(error).__name__}: {detail}). Free some "
                    "space (or choose a folder on another disk) and run the same command "
                    "again; what was already written is kept.")


@contextlib.contextmanager
def disk_full_as_user_error(where, needed_bytes):
    """Turns an ENOSPC inside the block into `disk_full_error`; `needed_bytes` is a number
    or a function that computes it when the disk has filled."""
    try:
        yield
    except Exception as e:
        if isinstance(e, UserError) or not is_disk_full(e):
            raise
        needed = needed_bytes() if callable(needed_bytes) else needed_bytes
        raise disk_full_error(e, where, needed) from None


def describe_error(error):
    """One line for an OSError, UnicodeError or RecursionError that reached the top."""
    from tfsuite.io import printable

    if isinstance(error, OSError) and error.strerror:
        where = f": {printable(error.filename)}" if error.filename else ""
        return f"{error.strerror}{where} ({type(error).__name__}, errno {error.errno})."
    if isinstance(error, RecursionError):
        return f"A structure nested too deeply to handle ({error})."
    return f"{type(error).__name__}: {' '.join(str(error).split())[:300]}."


def megabytes(size):
    return f"{size / 2 ** 20:,.1f} MB"


def user_error(what, expected, received, fix=None):
    """Builds a `UserError` with the standard message layout.

    Args:
        what: what went wrong, e.g. "Unknown optimizer".
        expected: what would have been accepted.
        received: `name=value` text of what was given.
        fix: optional hint on how to fix it.

    Returns:
        A `UserError` (raise it).
    """
    message = f"{what}. Expected {expected}. Received: {received}."
    if fix:
        message += f" {fix}"
    return UserError(message)


def require_module(name, purpose, install):
    """Imports an optional dependency, or raises a `UserError` saying how to install it.

    Args:
        name: the module to import, e.g. "sacrebleu".
        purpose: what needs it, e.g. "BLEU".
        install: the command that installs it.
    """
    import importlib

    try:
        return importlib.import_module(name)
    except ImportError as e:
        raise user_error(f"{purpose} needs {name}", f"{name} installed",
                         f"import {name} failed ({e})", f"Install it with: {install}") from None
