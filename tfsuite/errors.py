"""The one exception type for mistakes a user can cause (bad config, bad data path, ...).

The CLI prints its message alone and exits 2; everything else is a bug and keeps
its traceback.
"""


class UserError(ValueError):
    """A problem the user can fix: what happened, what was expected, how to fix it."""

    exit_code = 2


class VerificationError(UserError):
    """An exported artifact disagrees with the model it came from (nothing was published)."""

    exit_code = 3


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
