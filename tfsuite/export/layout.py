"""The TF Serving folder layout: OUT/NAME/VERSION/, versions never overwritten.

A version is written into a hidden staging folder and renamed into place only
once every artifact in it is verified, so TF Serving (which watches OUT/NAME
for numeric folders) never loads a half-written or unverified version.
"""

import os
import re
import shutil
import time

from tfsuite.errors import user_error
from tfsuite.io import remove_stale

_VERSION = re.compile(r"(\d+)(\D.*)?")


def model_dir(out, name):
    """OUT/NAME as an absolute path, after checking neither is a file."""
    out = os.path.abspath(os.path.expanduser(out))
    target = ancestor = os.path.join(out, name)
    while not os.path.isdir(ancestor):  # the nearest existing ancestor must be a folder
        if os.path.exists(ancestor):
            what = {target: "out/name", out: "out"}.get(ancestor, "a parent of out")
            raise user_error(f"The export path ({what}) is a file", "a folder, or a path that "
                             "does not exist yet", f"{what}={ancestor!r}", "Pick another --out "
                             "or --name; the file is left as it is.")
        ancestor = os.path.dirname(ancestor)
    if not os.access(ancestor, os.W_OK):
        raise user_error("The export folder is not writable", "a folder you can write to",
                         f"out={out!r} ({ancestor} is read-only)")
    return target


def next_version(folder):
    """1 + the highest version used in `folder` (published or rejected), or 1."""
    used = [int(m.group(1)) for m in map(_VERSION.fullmatch, _listing(folder)) if m]
    return max(used, default=0) + 1


def _listing(folder):
    return os.listdir(folder) if os.path.isdir(folder) else []


def start_version(folder, version):
    """Creates the staging folder for `version`.

    Returns:
        (staging folder, the folders created for it, innermost first), so a
        failed export can remove what it made and nothing else.
    """
    created, path = [], folder
    while not os.path.isdir(path):
        created.append(path)
        path = os.path.dirname(path)
    try:
        os.makedirs(folder, exist_ok=True)
        remove_stale(folder, r"\.staging-\d+-(\d+)")  # those of killed exports
        staging = os.path.join(folder, f".staging-{version}-{os.getpid()}")
        os.makedirs(staging)
    except OSError as e:
        raise user_error("Cannot create the export folder", "a folder you can write to "
                         "(export.out, --out)", f"{folder} ({e.strerror}: {e.filename})") from e
    return staging, created


def publish(staging, folder, version):
    """Renames the staging folder to OUT/NAME/VERSION; never replaces an existing version."""
    target = os.path.join(folder, str(version))
    if os.path.exists(target):
        discard(staging)
        raise user_error("Another export created the same version meanwhile",
                         "a version number that stays free", f"{target!r}",
                         "Run the export again; it takes the next free version.")
    os.rename(staging, target)
    return target


def reject(staging, folder, version):
    """Keeps an export that failed verification where TF Serving will not load it."""
    target = os.path.join(folder, f"{version}.rejected-{time.strftime('%Y%m%d-%H%M%S')}")
    os.rename(staging, target)
    return target


def discard(staging, created=()):
    """Removes a staging folder, and the folders made for it when they are empty."""
    shutil.rmtree(staging, ignore_errors=True)
    for path in created:
        try:
            os.rmdir(path)
        except OSError:
            break


def folder_size(path):
    """Bytes in a file, or in all files under a folder."""
    if os.path.isfile(path):
        return os.path.getsize(path)
    return sum(os.path.getsize(os.path.join(root, name))
               for root, _, names in os.walk(path) for name in names)
