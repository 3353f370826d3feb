"""kill -9 at random moments across train -> compress -> export (issue 21's bar).

One uninterrupted run is the reference. Then each run starts the same command again and
again, killed (SIGKILL) at a random moment of the reference's duration, until an attempt
completes it (or the kills are all spent, and one more attempt must): training completed, the
compressed model and the exported version present, and test accuracy within 1 point of the
reference. The test in test_kill_loop.py takes a few kills; the bar's 20:

    python -m tests.reliability.kill_loop --kills 20
"""

import argparse
import json
import os
import random
import signal
import subprocess
import sys
import time

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
COMMAND = ("train", "digits_mlp", "--set", "train.epochs=8", "--set",
           "compress.methods=[low_rank]", "--set", "export.formats=[saved_model]", "--quiet")


def run(run_dir, cwd, kill_after=None):
    """The command in a process, killed after `kill_after` seconds; returns (seconds,
    exit code or "killed", stderr)."""
    env = {**os.environ, "PYTHONPATH": REPO + os.pathsep + os.environ.get("PYTHONPATH", "")}
    started = time.monotonic()
    process = subprocess.Popen([sys.executable, "-m", "tfsuite.run", *COMMAND, "--run-dir",
                                run_dir], cwd=cwd, env=env, stdout=subprocess.DEVNULL,
                               stderr=subprocess.PIPE, text=True)
    try:
        process.wait(timeout=kill_after)
    except subprocess.TimeoutExpired:
        process.send_signal(signal.SIGKILL)
        stderr = process.communicate()[1]
        return time.monotonic() - started, "killed", stderr
    return time.monotonic() - started, process.returncode, process.stderr.read()


def finished_before_kill(code, stderr):
    """The same command after a kill that came once the run had finished its last stage
    (while the process was exiting): the run is complete, and is not overwritten."""
    return code == 2 and "holds a completed run" in stderr


def stage(run_dir):
    """Which stage the run had reached, from what it has written."""
    try:
        with open(os.path.join(run_dir, "summary.json")) as f:
            summary = json.load(f)
    except FileNotFoundError:
        state = os.path.join(run_dir, "checkpoints", "state.json")
        return "train" if os.path.isfile(state) else "start"
    return "export" if summary.get("compress") else "compress"


def finished(run_dir):
    """What a completed chain leaves, checked: returns the run's test accuracy."""
    with open(os.path.join(run_dir, "summary.json")) as f:
        summary = json.load(f)
    assert summary["status"] == "completed", summary
    report = os.path.join(run_dir, "compress", "low_rank", "report.json")
    assert os.path.isfile(report) and os.path.isfile(os.path.join(
        run_dir, "compress", "low_rank", "model.keras")), os.listdir(run_dir)
    assert set(summary.get("compress", {})) == {"low_rank"}, summary
    with open(os.path.join(run_dir, "export.json")) as f:
        export = json.load(f)
    assert os.path.isfile(os.path.join(export["path"], "saved_model.pb")), export
    leftovers = [name for name in os.listdir(os.path.join(run_dir, "compress"))
                 if name != "low_rank"]
    assert not leftovers, leftovers
    return summary["metrics"]["test_accuracy"]


def kill_loop(workdir, kills=20, seed=0, max_seconds=3600, log=print):
    """Kills runs until `kills` kills have landed: each run is started again and again
    (the same command), killed at a random moment, until an attempt completes it.

    Returns a dict: the reference's accuracy and seconds, and each run's kills (moment,
    stage reached) and accuracy. Raises AssertionError when a run does not end as the
    reference does.
    """
    rng = random.Random(seed)
    os.makedirs(workdir, exist_ok=True)
    seconds, code, stderr = run(os.path.join(workdir, "reference"), workdir)
    assert code == 0, stderr
    reference = finished(os.path.join(workdir, "reference"))
    log(f"reference: {seconds:.1f}s, test accuracy {reference:.4f}")
    deadline = time.monotonic() + max_seconds
    results, total = [], 0
    while total < kills and time.monotonic() < deadline:
        run_dir = os.path.join(workdir, f"run{len(results)}")
        moments, code = [], "killed"
        while code == "killed" and total < kills:
            # Mostly after the imports (about 10 s of the reference here).
            moment = rng.uniform(0.3 * seconds, seconds)
            _, code, stderr = run(run_dir, workdir, kill_after=moment)
            if code == "killed":
                total += 1
                moments.append((round(moment, 1), stage(run_dir)))
            elif moments and finished_before_kill(code, stderr):
                code = 0
        if code == "killed":  # the last kill: the same command once more ends it
            _, code, stderr = run(run_dir, workdir)
            code = 0 if finished_before_kill(code, stderr) else code
        assert code == 0, stderr
        accuracy = finished(run_dir)
        log(f"{run_dir}: killed at (s, stage reached) {moments}, then completed; test "
            f"accuracy {accuracy:.4f} ({100 * (accuracy - reference):+.2f} points)")
        assert abs(accuracy - reference) <= 0.01, (accuracy, reference)
        results.append({"run_dir": run_dir, "kills": moments, "test_accuracy": accuracy})
    return {"reference": {"seconds": round(seconds, 1), "test_accuracy": reference},
            "runs": results, "kills": total}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kills", type=int, default=20)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workdir", default="kill_loop")
    args = parser.parse_args()
    result = kill_loop(args.workdir, args.kills, args.seed)
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
