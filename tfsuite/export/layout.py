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

_VERSION = re.compile(r"(\d+)(\D.*)?")


def model_dir(out, name):
    """OUT/NAME as an absolute path, after checking neither is a file."""
    out = os.path.abspath(os.path.expanduser(out))
    for path, what in ((out, "out"), (os.path.join(out, name), "out/name")):
        if os.path.exists(path) and not os.path.isdir(path):
            raise user_error(f"The export path ({what}) is a file", "a folder, or a path that "
                             "does not exist yet", f"{what}={path!r}", "Pick another --out or "
                             "--name; the file is left as it is.")
    return os.path.join(out, name)


def next_version(folder):
    """1 + the highest version used in `folder` (published or rejected), or 1."""
    used = [int(m.group(1)) for m in map(_VERSION.fullmatch, _listing(folder)) if m]
    return max(used, default=0) + 1


def _listing(folder):
    return os.listdir(folder) if os.path.isdir(folder) else []


def start_version(folder, version):
    """Creates and returns the staging folder for `version`."""
    os.makedirs(folder, exist_ok=True)
    staging = os.path.join(folder, f".staging-{version}-{os.getpid()}")
    shutil.rmtree(staging, ignore_errors=True)  # ours: left by a killed export of this pid
    os.makedirs(staging)
    return staging


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


def discard(staging):
    shutil.rmtree(staging, ignore_errors=True)


def folder_size(path):
    """Bytes in a file, or in all files under a folder."""
    if os.path.isfile(path):
        return os.path.getsize(path)
    return sum(os.path.getsize(os.path.join(root, name))
               for root, _, names in os.walk(path) for name in names)
