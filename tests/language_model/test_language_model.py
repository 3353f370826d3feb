"""`train language_model` on text as a user runs it, `generate`, `write-corpus`, the
chunked loss, the bigram baseline, and the bad inputs they refuse."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from tests.conftest import assert_user_error, call_cli, run_cli, trained_run

pytestmark = pytest.mark.backend_agnostic  # also run with KERAS_BACKEND=jax (README)

# A 2-layer decoder of width 32 on 60 chapters: what the assertions need, in seconds.
TINY = ["--set", "language_model.vocab_size=300", "--set", "language_model.sequence_length=32",
        "--set", "language_model.num_layers=2", "--set", "language_model.hidden_dim=32",
        "--set", "language_model.intermediate_dim=64", "--set", "language_model.loss_chunk=16",
        "--set", "language_model.samples=1", "--set", "language_model.max_new_tokens=8",
        "--set", "train.batch_size=16", "--set", "train.epochs=2"]


# The preset's own shapes and tokenizer; LoRA's factors learn at a higher rate.
LORA_RUN = ["--set", "language_model.sequence_length=32", "--set", "language_model.loss_chunk=16",
            "--set", "language_model.samples=1", "--set", "language_model.max_new_tokens=8",
            "--set", "train.batch_size=16", "--set", "train.epochs=2",
            "--set", "train.learning_rate=0.01"]

# XLA's compilation of the tiny decoder costs about 45 s on TensorFlow on the CPU (the
# epoch itself about 10): runs whose subject is not the compiled step leave it off there.
# The shared run keeps the experiment's jit_compile: true; JAX always compiles.
NO_XLA_ON_TENSORFLOW = (["--set", "train.jit_compile=false"]
                        if os.environ.get("KERAS_BACKEND", "tensorflow") == "tensorflow" else [])


def write_small_corpus(folder, chapters=60):
    """The bundled corpus as `write-corpus` writes it, and its first chapters as small.txt."""
    result = call_cli("write-corpus", folder)
    assert result.returncode == 0, result.stderr
    with open(os.path.join(folder, "kjv.txt"), encoding="utf-8") as f:
        documents = f.read().split("\n\n")
    with open(os.path.join(folder, "small.txt"), "w", encoding="utf-8") as f:
        f.write("\n\n".join(documents[:chapters]) + "\n")
    return len(documents)


@pytest.fixture(scope="module")
def lm_run(tmp_path_factory):
    import keras

    work, result = trained_run(
        tmp_path_factory, f"language_model_{keras.backend.backend()}", "train",
        "language_model", "--set", "data.source=text", "--set", "data.path=corpus/small.txt",
        *TINY, prepare=lambda work: write_small_corpus(os.path.join(work, "corpus")))
    assert result.returncode == 0, result.stdout + result.stderr
    return work, os.path.join(work, "runs", "language_model"), result.stdout


def test_a_run_trains_scores_and_writes_its_folder(lm_run):
    work, run_dir, printed = lm_run
    with open(os.path.join(run_dir, "summary.json")) as f:
        summary = json.load(f)
    m, data = summary["metrics"], summary["data"]
    assert summary["status"] == "completed" and summary["epochs_completed"] == 2
    assert data["documents"] == 60 and sum(data["split_documents"]) == 60
    assert m["test_tokens"] == data["windows"][2] * 32
    # Better than knowing nothing (the vocabulary's size), and the bigram is scored too.
    assert 1 < m["perplexity"] < data["vocabulary_size"]
    assert 1 < m["bigram_perplexity"] < data["vocabulary_size"]
    assert m["perplexity_vs_bigram"] == pytest.approx(m["perplexity"] / m["bigram_perplexity"])
    assert 0 <= m["token_accuracy"] <= 1 and len(m["samples"]) == 1
    with open(os.path.join(run_dir, "history.csv")) as f:
        rows = f.read().splitlines()
    header = rows[0].split(",")
    losses = [float(r.split(",")[header.index("loss")]) for r in rows[1:]]
    assert len(losses) == 2 and losses[1] < losses[0]
    assert "val_perplexity" in header
    for name in ("model.keras", "tokenizer.model", "training_curves.png", "config.yaml",
                 "evaluation/metrics.json", "evaluation/samples.txt", "export.json"):
        assert os.path.isfile(os.path.join(run_dir, name)), name
    with open(os.path.join(run_dir, "export.json")) as f:
        preset = json.load(f)["formats"]["keras_hub_preset"]
    assert preset["verified"] and preset["max_logit_difference"] <= 1e-4
    for name in ("config.json", "tokenizer.json", "preprocessor.json", "model.weights.h5"):
        assert os.path.isfile(os.path.join(work, preset["path"], name)), name
    assert "perplexity" in printed and "(bigram" in printed and "try it: " in printed


def test_generate_continues_the_prompt(lm_run):
    work, run_dir, _ = lm_run
    result = call_cli("generate", run_dir, "In the beginning", "--max-new-tokens", "6",
                      "--sampler", "greedy", cwd=work)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("In the beginning") and len(result.stdout.strip()) > 16
    again = call_cli("generate", run_dir, "In the beginning", "--max-new-tokens", "6",
                     "--sampler", "greedy", cwd=work)
    assert again.stdout == result.stdout  # greedy is deterministic
    assert_user_error(call_cli("generate", run_dir, "x", "--max-new-tokens", "0", cwd=work),
                      "language_model.max_new_tokens")


@pytest.mark.skipif(os.environ.get("KERAS_BACKEND", "tensorflow") != "tensorflow",
                    reason="one process is enough: the file is the same on every backend")
def test_model_keras_and_the_preset_generate_with_keras_hub_alone(lm_run):
    """model.keras and the exported preset folder are KerasHub's LlamaCausalLM with its
    preprocessor: text in, the same text out, in a Python where tfsuite cannot be imported."""
    work, run_dir, _ = lm_run
    with open(os.path.join(run_dir, "export.json")) as f:
        preset = os.path.join(work, json.load(f)["formats"]["keras_hub_preset"]["path"])
    code = ("import sys; sys.modules['tfsuite'] = None\n"
            "import keras, keras_hub\n"
            f"m = keras.saving.load_model({os.path.join(run_dir, 'model.keras')!r})\n"
            f"p = keras_hub.models.LlamaCausalLM.from_preset({preset!r})\n"
            "for model in (m, p):\n"
            "    model.compile(sampler='greedy')\n"
            "    print(type(model).__name__, model.generate('And God said', max_length=12))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            timeout=300)
    assert result.returncode == 0, result.stderr
    keras_file, from_preset = result.stdout.strip().splitlines()[-2:]
    assert keras_file.startswith("LlamaCausalLM And God said")
    assert from_preset == keras_file


def test_chunked_loss_equals_the_full_cross_entropy():
    """The training model (causal attention without the mask, the loss in chunks) against
    KerasHub's own masked backbone and full logits; grouped key-value heads."""
    import keras

    from tfsuite.language_model.config import LanguageModelConfig
    from tfsuite.language_model.model import CausalLMTraining, build_backbone

    lm = LanguageModelConfig(num_layers=1, hidden_dim=16, intermediate_dim=32,
                             num_query_heads=2, num_key_value_heads=1)
    backbone = build_backbone(lm, 50)
    ids = np.random.default_rng(0).integers(0, 50, (3, 21)).astype("int32")
    out = keras.ops.convert_to_numpy(CausalLMTraining(backbone, loss_chunk=8, causal=True)(
        {"token_ids": ids[:, :-1], "labels": ids[:, 1:]}))
    hidden = backbone({"token_ids": ids[:, :-1], "padding_mask": np.ones_like(ids[:, :-1])})
    logits = keras.ops.convert_to_numpy(
        backbone.token_embedding(hidden, reverse=True)).astype(np.float64)
    top = logits.max(-1, keepdims=True)
    expected = (np.log(np.exp(logits - top).sum(-1)) + top[..., 0]
                - np.take_along_axis(logits, ids[:, 1:, None], -1)[..., 0])
    np.testing.assert_allclose(out[..., 0], expected, atol=1e-5)
    np.testing.assert_array_equal(out[..., 1], logits.argmax(-1) == ids[:, 1:])


def _mean_loss(model):
    """f(trainable weights, batch) -> the mean token loss, stateless (for JAX's transforms)."""
    def loss(trainable, batch):
        out, _ = model.stateless_call(trainable, [v.value for v in
                                                  model.non_trainable_variables], batch)
        return out[..., 0].mean()

    return loss


def _loss_and_gradients(model, inputs):
    """The mean token loss and its gradients (JAX, compiled)."""
    import jax

    value, grads = jax.jit(jax.value_and_grad(_mean_loss(model)))([v.value for v in
                                                      model.trainable_variables],
                                                     jax.tree.map(jax.numpy.asarray, inputs))
    return float(value), [np.asarray(g) for g in grads]


def test_remat_recomputes_each_decoder_layer_with_the_same_gradients():
    """`train.remat`: each decoder layer under `keras.remat` gives the loss and gradients of
    the plain model, and the activations JAX keeps for the backward pass shrink to the
    layers' inputs (`print_saved_residuals`, the bytes of everything but the weights).
    On TensorFlow (`recompute_grad`) the LoRA run below trains with it through the CLI."""
    import keras

    if keras.backend.backend() != "jax":
        pytest.skip("JAX's residuals, in the JAX pass; here the LoRA run trains with remat")

    from tfsuite.language_model.config import LanguageModelConfig
    from tfsuite.language_model.model import CausalLMTraining, build_backbone

    lm = LanguageModelConfig(num_layers=2, hidden_dim=16, intermediate_dim=32,
                             num_query_heads=2, num_key_value_heads=1)
    ids = np.random.default_rng(0).integers(0, 64, (2, 33)).astype("int32")
    inputs = {"token_ids": ids[:, :-1], "labels": ids[:, 1:]}
    found = {}
    for remat in (False, True):
        keras.utils.set_random_seed(0)
        model = CausalLMTraining(build_backbone(lm, 64), loss_chunk=16, remat=remat)
        model(inputs)
        found[remat] = (*_loss_and_gradients(model, inputs), _residual_bytes(model, inputs))
    (plain, plain_grads, plain_kept), (remat, remat_grads, remat_kept) = found[False], \
        found[True]
    assert remat == pytest.approx(plain, abs=1e-6)
    assert max(float(np.abs(a - b).max()) for a, b in zip(plain_grads, remat_grads)) < 1e-6
    assert remat_kept < 0.2 * plain_kept, (plain_kept, remat_kept)


def _residual_bytes(model, inputs):
    """Bytes JAX keeps from the forward pass for the backward one, the weights excluded."""
    import contextlib
    import io
    import re

    from jax.ad_checkpoint import print_saved_residuals

    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        print_saved_residuals(_mean_loss(model), [v.value for v in model.trainable_variables], inputs)
    total = 0
    for line in printed.getvalue().splitlines():
        match = re.match(r"(\w+)\[([\d,]*)\]", line)
        if match and "from the argument" not in line:
            total += int(np.prod([int(d) for d in match[2].split(",") if d])) * \
                np.dtype(match[1].replace("f", "float").replace("i", "int")
                         .replace("bool", "bool_")).itemsize
    return total


def test_bigram_baseline_counts():
    from tfsuite.language_model.evaluation import Bigram

    stream = np.array([0, 1, 0, 1, 0, 2])
    model = Bigram(stream, 3, mix=1.0)
    # After 0: 1 twice, 2 once.
    np.testing.assert_allclose(np.exp(model.log_probs(np.array([0, 0]), np.array([1, 2]))),
                               [2 / 3, 1 / 3])
    model.mix = 0.5
    unigram = (np.bincount(stream, minlength=3) + 1) / (len(stream) + 3)
    np.testing.assert_allclose(np.exp(model.log_probs(np.array([2]), np.array([1]))),
                               unigram[1])  # 2 is never followed: the unigram alone


def test_windows_overlap_by_one():
    from tfsuite.language_model.data import windows

    stream = np.arange(10)
    cut = windows(stream, 3)
    assert cut.tolist() == [[0, 1, 2, 3], [3, 4, 5, 6], [6, 7, 8, 9]]


@pytest.mark.parametrize("layout", ["folder", "jsonl"])
def test_folders_and_jsonl_are_read_by_document(tmp_path, layout):
    from tfsuite.language_model.corpus import read_corpus, split_documents

    if layout == "folder":
        (tmp_path / "a.txt").write_text("one\ntwo\n\nthree\n", encoding="utf-8")
        (tmp_path / "sub").mkdir()
        (tmp_path / "sub" / "b.md").write_text("four", encoding="utf-8")
        (tmp_path / "notes.csv").write_text("not text", encoding="utf-8")
        corpus = read_corpus(str(tmp_path))
        assert corpus.documents == ["one\ntwo", "three", "four"] and corpus.files == 2
    else:
        path = tmp_path / "docs.jsonl"
        path.write_text('{"text": "one"}\n{"text": ""}\n\n{"id": 3}\n{"text": "two"}\n',
                        encoding="utf-8")
        corpus = read_corpus(str(path))
        assert corpus.documents == ["one", "two"] and corpus.skipped_records == 2
    train, val, test = split_documents([f"d{i}" for i in range(20)], 0.1, 0.2, seed=0)
    assert (len(train), len(val), len(test)) == (14, 2, 4)
    assert not set(train) & set(test) and sorted(train + val + test) == sorted(
        f"d{i}" for i in range(20))


def test_write_corpus_writes_the_bible_and_never_overwrites(tmp_path):
    chapters = write_small_corpus(str(tmp_path))
    assert chapters == 1189
    text = (tmp_path / "kjv.txt").read_text(encoding="utf-8")
    assert text.startswith("In the beginning God created the heaven and the earth.\n")
    assert "<i>" not in text and "@" not in text and "$$$" not in text
    before = (tmp_path / "kjv.txt").stat().st_mtime_ns
    assert_user_error(call_cli("write-corpus", str(tmp_path)), "already exists")
    assert (tmp_path / "kjv.txt").stat().st_mtime_ns == before


@pytest.mark.parametrize("setup, overrides, fragments", [
    ("empty", [], ["The corpus has no text", "an empty file"]),
    ("latin1", [], ["not UTF-8", "line 3"]),
    ("good", ["language_model.preset=/no/such/preset"], ["not on this machine",
                                                         "/no/such/preset"]),
    ("good", ["language_model.sequence_length=4096"], ["beyond the model's", "1024"]),
    ("good", ["model.lora_rank=4"], ["model.lora_rank", "language_model.preset"]),
    ("good", ["runtime.precision=bfloat16", "train.optimizer=sgd"],
     ["train.optimizer", "['adam', 'adamw'] with runtime.precision=bfloat16"]),
    ("good", ["train.optimizer_state=bfloat16"],
     ["train.optimizer_state", "--set runtime.precision=bfloat16"]),
])
def test_bad_input_is_one_clear_error_and_writes_nothing(tmp_path, setup, overrides,
                                                         fragments):
    path = tmp_path / "corpus.txt"
    if setup == "empty":
        path.write_bytes(b"")
    elif setup == "latin1":
        path.write_bytes("first\nsecond\ncaf\u00e9\n".encode("latin-1"))
    else:
        path.write_text("In the beginning.\n\nAnd the earth.\n", encoding="utf-8")
    args = ["train", "language_model", "--set", "data.source=text", "--set",
            f"data.path={path}"]
    for override in overrides:
        args += ["--set", override]
    assert_user_error(call_cli(*args, cwd=str(tmp_path)), *fragments)
    assert not os.path.exists(tmp_path / "runs")


def test_lora_fine_tunes_a_local_preset_and_merges(lm_run, tmp_path):
    """The run's model saved as a KerasHub preset, then fine-tuned with LoRA (and
    `train.remat`, as a large model would be): only the LoRA factors train (the count is
    recorded), the loss falls, the factors are saved alone, and model.keras (merged) gives
    the logits of the preset with those factors."""
    import keras
    import keras_hub

    work, run_dir, _ = lm_run
    preset = str(tmp_path / "preset")
    keras.saving.load_model(os.path.join(run_dir, "model.keras")).save_to_preset(preset)
    result = call_cli("train", "language_model", "--set", "data.source=text", "--set",
                      f"data.path={work}/corpus/small.txt", "--set",
                      f"language_model.preset={preset}", "--set", "model.lora_rank=4",
                      "--set", "train.remat=true", *LORA_RUN, *NO_XLA_ON_TENSORFLOW,
                      "--run-dir", str(tmp_path / "lora"), cwd=str(tmp_path))
    assert result.returncode == 0, result.stderr
    with open(tmp_path / "lora" / "summary.json") as f:
        summary = json.load(f)
    model = summary["model"]
    assert model["lora_rank"] == 4 and 0 < model["trainable_params"] < 0.05 * \
        model["total_params"]
    assert "LoRA rank 4" in result.stdout
    with open(tmp_path / "lora" / "history.csv") as f:
        rows = f.read().splitlines()
    losses = [float(r.split(",")[rows[0].split(",").index("loss")]) for r in rows[1:]]
    assert losses[-1] < losses[0]

    lora = keras_hub.models.Backbone.from_preset(preset)
    lora.enable_lora(4)
    lora.load_lora_weights(model["lora_weights"])
    merged = keras.saving.load_model(str(tmp_path / "lora" / "model.keras")).backbone
    ids = np.random.default_rng(1).integers(3, 100, (2, 16)).astype("int32")
    inputs = {"token_ids": ids, "padding_mask": np.ones_like(ids)}
    np.testing.assert_allclose(keras.ops.convert_to_numpy(merged(inputs)),
                               keras.ops.convert_to_numpy(lora(inputs)), atol=1e-5)
    plain = keras_hub.models.Backbone.from_preset(preset)  # the factors did change it
    assert np.abs(keras.ops.convert_to_numpy(plain(inputs))
                  - keras.ops.convert_to_numpy(lora(inputs))).max() > 1e-4


def test_documents_are_framed_and_the_bigram_mixes_what_it_counted():
    from tfsuite.language_model.data import token_stream
    from tfsuite.language_model.evaluation import Bigram, bigram_baseline
    from tfsuite.language_model.tokenizer import BOS_ID, EOS_ID

    class Pieces:  # a tokenizer of fixed ids (what the stream does with them is the test)
        def encode_many(self, texts):
            return [[10 + len(t)] * 2 for t in texts]

    stream = token_stream(Pieces(), ["a", "bcd"])
    assert stream.tolist() == [BOS_ID, 11, 11, EOS_ID, BOS_ID, 13, 13, EOS_ID]
    counted = np.array([3, 4, 3, 5, 3, 4])
    model = Bigram(counted, 6, mix=0.25)
    unigram = (np.bincount(counted, minlength=6) + 1) / (len(counted) + 6)
    np.testing.assert_allclose(np.exp(model.log_probs(np.array([3]), np.array([4]))),
                               0.25 * 2 / 3 + 0.75 * unigram[4])
    # The mix is chosen on validation windows: where 3 is always followed by 4, the bigram
    # weighs most.
    tuned = bigram_baseline(counted, np.array([[3, 4, 3, 4], [3, 4, 3, 4]]), 6)
    assert tuned.mix == 0.95


def test_other_export_formats_are_refused_before_training(tmp_path):
    path = tmp_path / "corpus.txt"
    path.write_text("In the beginning.\n\nAnd the earth.\n", encoding="utf-8")
    assert_user_error(call_cli("train", "language_model", "--set", "data.source=text",
                               "--set", f"data.path={path}", "--set",
                               "export.formats=[saved_model]", cwd=str(tmp_path)),
                      "A language model exports as a KerasHub preset folder",
                      "['keras_hub_preset', 'keras'] or all")
    assert not os.path.exists(tmp_path / "runs")


SHARDED_CHECK = r"""
import dataclasses, json, sys
import numpy as np
from tfsuite.config import load_config
from tfsuite.task import get_task
from tfsuite.training.runtime import select_backend, setup_runtime
config = load_config("language_model", overrides=[
    "runtime.strategy=model_parallel", "runtime.cpu_devices=2",
    "language_model.num_layers=2", "language_model.hidden_dim=32",
    "language_model.intermediate_dim=64", "language_model.num_query_heads=4",
    "language_model.num_key_value_heads=2", "language_model.loss_chunk=8"])
select_backend(config.runtime)
import keras
from tfsuite.language_model.model import CausalLMTraining, build_backbone
from tfsuite.training.distribution import variable_shardings
runtime = setup_runtime(config.runtime)
task, lm = get_task(config), config.language_model
# 63 pieces: the embedding's vocabulary axis does not split over 2 devices (left whole).
build = lambda: CausalLMTraining(build_backbone(lm, 63), lm.loss_chunk)
ids = np.random.default_rng(0).integers(0, 63, (4, 17)).astype("int32")
inputs = {"token_ids": ids[:, :-1], "labels": ids[:, 1:]}
found = {}
for mesh in ([1, 2], [2, 1]):
    runtime.config = dataclasses.replace(runtime.config, mesh_shape=mesh)
    sharded = runtime.build_model(build, layout_map=task.layout_map)
    single = build()  # no distribution: every variable on one device
    single.set_weights(sharded.get_weights())
    found[str(mesh)] = {
        "shardings": variable_shardings(sharded), "report": runtime.sharded,
        "difference": float(np.abs(keras.ops.convert_to_numpy(sharded(inputs))[..., 0]
                                   - keras.ops.convert_to_numpy(single(inputs))[..., 0]).max())}
print(json.dumps(found))
"""


def test_model_parallel_uses_keras_hubs_layout_and_matches_one_device(tmp_path):
    """On 2 CPU devices (JAX): the decoder sharded by KerasHub's Llama layout map over the
    model axis ([1, 2], tensor-parallel) and the batch axis ([2, 1], FSDP-style) gives one
    device's losses within 1e-5; and a run trains so through the CLI."""
    import keras

    from tests.conftest import REPO

    if keras.backend.backend() != "jax":
        pytest.skip("keras.distribution is JAX's: run once, in the JAX pass")
    env = dict(os.environ, PYTHONPATH=REPO, KERAS_BACKEND="jax", TF_CPP_MIN_LOG_LEVEL="3")
    result = subprocess.run([sys.executable, "-c", SHARDED_CHECK], env=env,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    found = json.loads(result.stdout.strip().splitlines()[-1])
    model_axis, batch_axis = found["[1, 2]"], found["[2, 1]"]
    query = "transformer_layer_0/self_attention/query/kernel"
    gate = "transformer_layer_1/feedforward_gate_dense/kernel"
    # KerasHub's layout: query [hidden, heads, head_dim] -> (model, batch, None), the gate
    # [hidden, ffn] -> (batch, model); the report lists the axes split over 2 devices.
    assert model_axis["report"][query] == ["model", None, None]
    assert model_axis["report"][gate] == [None, "model"]
    assert batch_axis["report"][query] == [None, "batch", None]
    assert batch_axis["report"][gate] == ["batch", None]
    for found_mesh, axis in ((model_axis, "model"), (batch_axis, "batch")):
        for path, layout in found_mesh["report"].items():
            assert set(layout) <= {axis, None}, (path, layout)
            # What is reported is what JAX placed (axes of size 1 aside).
            placed = found_mesh["shardings"][path]
            assert [a if a == axis else None for a in placed] == layout, path
    # The 63-row embedding is not split over `model` (63 is odd): left whole, still equal.
    assert "token_embedding/embeddings" not in model_axis["report"]
    assert model_axis["difference"] < 1e-5 and batch_axis["difference"] < 1e-5
    write_small_corpus(str(tmp_path / "corpus"), chapters=30)
    run_dir = str(tmp_path / "sharded")
    trained = run_cli("train", "language_model", "--run-dir", run_dir, "--set",
                      "data.source=text", "--set", f"data.path={tmp_path}/corpus/small.txt",
                      *TINY, "--set", "train.epochs=1", "--set", "language_model.samples=0",
                      "--set", "export.formats=[]", "--set", "runtime.strategy=model_parallel", "--set",
                      "runtime.cpu_devices=2", "--set", "runtime.mesh_shape=[1,2]",
                      env={"KERAS_BACKEND": "jax"})
    assert trained.returncode == 0, trained.stderr[-3000:]
    with open(os.path.join(run_dir, "summary.json")) as f:
        runtime = json.load(f)["runtime"]
    assert runtime["mesh_shape"] == [1, 2]
    assert runtime["sharded_variables"][query] == ["model", None, None]
