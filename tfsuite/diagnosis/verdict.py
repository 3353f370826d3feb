"""The record every diagnosis check returns."""

import dataclasses
from typing import List, Optional

SEVERITIES = ("info", "warning", "problem")


@dataclasses.dataclass
class Verdict:
    """One finding about a run.

    Attributes:
        name: what was found: `input_bound`, `overfitting`, `underfitting`, `divergence`,
            `data`, `healthy`, or a task's own (e.g. `returns_flat`).
        severity: `info`, `warning` or `problem`.
        summary: one sentence, with the numbers that show it.
        evidence: those numbers, by name.
        fixes: `--set KEY=VALUE` lines that address it, most likely first.
        advice: what helps that is not a setting (more data, a bigger model file...).
    """

    name: str
    severity: str
    summary: str
    evidence: dict = dataclasses.field(default_factory=dict)
    fixes: List[str] = dataclasses.field(default_factory=list)
    advice: List[str] = dataclasses.field(default_factory=list)

    def __post_init__(self):
        if self.severity not in SEVERITIES:
            raise ValueError(f"severity must be one of {SEVERITIES}. Received: "
                             f"severity={self.severity!r}")

    def to_dict(self):
        return dataclasses.asdict(self)


def worst(verdicts) -> Optional[str]:
    """The highest severity among `verdicts` (None for none)."""
    ranks = [SEVERITIES.index(v.severity) for v in verdicts]
    return SEVERITIES[max(ranks)] if ranks else None


def with_healthy(verdicts, checked, what="this run"):
    """`verdicts`, with a `healthy` verdict first when none is a warning or a problem.

    Args:
        checked: the names of the checks that ran (the healthy verdict's evidence).
    """
    if worst(verdicts) in (None, "info"):
        return [Verdict("healthy", "info", f"Nothing wrong found in {what} ("
                        f"{', '.join(checked)} checked).", {"checked": list(checked)})] + verdicts
    return verdicts
