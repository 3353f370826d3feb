"""The checks of a run fitted by the shared `Trainer`: its curves, and with `probe` a few
timed steps of its real pipeline (and, for a run that diverged, a replay to the first
layer whose output is not finite)."""

import contextlib
import os

from tfsuite.diagnosis import curves, probe as probes
from tfsuite.run_dir import CHECKPOINTS

PROBE_STEPS = 20  # timed steps of each probe (after a warm-up)
REPLAY_STEPS = 200  # most steps replayed looking for the first non-finite layer


def trainer_checks(task, run, probe=False):
    """Verdicts on a Trainer-fitted run and the names of the checks that ran.

    The task shapes them through `task.chance_loss(run)` (the loss of a model that knows
    nothing) and `task.diagnosis_fixes(name, run)` (its own `--set` lines per verdict).
    """
    train, precision = run.config.train, run.config.runtime.precision
    state = run.state or {}
    record = run.diverged
    chance = task.chance_loss(run)
    checked = ["divergence", "overfitting", "underfitting"]
    diverged = curves.divergence(run.history, train, precision, record=record,
                                 peak=state.get("loss_peak") or (record or {}).get("loss_peak"),
                                 first_loss=state.get("first_step_loss") or (
                                     record or {}).get("first_step_loss"), chance_loss=chance)
    verdicts = [diverged, curves.overfitting(run.history, train)]
    if not (diverged and diverged.severity == "problem"):  # a diverged model fits nothing
        verdicts.append(curves.underfitting(run.history, train, chance))
    verdicts = [v for v in verdicts if v is not None]
    if probe:
        checked.append("input_bound")
        verdicts += probe_run(task, run, diverged)
    for verdict in verdicts:
        if verdict.severity != "info":  # the task's own settings first: the most direct
            verdict.fixes = task.diagnosis_fixes(verdict.name, run) + verdict.fixes
    return verdicts, checked


def probe_run(task, run, diverged):
    """Times the real pipeline; replays a diverged run to its first non-finite layer."""
    from tfsuite.training.trainer import Trainer, build_task_model

    runtime = task.setup_runtime()
    data = task.prepare(runtime, run.run_dir, True)
    with contextlib.ExitStack() as stack:
        if hasattr(data, "close"):
            stack.callback(data.close)
        trainer = Trainer(run.config, run.run_dir, runtime, quiet=True)

        def build():
            model = build_task_model(runtime, task, data)
            trainer.compile(task, model, data)
            return model

        replay = None
        if diverged is not None and run.diverged:
            # Built first, as the run built its model right after seeding and preparing the
            # data: a replay from epoch 0 then starts from the run's initial weights.
            replay = _replay(build(), data, run)
            diverged.evidence.update(replay)
            diverged.summary += _replay_text(replay)
        cached = getattr(run.config.data, "cache", False)
        timings = probes.step_timings(build(), data.train, PROBE_STEPS, cached=cached)
        verdicts = [probes.input_bound(timings, _input_fixes(run.config, runtime))]
        if replay is not None:
            verdicts[0].severity = "info"  # a diverged run's speed is not its problem
    return verdicts


def _replay(model, data, run):
    """The diverged epoch replayed from the last good checkpoint, layer outputs checked."""
    record = run.diverged
    good = record.get("last_good_epoch") or 0
    weights = os.path.join(run.run_dir, CHECKPOINTS, (run.state or {}).get("weights", ""))
    if good and os.path.isfile(weights):
        model.optimizer.build(model.trainable_variables)
        model.load_weights(weights)
    if hasattr(data.train, "set_epoch"):
        data.train.set_epoch(good)
    found = probes.replay_to_nonfinite(model, data.train,
                                       min(REPLAY_STEPS, record.get("batch", 0) + 20))
    return {"replay_from_epoch": good, "replay_reproduced": found["reproduced"],
            "replay_batch": found["batch"], "first_nonfinite_layer": found["layer"],
            "largest_layer_outputs": found["largest_output"]}


def _input_fixes(config, runtime):
    """What speeds up any task's feeding: fewer host round trips, half precision on GPUs."""
    fixes = []
    if config.train.steps_per_execution == 1:
        fixes.append("--set train.steps_per_execution=8")
    if runtime.has_gpu and config.runtime.precision == "float32":
        fixes.append("--set runtime.precision=auto")
    return fixes


def _replay_text(replay):
    largest = ", ".join(f"{name} {value:.3g}" for name, value in
                        list(replay["largest_layer_outputs"].items())[:3])
    if replay["replay_reproduced"]:
        return (f" Replayed from epoch {replay['replay_from_epoch']}: the first layer whose "
                f"output is not finite is '{replay['first_nonfinite_layer']}' (batch "
                f"{replay['replay_batch']}); the largest finite outputs there: {largest}.")
    return (f" The replay from epoch {replay['replay_from_epoch']} stayed finite (the run's "
            f"batches are drawn in another order); the largest finite outputs: {largest}.")
