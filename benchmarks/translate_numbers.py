"""translate_numbers: T5 from scratch, English number words to French, in one command.

    python benchmarks/translate_numbers.py [--seeds 42 1] [--set KEY=VALUE ...]

Each seed runs the shipped experiment through the CLI as a user would
(`python -m tfsuite.run train translate_numbers --set runtime.seed=N`, its
SavedModel export included), timed end to end. The run's own summary gives
BLEU and exact match on its 2,000 held-out test numbers; the SavedModel's
agreement with the Keras model comes from its export report. Then the int8
quantization of the Dense layers (`compress --method quantize`) is measured
on the first seed's run: BLEU before and after. Prints a table, then one line
of JSON. Bars (issue 7): exact match >= 95% and BLEU >= 90, trained in under 15
minutes on 2 CPU cores.
"""

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time


def run(command):
    started = time.perf_counter()
    result = subprocess.run([sys.executable, "-m", "tfsuite.run", *command],
                            capture_output=True, text=True)
    if result.returncode:
        raise SystemExit(f"{' '.join(command)} failed:\n{result.stdout[-3000:]}"
                         f"{result.stderr[-3000:]}")
    return time.perf_counter() - started


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[42, 1])
    parser.add_argument("--set", dest="overrides", action="append", default=[])
    args = parser.parse_args()
    root = tempfile.mkdtemp(prefix="tfsuite-translate-")
    rows = []
    for seed in args.seeds:
        run_dir = os.path.join(root, f"seed{seed}")
        sets = [a for o in [f"runtime.seed={seed}", f"export.out={root}/saved_models",
                            f"export.name=numbers_seed{seed}", *args.overrides]
                for a in ("--set", o)]
        wall = run(["train", "translate_numbers", "--run-dir", run_dir, *sets, "--quiet"])
        with open(os.path.join(run_dir, "summary.json")) as f:
            summary = json.load(f)
        with open(os.path.join(run_dir, "export.json")) as f:
            saved = json.load(f)["formats"]["saved_model"]
        m = summary["metrics"]
        rows.append({"seed": seed, "exact_match": m["exact_match"], "bleu": m["bleu"],
                     "chrf": m["chrf"], "test_numbers": m["num_sentences"],
                     "epochs": summary["epochs_completed"],
                     "sentences_per_second": summary["sentences_per_second"],
                     "saved_model_agreement": saved["sequence_agreement"],
                     "command_seconds": round(wall, 1),
                     "run_seconds": summary["wall_seconds"]})
    first = os.path.join(root, f"seed{args.seeds[0]}")
    run(["compress", first, "--method", "quantize", "--quiet"])
    with open(os.path.join(first, "compress", "quantize", "report.json")) as f:
        quantized = json.load(f)
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores; "
          f"runs in {root}")
    print(f"{'seed':>5} {'exact match':>12} {'BLEU':>6} {'chrF':>6} {'test':>5} "
          f"{'sent/s':>7} {'SavedModel agrees':>18} {'command s':>10}")
    for r in rows:
        print(f"{r['seed']:>5} {r['exact_match']:>12.2%} {r['bleu']:>6.2f} {r['chrf']:>6.2f} "
              f"{r['test_numbers']:>5} {r['sentences_per_second']:>7.0f} "
              f"{r['saved_model_agreement']:>18.2%} {r['command_seconds']:>10.1f}")
    b, c = quantized["baseline"], quantized["compressed"]
    print(f"int8 Dense (seed {args.seeds[0]}): BLEU {b['bleu']:.2f} -> {c['bleu']:.2f}, exact "
          f"match {b['exact_match']:.2%} -> {c['exact_match']:.2%}, weights "
          f"{b['weight_bytes'] / 1e6:.2f} -> {c['weight_bytes'] / 1e6:.2f} MB, decoding "
          f"{b['decode_seconds']:.1f} -> {c['decode_seconds']:.1f} s")
    met = all(r["exact_match"] >= 0.95 and r["bleu"] >= 90 and r["command_seconds"] < 900
              for r in rows)
    print(json.dumps({"runs": rows, "int8": {"baseline": b, "compressed": c},
                      "bars_met": met}))


if __name__ == "__main__":
    main()
