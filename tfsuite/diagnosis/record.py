"""What a run directory says about its training, read once for every check."""

import csv
import dataclasses
import math
import os
from typing import Optional

from tfsuite.io import read_json
from tfsuite.run_dir import CHECKPOINTS, DIVERGED, HISTORY, SUMMARY, read_state


@dataclasses.dataclass
class RunRecord:
    """A run's files, as the checks read them.

    Attributes:
        run_dir: the run directory.
        config: its `ExperimentConfig` (config.yaml).
        summary: summary.json, or None (a run still training, stopped or diverged).
        state: checkpoints/state.json (the last completed epoch), or None.
        history: {metric: [one value per epoch]}: state.json's (with the learning rate),
            else history.csv's.
        diverged: checkpoints/diverged.json: where the loss became NaN, or None.
    """

    run_dir: str
    config: object
    summary: Optional[dict]
    state: Optional[dict]
    history: dict
    diverged: Optional[dict]

    @classmethod
    def read(cls, run_dir, config):
        summary_path = os.path.join(run_dir, SUMMARY)
        summary = read_json(summary_path) if os.path.isfile(summary_path) else None
        checkpoints = os.path.join(run_dir, CHECKPOINTS)
        state = read_state(checkpoints) if os.path.isdir(checkpoints) else None
        history = dict(state["history"]) if state and state.get("history") else \
            read_history_csv(os.path.join(run_dir, HISTORY))
        diverged_path = os.path.join(checkpoints, DIVERGED)
        diverged = read_json(diverged_path) if os.path.isfile(diverged_path) else None
        return cls(run_dir, config, summary, state, history, diverged)

    @property
    def status(self):
        if self.summary:
            return self.summary.get("status", "completed")
        return "diverged" if self.diverged else "unfinished"

    @property
    def epochs(self):
        return len(self.history.get("loss", []))

    def value(self, *keys, default=None):
        """A nested summary.json value (`value("metrics", "test_accuracy")`), or `default`."""
        node = self.summary or {}
        for key in keys:
            if not isinstance(node, dict) or key not in node:
                return default
            node = node[key]
        return node


def read_history_csv(path):
    """{column: [float per row]} of a history.csv (Keras' CSVLogger), `epoch` left out."""
    if not os.path.isfile(path):
        return {}
    with open(path, newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    columns = [c for c in (rows[0] if rows else {}) if c != "epoch"]
    return {c: [_number(row.get(c)) for row in rows] for c in columns}


def _number(text):
    try:
        return float(text)
    except (TypeError, ValueError):
        return math.nan
