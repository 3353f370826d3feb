"""`diagnose RUN_DIR [--probe]`: reads a run, asks its task's checks, keeps the fixes that
are valid settings of this run and change something, and writes the report."""

import logging
import os

from tfsuite.config import read_run_config, with_overrides
from tfsuite.diagnosis.record import RunRecord
from tfsuite.diagnosis.report import format_report, write_report
from tfsuite.diagnosis.verdict import with_healthy
from tfsuite.errors import UserError
from tfsuite.run_dir import DIAGNOSIS
from tfsuite.task import get_task

logger = logging.getLogger("tfsuite")


def diagnose(run_dir, probe=False):
    """Diagnoses the run in `run_dir`; writes RUN_DIR/diagnosis/; returns the report dict.

    Args:
        run_dir: a run directory (completed, unfinished or diverged).
        probe: time a few steps of the real pipeline (and replay a divergence).
    """
    config = read_run_config(run_dir)
    task = get_task(config)
    run = RunRecord.read(run_dir, config)
    verdicts, checked = task.diagnose(run, probe)
    for verdict in verdicts:
        verdict.fixes = usable_fixes(config, verdict.fixes)
    verdicts = with_healthy(verdicts, checked)
    return write_report(run, verdicts, os.path.join(run_dir, DIAGNOSIS), probe,
                        task.diagnosis_curves(run), task.can_probe)


def usable_fixes(config, fixes):
    """`fixes` without repeats, without lines this run's config refuses (a key of another
    task), and without lines that would change nothing."""
    kept = []
    for fix in fixes:
        overrides = [part.strip() for part in fix.split("--set") if part.strip()]
        try:
            changed = with_overrides(config, overrides).to_dict() != config.to_dict()
        except UserError as e:
            logger.info("diagnose: left out %r: %s", fix, e)
            continue
        if changed and fix not in kept:
            kept.append(fix)
    return kept

