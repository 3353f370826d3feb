"""tfsuite as a package: a wheel built from this tree, installed (not editable) into a fresh
virtual environment, gives the `tfsuite` command with its experiments and license."""

import os
import site
import subprocess
import sys
import zipfile

from tests.conftest import REPO


def _run(*args, **kwargs):
    result = subprocess.run(args, capture_output=True, text=True, timeout=300, **kwargs)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-3000:]
    return result


def test_wheel_installs_the_tfsuite_command(tmp_path):
    # --no-build-isolation: setuptools and wheel come from this environment, not the network.
    _run(sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
         "-w", str(tmp_path / "dist"), REPO)
    (wheel,) = (tmp_path / "dist").glob("tfsuite-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert "tfsuite/experiments/digits.yaml" in names
    assert any(name.endswith(".dist-info/licenses/LICENSE") or name.endswith(".dist-info/LICENSE")
               for name in names), names

    venv = tmp_path / "venv"
    _run(sys.executable, "-m", "venv", "--without-pip", str(venv))
    python = venv / "bin" / "python"
    _run(sys.executable, "-m", "pip", "--python", str(python), "install", "--no-deps", "-q",
         str(wheel))
    # The dependencies (TensorFlow, Keras...) come from this environment, after the venv's
    # own site-packages; a path in a .pth file adds no editable install of tfsuite with it.
    packages = _run(str(python), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))")
    with open(os.path.join(packages.stdout.strip(), "test-dependencies.pth"), "w") as f:
        f.write("\n".join(site.getsitepackages()) + "\n")

    env = {**os.environ, "PYTHONPATH": ""}
    where = _run(str(python), "-c", "import tfsuite; print(tfsuite.__file__)", cwd=tmp_path,
                 env=env)
    assert where.stdout.startswith(str(venv)), where.stdout  # the wheel's copy, not this tree

    command = str(venv / "bin" / "tfsuite")
    shown = _run(command, "--help", cwd=tmp_path, env=env)
    assert shown.stdout.startswith("usage: tfsuite"), shown.stdout[:200]
    assert "train" in shown.stdout and "predict" in shown.stdout
    listing = _run(command, "list", cwd=tmp_path, env=env)
    assert "digits" in listing.stdout and "(default)" in listing.stdout
    # An optional extra's install hint fits a wheel install.
    hint = _run(str(python), "-c", "from tfsuite.packages import install_hint; "
                "print(install_hint('rl'))", cwd=tmp_path, env=env)
    assert hint.stdout.strip() == 'pip install "tfsuite[rl]"'
