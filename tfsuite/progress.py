"""A live progress bar on a terminal: done/total, a bar, the rate and the time left.

Drawn only where a person watches a terminal (the stream is a TTY): it redraws one line
with a carriage return. Log files, pipes, notebooks and `--quiet` get no bar and no
control characters; they keep the plain lines each phase prints when it ends.
"""

import shutil
import sys
import time

_silenced = False  # `--quiet`: no bars anywhere in the process


def silence(flag=True):
    """No bars in this process (the CLI's `--quiet`), or bars again."""
    global _silenced
    _silenced = bool(flag)


def is_terminal(stream):
    try:
        return stream.isatty()
    except (AttributeError, ValueError):  # no isatty, or a closed stream
        return False


def format_seconds(seconds):
    """`42s`, `3:07`, `1:02:03`."""
    seconds = int(round(seconds))
    if seconds < 60:
        return f"{seconds}s"
    minutes, seconds = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes}:{seconds:02d}"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{seconds:02d}"


class ProgressBar:
    """`label  45/120 [=====>.....] 950 img/s - ETA 12s - loss: 0.4123` on one live line.

    Args:
        total: the count at the end (steps, batches, env steps).
        label: what runs, e.g. `Epoch 3/20`.
        unit: what the rate counts. Defaults to `"step"`.
        per_count: units per count, e.g. images per step. Defaults to `1`.
        stream: where to draw. Defaults to `sys.stdout`.
        enabled: draw at all; also off after `silence()`. Defaults to `True`.
        interval: seconds between redraws (the work is never slowed by drawing).
            Defaults to `0.25`.
    """

    def __init__(self, total, label="", unit="step", per_count=1, stream=None, enabled=True,
                 interval=0.25):
        self.total = max(int(total), 1)
        self.label = label
        self.unit = unit
        self.per_count = per_count
        self.stream = stream or sys.stdout
        self.live = enabled and not _silenced and is_terminal(self.stream)
        self.interval = interval
        self.started = time.perf_counter()
        self.drawn = None  # when the line was last drawn
        self.updates = 0  # how many times it was drawn

    def due(self):
        """Whether `update` would draw now (callers compute costly text only then)."""
        return self.live and (self.drawn is None
                              or time.perf_counter() - self.drawn >= self.interval)

    def update(self, done, text=""):
        """Redraws with `done` of `total` finished, at most once per `interval`."""
        if not self.due():
            return
        now = time.perf_counter()
        self.drawn = now
        self.updates += 1
        elapsed = now - self.started
        rate = done * self.per_count / elapsed if elapsed > 0 else 0.0
        left = max(0, self.total - done) * elapsed / done if done else None
        width = shutil.get_terminal_size((100, 20)).columns
        count = f"{done:>{len(str(self.total))}}/{self.total}"
        eta = format_seconds(left) if left is not None else "?"
        tail = (f" {rate:,.0f} {self.unit}/s - ETA {eta}"
                + (f" - {text}" if text else ""))
        bar_width = max(10, min(30, width - len(self.label) - len(count) - len(tail) - 6))
        filled = min(bar_width, int(bar_width * done / self.total))
        bar = "=" * filled + (">" if filled < bar_width else "") + "." * (bar_width - filled - 1)
        line = f"{self.label}  {count} [{bar}]{tail}"
        self.stream.write("\r" + line[:width - 1] + "\x1b[K")
        self.stream.flush()

    def close(self):
        """Clears the line, for the plain line that follows."""
        if self.live and self.drawn is not None:
            self.stream.write("\r\x1b[K")
            self.stream.flush()
        self.drawn = None
