"""How an export report reads on the terminal."""

import os
import shlex

from tfsuite.io import display_path


def _command(*words):
    """A shell command line with each word quoted as needed."""
    return " ".join(shlex.quote(str(w)) for w in words)


def format_report(report):
    """The table `export` prints: one row per artifact, then what was skipped and how to serve."""
    if report.get("task") == "translation":
        return _format_translation(report)
    if report.get("task") == "recommendation":
        return _format_recommender(report)
    if report.get("task") == "language_model":
        return _format_language_model(report)
    reference = report["reference"]
    rebuilt = " rebuilt in float32" if reference["rebuilt_in_float32"] else ""
    inputs = "images" if "color_mode" in report["input"] else "inputs"
    agreement = "top-1" if "probabilities" in report["outputs"] else "argmax"
    lines = [
        (f"Exported {report['name']} version {report['version']} -> "
         f"{display_path(report['path'])}"),
        (f"  checked on {reference['num_samples']} {inputs} ({reference['inputs']}) against "
         f"{display_path(reference['model'])}{rebuilt}; Keras: "
         f"{reference['latency_ms']:.2f} ms per batch of {reference['batch_size']}"),
        f"  {'format':<16} {'size':>10} {'max |diff|':>11} {agreement:>8} {'ms/batch':>9}  path"]
    for name, result in report["formats"].items():
        lines.append(f"  {name:<16} {result['size_bytes'] / 1e3:>8.1f}kB "
                     f"{result['max_abs_diff']:>11.2e} {result['top1_agreement']:>8.2%} "
                     f"{result['latency_ms']:>9.2f}  {display_path(result['path'])}")
    if "onnx" in report["formats"]:
        lines.append(f"  (ONNX opset {report['formats']['onnx']['opset']})")
    quantized = report["formats"].get("litert_quantized")
    if quantized:
        lines.append(f"  (litert_quantized: {quantized['quantization']}, from compress; checked "
                     f"against {display_path(quantized['quantized_from'])})")
    for name, skipped in report["skipped"].items():
        lines.append(f"  {name:<16} skipped: {skipped['reason']}. Build it on a GPU machine "
                     f"with:\n    {skipped['command']}")
    return "\n".join(lines + _serving_lines(report))


def _serving_lines(report):
    lines = []
    serving = report.get("serving")
    if serving:
        lines.append("  serve: " + _command("tensorflow_model_server", "--rest_api_port=8501",
                                            f"--model_config_file={serving['models_config']}"))
        lines.append("  query: " + _command("curl", "-d",
                                            f"@{display_path(serving['rest_request'])}",
                                            serving["rest_url"]))
    lines.append(f"  report: {os.path.join(display_path(report['run_dir']), 'export.json')}")
    return lines


def _format_translation(report):
    """A translation export: the SavedModel checked by whole translations, not scores."""
    saved = report["formats"]["saved_model"]
    lines = [f"Exported {report['name']} version {report['version']} -> "
             f"{display_path(report['path'])}",
             f"  saved_model: {saved['sequence_agreement']:.1%} of "
             f"{report['reference']['num_samples']} test translations identical to "
             f"{display_path(report['reference']['model'])}; BLEU {saved['bleu']:.2f}, exact "
             f"match {saved['exact_match']:.2%}; {saved['latency_ms']:.0f} ms per batch of "
             f"{saved['latency_batch_size']}; {saved['size_bytes'] / 1e6:.1f} MB",
             f"  input: {report['input']['name']} (token ids); tokenizer: "
             f"{display_path(report['tokenizer'])} (TF Serving's stock binary has no TF-Text "
             "ops: tokenize on the client)"]
    if "keras" in report["formats"]:
        lines.append(f"  keras: {display_path(report['formats']['keras']['path'])}")
    return "\n".join(lines + _serving_lines(report))


def _format_language_model(report):
    """A language-model export: each artifact loaded back, its logits compared."""
    reference = report["reference"]
    lines = [f"Exported {report['name']} version {report['version']} -> "
             f"{display_path(report['path'])}",
             f"  checked on {reference['num_samples']} sequences ({reference['inputs']}) "
             f"against {display_path(reference['model'])}"]
    for name, result in report["formats"].items():
        check = (f"max |logit diff| {result['max_logit_difference']:.1e}"
                 if "max_logit_difference" in result else result.get("note", ""))
        lines.append(f"  {name:<16} {result['size_bytes'] / 1e6:>8.1f}MB  {check}  "
                     f"{display_path(result['path'])}")
    lines.append(f"  load: {report['load']}")
    return "\n".join(lines + _serving_lines(report))


def _format_recommender(report):
    """A recommender export: the SavedModel checked by whole top-k lists."""
    saved = report["formats"]["saved_model"]
    k = report["outputs"]["item_ids"][1]
    lines = [f"Exported {report['name']} version {report['version']} -> "
             f"{display_path(report['path'])}",
             f"  saved_model: top {k} of {report['reference']['num_samples']} users (one "
             f"unknown) {saved['user_agreement']:.1%} identical to "
             f"{display_path(report['reference']['model'])}; {saved['latency_ms']:.1f} ms per "
             f"batch of {saved['latency_batch_size']}; {saved['size_bytes'] / 1e6:.1f} MB",
             f"  input: {report['input']['name']} (strings); outputs: item_ids, scores, "
             "known_user"]
    return "\n".join(lines + _serving_lines(report))
