"""language_model on a CPU: the shipped experiment (tiny decoder, the bundled corpus) against
the bigram baseline, in one command.

    python benchmarks/cpu_language_model.py [--set KEY=VALUE ...]

Runs `python -m tfsuite.run train language_model` as a user would, timed end to end
(tokenizer training, packing, training, scoring, samples). The run's summary gives the
held-out perplexity and the bigram model's on the same tokens (same tokenizer, same
split). Bar (issue 25): within 10 minutes on 2 CPU cores, a perplexity at most half the
bigram's. Prints a table, then one line of JSON.
"""

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--set", dest="overrides", action="append", default=[])
    args = parser.parse_args()
    work = tempfile.mkdtemp(prefix="tfsuite-lm-bench-")
    command = ["train", "language_model", "--run-dir", os.path.join(work, "run")]
    for override in args.overrides:
        command += ["--set", override]
    started = time.perf_counter()
    result = subprocess.run([sys.executable, "-m", "tfsuite.run", *command],
                            capture_output=True, text=True)
    seconds = time.perf_counter() - started
    if result.returncode:
        raise SystemExit(f"train failed:\n{result.stdout[-3000:]}{result.stderr[-3000:]}")
    print(result.stdout)
    with open(os.path.join(work, "run", "summary.json")) as f:
        summary = json.load(f)
    m = summary["metrics"]
    ratio = m["perplexity"] / m["bigram_perplexity"]
    rows = [("held-out perplexity", f"{m['perplexity']:.2f}"),
            ("bigram perplexity (same tokens)", f"{m['bigram_perplexity']:.2f}"),
            ("ratio (bar: <= 0.5)", f"{ratio:.3f}"),
            ("token accuracy", f"{m['token_accuracy']:.2%}"),
            ("held-out tokens", f"{m['test_tokens']:,}"),
            ("epochs", summary["epochs_completed"]),
            ("tokens/s (training)", f"{summary['tokens_per_second']:,.0f}"),
            ("wall, whole command (bar: <= 600 s)", f"{seconds:.0f} s")]
    width = max(len(r[0]) for r in rows)
    for name, value in rows:
        print(f"{name:<{width}}  {value}")
    print(json.dumps({"seconds": round(seconds, 1), "perplexity": m["perplexity"],
                      "bigram_perplexity": m["bigram_perplexity"], "ratio": ratio,
                      "token_accuracy": m["token_accuracy"], "overrides": args.overrides,
                      "machine": f"{platform.machine()}, {os.cpu_count()} cores",
                      "met": seconds <= 600 and ratio <= 0.5}))


if __name__ == "__main__":
    main()
