"""`train translation` on a Tatoeba-format file, `translate`, `evaluate`, `compress` and
the SavedModel export, as a user runs them; and the bad inputs they refuse."""

import csv
import json
import os
import subprocess
import sys

import pytest

from tests.conftest import assert_user_error, call_cli, run_cli, trained_run, tree_hashes

pytestmark = pytest.mark.backend_agnostic  # also run with KERAS_BACKEND=jax (README)

# A 2-layer tiny T5 on 360 training pairs: 14 epochs of 23 steps.
SMALL = ["--set", "translation.vocab_size=200", "--set", "translation.eval_batch_size=64",
         "--set", "translation.num_layers=2", "--set", "train.learning_rate=0.002",
         "--set", "train.batch_size=16", "--set", "train.epochs=14",
         "--set", "translation.max_target_length=16", "--set", "export.verify_samples=16"]


def write_tatoeba_file(path, count=400):
    """English to French numbers in Tatoeba's layout, with what real downloads have: a BOM,
    attribution columns, CRLF line ends, a blank line and a malformed line."""
    from num2words import num2words

    lines = [f"{num2words(n)}\t{num2words(n, lang='fr')}\tCC-BY 2.0 (France) Attribution: "
             f"tatoeba.org #{1000 + n} (tfsuite)" for n in range(count)]
    lines.insert(10, "")
    lines.insert(20, "a line without a tab")
    with open(path, "w", encoding="utf-8-sig", newline="") as f:
        f.write("\r\n".join(lines) + "\r\n")
    return path


@pytest.fixture(scope="module")
def translation_run(tmp_path_factory):
    import keras

    # The SavedModel is exported on TensorFlow only (a JAX run's hand-over to a TensorFlow
    # process for export is tested in tests/export/test_backends.py); Keras' int8 runs on
    # each backend.
    export = "[saved_model]" if keras.backend.backend() == "tensorflow" else "[]"
    cwd, result = trained_run(
        tmp_path_factory, f"translation_{keras.backend.backend()}", "train", "translation",
        "--set", "data.path=fra.txt", "--set", "data.test_split=0.1", *SMALL,
        "--set", f"export.formats={export}", "--set", "compress.methods=[quantize]",
        prepare=lambda work: write_tatoeba_file(os.path.join(work, "fra.txt")))
    assert result.returncode == 0, result.stdout + result.stderr
    return cwd, os.path.join(cwd, "runs", "translation"), result.stdout


def test_tatoeba_file_trains_and_the_malformed_line_is_counted(translation_run):
    cwd, run_dir, printed = translation_run
    assert "400 pairs (1 malformed lines skipped)" in printed and "BLEU" in printed
    with open(os.path.join(run_dir, "summary.json")) as f:
        summary = json.load(f)
    data, metrics = summary["data"], summary["metrics"]
    assert data["num_pairs"] == 400 and data["skipped_lines"] == 1
    assert data["skipped"][0]["line"] == 21  # file line numbers (the blank line is line 11)
    assert data["num_test"] == 40 and data["num_train"] + data["num_val"] == 360
    assert metrics["num_sentences"] == 40 and 0 <= metrics["exact_match"] <= 1
    assert 0 <= metrics["bleu"] <= 100 and "tok:13a" in metrics["bleu_signature"]
    with open(os.path.join(run_dir, "history.csv")) as f:
        losses = [float(row["loss"]) for row in csv.DictReader(f)]
    # It learns more than the target language alone (that plateau is about 0.85 x).
    assert len(losses) == 14 and losses[-1] < 0.6 * losses[0]
    for name in ("model.keras", "tokenizer.model", "training_curves.png", "config.yaml",
                 "evaluation/translations.tsv", "evaluation/by_length.png",
                 "evaluation/metrics.json"):
        assert os.path.isfile(os.path.join(run_dir, name)), name
    with open(os.path.join(run_dir, "evaluation", "translations.tsv"), encoding="utf-8") as f:
        rows = list(csv.DictReader(f, delimiter="\t"))
    assert len(rows) == 40
    assert sum(int(r["exact"]) for r in rows) / 40 == pytest.approx(metrics["exact_match"])


def test_translate_texts_and_file(translation_run):
    cwd, run_dir, _ = translation_run
    result = call_cli("translate", run_dir, "twenty-one", "three hundred", cwd=str(cwd))
    assert result.returncode == 0, result.stderr
    lines = result.stdout.strip().splitlines()
    assert len(lines) == 2 and lines[0].startswith("twenty-one -> ")
    path = os.path.join(cwd, "in.txt")
    with open(path, "w", encoding="utf-8") as f:
        f.write("five\n\nsix\nseven\n")
    result = call_cli("translate", run_dir, "--file", path, cwd=str(cwd))
    assert result.returncode == 0, result.stderr
    assert len(result.stdout.split("\n")) == 5 and result.stdout.split("\n")[1] == ""
    # The same sentences from evaluate's file, translated again by `translate`.
    with open(os.path.join(run_dir, "evaluation", "translations.tsv"), encoding="utf-8") as f:
        rows = list(csv.DictReader(f, delimiter="\t"))[:3]
    result = call_cli("translate", run_dir, *[r["source"] for r in rows], "--quiet",
                     cwd=str(cwd))
    assert result.stdout.splitlines() == [r["translation"] for r in rows]


def test_model_keras_takes_text(translation_run):
    """model.keras is KerasHub's T5Seq2SeqLM with its preprocessor: it loads with keras_hub
    and translates strings, without tfsuite."""
    _, run_dir, _ = translation_run
    code = ("import keras, keras_hub; m = keras.saving.load_model(%r); "
            "m.compile(sampler='greedy'); "
            "out = m.generate('translate English to French: five', max_length=16); "
            "print(type(m).__name__, type(out).__name__)" % os.path.join(run_dir, "model.keras"))
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            timeout=300)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split()[-2:] == ["T5Seq2SeqLM", "str"]


@pytest.mark.skipif(os.environ.get("KERAS_BACKEND", "tensorflow") != "tensorflow",
                    reason="the TensorFlow pass exports the run")
def test_saved_model_runs_in_plain_tensorflow(translation_run):
    """The SavedModel needs neither KerasHub nor TF-Text: token ids in, token ids out, and
    the tokenizer next to it turns them back into the run's own translations."""
    cwd, run_dir, printed = translation_run
    with open(os.path.join(run_dir, "export.json")) as f:
        report = json.load(f)
    saved = report["formats"]["saved_model"]
    assert saved["verified"] and saved["sequence_agreement"] == 1.0
    version = report["path"]
    assert {"export.json", "request.json", "saved_model.pb", "tokenizer.model",
            "variables"} <= set(os.listdir(version))
    code = f"""
import json, sys
sys.modules["keras_hub"] = None; sys.modules["tensorflow_text"] = None  # must not be needed
import sentencepiece, tensorflow as tf
model = tf.saved_model.load({version!r})
sp = sentencepiece.SentencePieceProcessor(model_file={version!r} + "/tokenizer.model")
rows = [r["encoder_token_ids"] for r in json.load(open({version!r} + "/request.json"))["instances"]]
out = model.signatures["serving_default"](encoder_token_ids=tf.constant(rows, tf.int32))
ids = out["token_ids"].numpy()
print(json.dumps([sp.decode([int(t) for t in row if t > 1]) for row in ids]))
print(json.dumps(out["length"].numpy().tolist()))
"""
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            timeout=300)
    assert result.returncode == 0, result.stderr
    translations, lengths = (json.loads(l) for l in result.stdout.strip().splitlines()[-2:])
    with open(os.path.join(run_dir, "evaluation", "translations.tsv"), encoding="utf-8") as f:
        rows = list(csv.DictReader(f, delimiter="\t"))
    assert translations == [rows[0]["translation"], rows[1]["translation"]]
    assert all(n >= 0 for n in lengths)


def test_int8_quantization_reports_bleu_before_and_after(translation_run):
    cwd, run_dir, printed = translation_run
    assert "int8 Dense" in printed
    with open(os.path.join(run_dir, "compress", "quantize", "report.json")) as f:
        report = json.load(f)
    before, after = report["baseline"], report["compressed"]
    assert report["quantized_layers"] >= 8  # q, k, v, o and two feed-forward per block
    assert after["weight_bytes"] < 0.8 * before["weight_bytes"]
    assert {"bleu", "exact_match"} <= set(before) and {"bleu", "exact_match"} <= set(after)
    assert os.path.isfile(os.path.join(run_dir, "compress", "quantize", "model.keras"))
    with open(os.path.join(run_dir, "summary.json")) as f:
        record = json.load(f)["compress"]["quantize"]
    assert record["bleu"] == after["bleu"]


def test_evaluate_rescores_the_test_split(translation_run):
    cwd, run_dir, _ = translation_run
    with open(os.path.join(run_dir, "summary.json")) as f:
        metrics = json.load(f)["metrics"]
    result = call_cli("evaluate", run_dir, cwd=str(cwd))
    assert result.returncode == 0, result.stderr
    assert f"BLEU {metrics['bleu']:.2f}, exact match {metrics['exact_match']:.2%}" in \
        result.stdout


def test_diagnose_sets_token_accuracy_against_the_decoded_translations(translation_run):
    """This tiny run scores about 70% token accuracy under teacher forcing yet decodes most
    test sources to the same few French numbers: `diagnose` says the decoder learned the
    target language, not to read the source, from the run's own translations.tsv."""
    cwd, run_dir, _ = translation_run
    result = call_cli("diagnose", run_dir, cwd=str(cwd))
    assert result.returncode == 0, result.stderr
    with open(os.path.join(run_dir, "diagnosis", "diagnose.json"), encoding="utf-8") as f:
        verdict = next(v for v in json.load(f)["verdicts"]
                       if v["name"] == "token_accuracy_vs_bleu")
    with open(os.path.join(run_dir, "evaluation", "translations.tsv"), encoding="utf-8") as f:
        outputs = [row["translation"] for row in csv.DictReader(f, delimiter="\t")]
    with open(os.path.join(run_dir, "evaluation", "metrics.json"), encoding="utf-8") as f:
        scores = json.load(f)["metrics"]
    evidence = verdict["evidence"]
    assert evidence["distinct_translations"] == len(set(outputs))
    assert evidence["test_sentences"] == len(outputs) == 40
    assert evidence["bleu"] == scores["bleu"] and evidence["exact_match"] == scores["exact_match"]
    assert 0.3 < evidence["val_accuracy"] < 1
    assert verdict["severity"] == "problem" and len(set(outputs)) <= 8
    assert f"got {len(set(outputs))} distinct translation" in result.stdout
    assert verdict["fixes"] == ["--set train.epochs=28"]


def test_bad_inputs(translation_run, tmp_path):
    cwd, run_dir, _ = translation_run
    before = tree_hashes(run_dir)
    assert_user_error(call_cli("translate", run_dir, "", "  ", cwd=str(cwd)),
                       "Nothing to translate")
    assert_user_error(call_cli("translate", run_dir, cwd=str(cwd)), "Nothing to translate")
    assert_user_error(call_cli("translate", run_dir, "five", "--num-beams", "3", cwd=str(cwd)),
                      "needs beam search", "--sampler beam")
    empty = tmp_path / "empty.txt"
    empty.write_text("\n\n", encoding="utf-8")
    assert_user_error(call_cli("translate", run_dir, "--file", str(empty), cwd=str(cwd)),
                       "Nothing to translate")
    assert_user_error(call_cli("train", "translation", "--set", "data.path=missing.tsv",
                               cwd=str(tmp_path)), "does not exist", "missing.tsv")
    bad = tmp_path / "bad.tsv"
    bad.write_text("no tab here\nnor here\n", encoding="utf-8")
    assert_user_error(call_cli("train", "translation", "--set", f"data.path={bad}",
                               cwd=str(tmp_path)), "no valid sentence pairs",
                       "2 malformed lines")
    assert_user_error(call_cli("train", "translation", cwd=str(tmp_path)), "data.path")
    assert not os.path.exists(tmp_path / "runs")  # nothing was started
    assert tree_hashes(run_dir) == before
