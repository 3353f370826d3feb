"""What `diagnose` writes (RUN_DIR/diagnosis/diagnose.json and diagnosis.png) and prints."""

import datetime
import os

from tfsuite.diagnosis.verdict import SEVERITIES, worst
from tfsuite.io import display_path, write_json
from tfsuite.plots import plot_diagnosis

JSON = "diagnose.json"
PNG = "diagnosis.png"


def write_report(run, verdicts, out_dir, probed, curves, can_probe=True):
    """Writes the JSON and the PNG; returns the report dict (as in the JSON).

    Args:
        curves: (unit, panels) from the task's `diagnosis_curves`.
        can_probe: whether `--probe` applies to this run (the report says when it was not
            used).
    """
    unit, panels = curves
    length = max((len(v) for _, panel in panels for v in panel.values()), default=0)
    os.makedirs(out_dir, exist_ok=True)
    report = {"run_dir": run.run_dir, "experiment": run.config.name, "task": run.config.task,
              "status": run.status, "unit": unit, f"{unit}s": length, "probe": probed,
              "can_probe": can_probe, "worst": worst(verdicts),
              "created": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
              "verdicts": [v.to_dict() for v in verdicts],
              "json": os.path.join(out_dir, JSON), "plot": os.path.join(out_dir, PNG)}
    timings = next((v.evidence for v in verdicts if v.name == "input_bound"), None)
    plot_diagnosis(panels, verdicts, report["plot"], timings=timings,
                   marks=_marks(run, verdicts), unit=unit,
                   title=f"diagnose {run.config.name}: {run.status}, {length} {unit}(s)")
    write_json(report["json"], report)
    return report


def _marks(run, verdicts):
    marks = []
    for verdict in verdicts:
        evidence = verdict.evidence
        if verdict.name == "overfitting":
            marks.append((evidence["best_epoch"], f"best validation loss: epoch "
                                                  f"{evidence['best_epoch']}"))
        elif verdict.name == "divergence" and evidence.get("epoch"):
            marks.append((evidence["epoch"], f"loss {evidence['loss']}: epoch "
                                             f"{evidence['epoch']}"))
        elif verdict.name == "divergence" and evidence.get("peak_epoch"):
            marks.append((evidence["peak_epoch"], f"loss peak: epoch {evidence['peak_epoch']}"))
    return marks


def format_report(report):
    """The short report `diagnose` prints: one block per verdict, worst first."""
    verdicts = sorted(report["verdicts"], key=lambda v: -SEVERITIES.index(v["severity"]))
    counts = [f"{sum(v['severity'] == s for v in verdicts)} {s}" for s in ("problem", "warning")
              if any(v["severity"] == s for v in verdicts)]
    lines = [f"diagnose {display_path(report['run_dir'])} ({report['experiment']}, "
             f"{report['status']}, {report[report['unit'] + 's']} {report['unit']}(s)"
             + (", probed" if report["probe"] else "") + "): "
             + (", ".join(counts) if counts else "healthy")]
    for verdict in verdicts:
        lines.append(f"  {verdict['severity'].upper():<8} {verdict['name']}: "
                     f"{verdict['summary']}")
        lines += [f"           fix: {fix}" for fix in verdict["fixes"]]
        lines += [f"           also: {text}" for text in verdict["advice"]]
    if not report["probe"] and report["can_probe"]:
        lines.append("  (speed not checked: add --probe to time the input pipeline against "
                     "the training step)")
    lines.append(f"  report: {display_path(report['json'])}")
    lines.append(f"  plot: {display_path(report['plot'])}")
    return "\n".join(lines)
