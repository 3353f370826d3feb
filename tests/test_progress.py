"""Progress: a live bar on a terminal (a real pseudo-terminal), nothing but plain lines
elsewhere."""

import io
import os
import pty
import re
import subprocess
import sys

from tests.conftest import REPO
from tfsuite.progress import ProgressBar, format_seconds


class TerminalText(io.StringIO):
    """Text written to what says it is a terminal."""

    def isatty(self):
        return True


def test_bar_draws_on_a_terminal_only():
    plain = io.StringIO()
    bar = ProgressBar(10, "Epoch 1/3", "img", per_count=32, stream=plain, interval=0)
    for done in range(1, 11):
        bar.update(done, "loss: 0.5000")
    bar.close()
    assert plain.getvalue() == ""

    terminal = TerminalText()
    bar = ProgressBar(10, "Epoch 1/3", "img", per_count=32, stream=terminal, interval=0)
    bar.update(4, "loss: 0.5000")
    drawn = terminal.getvalue()
    assert drawn.startswith("\rEpoch 1/3   4/10 [") and "img/s - ETA " in drawn, drawn
    assert drawn.endswith("loss: 0.5000\x1b[K")
    bar.close()
    assert terminal.getvalue().endswith("\r\x1b[K")  # cleared for the epoch's line


def test_quiet_silences_bars_for_that_command_only():
    from tfsuite.cli import main

    assert main(["list", "--quiet"]) == 0
    terminal = TerminalText()
    bar = ProgressBar(10, "x", stream=terminal, interval=0)
    bar.update(1)
    assert terminal.getvalue()  # a later call in this process (a notebook, a test) draws


def test_bar_redraws_at_most_once_per_interval():
    terminal = TerminalText()
    bar = ProgressBar(1000, "x", stream=terminal, interval=60)
    for done in range(1, 1001):
        bar.update(done)
    assert bar.updates == 1


def test_time_left_reads_as_a_clock():
    assert [format_seconds(s) for s in (4.4, 187, 3723)] == ["4s", "3:07", "1:02:03"]


def test_training_in_a_terminal_shows_steps_and_time_left(tmp_path):
    """A real training process writing to a pseudo-terminal draws the bar inside the epoch,
    then the epoch's plain line."""
    main, child = pty.openpty()
    env = {**os.environ, "PYTHONPATH": REPO + os.pathsep + os.environ.get("PYTHONPATH", ""),
           "COLUMNS": "120"}
    process = subprocess.Popen(
        [sys.executable, "-m", "tfsuite.run", "train", "digits", "--run-dir",
         str(tmp_path / "run"), "--set", "train.epochs=2", "--set", "train.batch_size=16",
         "--set", "compress.methods=[]", "--set", "export.formats=[]"],
        stdout=child, stderr=subprocess.DEVNULL, env=env, cwd=tmp_path)
    os.close(child)
    output = b""
    while True:
        try:
            chunk = os.read(main, 65536)
        except OSError:  # the child closed the terminal
            break
        if not chunk:
            break
        output += chunk
    os.close(main)
    assert process.wait(timeout=300) == 0
    text = output.decode()
    updates = re.findall(r"\rEpoch 1/2 +(\d+)/(\d+) \[[=>.]+\] [\d,]+ img/s - ETA (\S+)", text)
    assert updates, text[-2000:]
    done, total, left = updates[0]
    assert int(done) < int(total) and re.fullmatch(r"\d+s|\d+:\d\d", left)
    assert "\r\x1b[KEpoch 1/2 - " in text  # the bar cleared, then the epoch's line
