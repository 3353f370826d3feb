"""Compressing a translation model: Keras int8 quantization of its Dense layers.

`model.quantize("int8")` on the whole T5 would also quantize the token
embedding (and so the output layer, when tied); only the Dense layers
(attention projections and feed-forward) are quantized here, the layers that
hold most of the weights and take the time. The quantized model is scored on
the test split like the original: BLEU and exact match before and after,
weight bytes, and decoding time.
"""

import os
import shutil
import time

from tfsuite.io import display_path, write_json
from tfsuite.run_dir import MODEL


def _dense_only(layer):
    import keras

    return isinstance(layer, keras.layers.Dense)


def _weight_bytes(model):
    return int(sum(v.numpy().nbytes if hasattr(v, "numpy") else 0 for v in model.weights))


def _measure(model, config, tokenizer, sources, references):
    from tfsuite.translation.metrics import score
    from tfsuite.translation.decoding import translator_for

    translator = translator_for(config, model.backbone, tokenizer)
    batch = config.translation.eval_batch_size
    translator.translate(sources[:batch], batch)  # traces the decoding loop
    started = time.perf_counter()
    hypotheses = translator.translate(sources, batch)
    seconds = time.perf_counter() - started
    return {**score(hypotheses, references, tokenizer), "decode_seconds": round(seconds, 2),
            "weight_bytes": _weight_bytes(model), "num_params": int(model.count_params())}


def compress_translation(run_dir, config, method, quiet=False):
    """Quantizes the run's T5 Dense layers to int8; writes RUN_DIR/compress/quantize/
    (model.keras, report.json) and returns the report."""
    import keras

    from tfsuite.compression.stage import REPORT, output_dir, publish, record_in_summary
    from tfsuite.errors import user_error
    from tfsuite.translation.data import load_pairs
    from tfsuite.translation.model import keras_hub
    from tfsuite.translation.tokenizer import load_tokenizer

    if method != "quantize":
        raise user_error(f"A translation model is compressed with quantize, not {method}",
                         "--method quantize (Keras int8 of the Dense layers)",
                         f"--method {method!r}")
    started = time.perf_counter()
    tokenizer = load_tokenizer(run_dir)
    _, splits = load_pairs(config)
    sources, references = splits.test
    if not quiet:
        print(f"tfsuite: compress {display_path(run_dir)} with 'quantize' (Keras int8, Dense "
              f"layers); scoring on {len(sources):,} test sentences before and after",
              flush=True)
    path = os.path.join(run_dir, MODEL)
    keras_hub()  # registers KerasHub's classes before model.keras is read
    baseline = keras.saving.load_model(path)
    before = _measure(baseline, config, tokenizer, sources, references)
    model = keras.saving.load_model(path)
    model.quantize("int8", filters=_dense_only)
    after = _measure(model, config, tokenizer, sources, references)
    quantized = [layer.name for layer in model._flatten_layers()
                 if getattr(layer, "quantization_mode", None) == "int8"]
    final = output_dir(run_dir, method)
    staging = f"{final}.staging-{os.getpid()}"
    shutil.rmtree(staging, ignore_errors=True)
    os.makedirs(staging)
    try:
        model.save(os.path.join(staging, "model.keras"))
        report = {
            "method": method, "run_dir": os.path.abspath(run_dir), "path": final,
            "source": os.path.abspath(path), "created": time.strftime("%Y-%m-%dT%H:%M:%S"),
            "settings": {"mode": "int8", "layers": "Dense"},
            "quantized_layers": len(quantized),
            "baseline": {"file": "model.keras", **before},
            "compressed": {"file": "compress/quantize/model.keras", **after},
            "ratios": {"size": round(after["weight_bytes"] / before["weight_bytes"], 4),
                       "latency": round(after["decode_seconds"]
                                        / max(before["decode_seconds"], 1e-9), 4),
                       "bleu_drop": round(before["bleu"] - after["bleu"], 2),
                       "exact_match_drop_points": round(
                           100 * (before["exact_match"] - after["exact_match"]), 2)},
            "wall_seconds": round(time.perf_counter() - started, 1)}
        write_json(os.path.join(staging, REPORT), report)
        publish(staging, final)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    record_in_summary(run_dir, method, report)
    return report


def format_report(report):
    b, c, r = report["baseline"], report["compressed"], report["ratios"]
    return "\n".join([
        f"  {'':<14}{'float32':>12}{'int8 Dense':>12}",
        f"  {'BLEU':<14}{b['bleu']:>12.2f}{c['bleu']:>12.2f}",
        f"  {'exact match':<14}{b['exact_match']:>12.2%}{c['exact_match']:>12.2%}",
        f"  {'weights':<14}{b['weight_bytes'] / 1e6:>10.2f}MB{c['weight_bytes'] / 1e6:>10.2f}MB",
        f"  {'decode time':<14}{b['decode_seconds']:>11.1f}s{c['decode_seconds']:>11.1f}s",
        f"  weights x{r['size']:.2f}, decode time x{r['latency']:.2f}, BLEU "
        f"{-r['bleu_drop']:+.2f}, exact match {-r['exact_match_drop_points']:+.2f} points "
        f"({report['quantized_layers']} Dense layers in int8)",
        f"  report: {display_path(os.path.join(report['path'], 'report.json'))}"])
