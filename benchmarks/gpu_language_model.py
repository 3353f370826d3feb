"""Decoder language models on one GPU: tfsuite against Hugging Face transformers (issue 25).

    python benchmarks/gpu_language_model.py [--parts pretrain lora] [--quick] [--json FILE]

One run, side by side, every figure on the same GPU:

- `pretrain`: the ~0.85B Llama shape (`language_model.size=1b`: hidden 2048, 16 layers,
  32 heads, 8 key-value heads, FFN 5632, vocabulary 32,000), batch 8 x 2,048 tokens, bf16.
  Hugging Face `LlamaForCausalLM` (float32 weights, autocast bf16, SDPA attention, fused
  AdamW) eager and under `torch.compile`, on random token ids, warm-up steps excluded;
  against `python -m tfsuite.run train language_model` on JAX as a user runs it (the bundled
  corpus, a 32,000-piece BPE tokenizer trained by the run, `runtime.precision=
  mixed_bfloat16`, AdamW): its figure is the run's own tokens/s (the median epoch after the
  first, which compiles) from summary.json, and its peak device memory.
- `ablation` (not run by default): the pretraining shape through tfsuite's training model
  with `train_on_batch` (no CLI), with tfsuite's causal attention and with KerasHub's
  masked one.
- `lora`: the Llama-2-7B shape (hidden 4096, 32 layers, FFN 11008), LoRA rank 8 on the
  query and value projections, batch 1 x 2,048 tokens: Hugging Face + PEFT (bf16 weights,
  float32 adapters, eager) against tfsuite's training model (mixed_bfloat16: float32
  weights) (`CausalLMTraining`: the KerasHub backbone with
  `enable_lora`, the chunked loss) compiled by Keras on JAX and stepped with
  `train_on_batch`. Not the CLI: a LoRA run starts from a preset on disk, and a 7B preset,
  its checkpoints and its merged model.keras (about 27 GB each in float32) do not fit the GPU
  machine's 64 GB disk.
- `bf16` (not run by default): the pretraining shape through tfsuite's training model with
  float32 weights (mixed_bfloat16) against bfloat16 weights with float32 and with bfloat16
  Adam state (`runtime.precision=bfloat16`, `train.optimizer_state`), and the LoRA shape
  with bfloat16 weights.

MFU: (6 N + 12 L H S) FLOP per token (N: every weight, the input embedding included, as
issue 25's table counts; L layers, H hidden, S sequence length) over the bf16 matrix rate
measured in this run (8192^3 products). LoRA's rows give tokens/s and memory only (the
frozen weights take no weight gradients, so 6 N overcounts).

Each measurement runs in its own process (PyTorch and JAX never share the GPU's memory).
`--quick` runs every path on tiny shapes on whatever device there is (a CPU check of the
script). Prints a table, then one line of JSON.
"""

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

from tfsuite.language_model.config import MODEL_SIZES  # noqa: E402 (no Keras import)

# {part: (size, batch, sequence, vocabulary, LoRA rank)}; --quick: tiny shapes.
PARTS = {"pretrain": ("1b", 8, 2048, 32000, None), "lora": ("7b", 1, 2048, 32000, 8)}
QUICK = {"pretrain": ("tiny", 64, 64, 2000, None), "lora": ("tiny", 1, 64, 2000, 8)}


def flop_per_token(params, size, sequence):
    layers, _, _, hidden, _ = MODEL_SIZES[size]
    return 6 * params + 12 * layers * hidden * sequence


# ---------------------------------------------------------------- workers (own process)


def matmul_worker():
    """The bf16 matrix rate in TFLOP/s (gpu_train_throughput's 8192^3 products)."""
    import torch

    from benchmarks.gpu_train_throughput import matmul_tflops

    if not torch.cuda.is_available():
        return {"tflops": None, "gpu": "none (CPU)"}
    return {"tflops": matmul_tflops(), "gpu": torch.cuda.get_device_name(0),
            "torch": torch.__version__}


def hf_worker(size, batch, sequence, vocab, lora_rank, compiled, warmup, steps):
    """Hugging Face LlamaForCausalLM (+ PEFT LoRA): tokens/s and peak memory."""
    import torch
    import transformers

    cuda = torch.cuda.is_available()
    device = "cuda" if cuda else "cpu"
    layers, heads, kv_heads, hidden, ffn = MODEL_SIZES[size]
    config = transformers.LlamaConfig(
        vocab_size=vocab, hidden_size=hidden, intermediate_size=ffn,
        num_hidden_layers=layers, num_attention_heads=heads, num_key_value_heads=kv_heads,
        max_position_embeddings=max(4096, sequence), tie_word_embeddings=False)
    torch.manual_seed(0)
    # Pretraining keeps float32 weights under bf16 autocast (as Keras' mixed_bfloat16);
    # LoRA freezes a bf16 model (PEFT keeps its adapters in float32).
    dtype = torch.bfloat16 if lora_rank else torch.float32
    with torch.device(device):
        model = transformers.LlamaForCausalLM._from_config(
            config, attn_implementation="sdpa", dtype=dtype)
    if lora_rank:
        import peft

        model = peft.get_peft_model(model, peft.LoraConfig(
            r=lora_rank, lora_alpha=lora_rank, lora_dropout=0.0,
            target_modules=["q_proj", "v_proj"]))
    params = sum(p.numel() for p in model.parameters())
    trained = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(trained, lr=1e-4, fused=cuda)
    ids = torch.randint(3, vocab, (batch, sequence), device=device)
    forward = torch.compile(model) if compiled else model

    def step():
        with torch.autocast(device, dtype=torch.bfloat16, enabled=cuda):
            loss = forward(input_ids=ids, labels=ids).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        return loss

    started = time.perf_counter()
    for _ in range(warmup):
        first = float(step())
    if cuda:
        torch.cuda.synchronize()
    warm = time.perf_counter() - started
    started = time.perf_counter()
    for _ in range(steps):
        last = step()
    last = float(last)
    if cuda:
        torch.cuda.synchronize()
    seconds = time.perf_counter() - started
    return {"tokens_per_second": batch * sequence * steps / seconds, "params": params,
            "trainable_params": sum(p.numel() for p in trained), "warmup_seconds": warm,
            "peak_memory_bytes": torch.cuda.max_memory_allocated() if cuda else None,
            "loss_first": first, "loss_last": last, "transformers": transformers.__version__}


def keras_worker(size, batch, sequence, vocab, lora_rank, warmup, steps, masked=False,
                 remat=False, precision="mixed_bfloat16", state=None):
    """tfsuite's training model on JAX, `train_on_batch` on device arrays: tokens/s and
    peak memory. `precision`: mixed_bfloat16 (float32 weights, bf16 compute: what a
    tfsuite run on a GPU uses by default) or bfloat16 (bf16 weights, tfsuite's AdamW with
    `state` moments: `runtime.precision=bfloat16`, `train.optimizer_state`); with LoRA,
    KerasHub's `enable_lora`. `masked`: KerasHub's own attention (the causal mask as a
    bias) instead of tfsuite's `is_causal` path. `remat`: `train.remat` (each decoder layer
    rematerialized)."""
    import jax
    import keras
    import numpy as np

    from tfsuite.language_model import model as lm_model
    from tfsuite.language_model.config import LanguageModelConfig
    from tfsuite.training.optimizers import build_optimizer

    keras.config.set_dtype_policy(precision)
    lm = LanguageModelConfig(size=size)
    backbone = lm_model.build_backbone(lm, vocab)
    if lora_rank:
        backbone.enable_lora(lora_rank)
    model = lm_model.CausalLMTraining(backbone, lm.loss_chunk, causal=not masked, remat=remat)
    optimizer = build_optimizer("adamw", 1e-4, weight_decay=0.004, bfloat16_state=state
                                if precision == "bfloat16" else None)
    model.compile(optimizer=optimizer, loss=lm_model.TokenLoss(), jit_compile=True)
    ids = np.random.default_rng(0).integers(3, vocab, (batch, sequence + 1)).astype("int32")
    x = {"token_ids": jax.device_put(ids[:, :-1]), "labels": jax.device_put(ids[:, 1:])}
    y = x["labels"]
    trainable, total = lm_model.weight_counts(backbone)
    started = time.perf_counter()
    for _ in range(warmup):
        first = float(model.train_on_batch(x, y))
    warm = time.perf_counter() - started
    started = time.perf_counter()
    for _ in range(steps):
        last = model.train_on_batch(x, y, return_dict=False)
    last = float(np.asarray(last))  # waits for the last step
    seconds = time.perf_counter() - started
    device = jax.devices()[0]
    peak = (device.memory_stats() or {}).get("peak_bytes_in_use") \
        if device.platform != "cpu" else None
    return {"tokens_per_second": batch * sequence * steps / seconds, "params": total,
            "trainable_params": trainable, "warmup_seconds": warm,
            "peak_memory_bytes": peak, "loss_first": first, "loss_last": last,
            "jax": jax.__version__, "keras": keras.__version__}


def worker(name, kwargs, timeout):
    """Runs a worker in its own process; its result, or {"error": ...}."""
    code = (f"import json, sys; sys.path.insert(0, {REPO!r}); "
            f"import benchmarks.gpu_language_model as b; "
            f"print('RESULT ' + json.dumps(b.{name}(**{kwargs!r})))")
    env = {**os.environ, "KERAS_BACKEND": "jax", "PYTHONPATH": REPO + os.pathsep
           + os.environ.get("PYTHONPATH", "")}
    try:
        result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                                timeout=timeout, env=env, cwd=REPO)
    except subprocess.TimeoutExpired:
        return {"error": f"over {timeout} s"}
    lines = [line for line in result.stdout.splitlines() if line.startswith("RESULT ")]
    if result.returncode or not lines:
        return {"error": (result.stdout[-1500:] + result.stderr[-3000:]).strip()}
    return json.loads(lines[-1][len("RESULT "):])


def tfsuite_cli(size, batch, sequence, vocab, epochs, timeout):
    """`train language_model` through the CLI on JAX: the run's tokens/s and memory."""
    work = tempfile.mkdtemp(prefix="tfsuite-lm-gpu-")
    command = [sys.executable, "-m", "tfsuite.run", "train", "language_model", "--run-dir",
               os.path.join(work, "run"), "--quiet"]
    for override in (f"language_model.size={size}", f"language_model.vocab_size={vocab}",
                     "language_model.tokenizer_type=bpe",
                     f"language_model.sequence_length={sequence}", "language_model.samples=0",
                     f"train.batch_size={batch}", f"train.epochs={epochs}",
                     "train.learning_rate=3e-4", "runtime.precision=mixed_bfloat16",
                     "data.validation_split=0.01", "data.test_split=0.01",
                     "export.formats=[]"):
        command += ["--set", override]
    env = {**os.environ, "KERAS_BACKEND": "jax",
           "PYTHONPATH": REPO + os.pathsep + os.environ.get("PYTHONPATH", "")}
    started = time.perf_counter()
    try:
        result = subprocess.run(command, capture_output=True, text=True, cwd=work, env=env,
                                timeout=timeout)
    except subprocess.TimeoutExpired:
        return {"error": f"over {timeout} s"}
    wall = time.perf_counter() - started
    if result.returncode:
        return {"error": (result.stdout[-2000:] + result.stderr[-3000:]).strip()}
    with open(os.path.join(work, "run", "summary.json")) as f:
        summary = json.load(f)
    rates = summary["epoch_tokens_per_second"]
    return {"tokens_per_second": summary["tokens_per_second"], "epoch_tokens_per_second": rates,
            "params": summary["model"]["total_params"], "wall_seconds": wall,
            "peak_memory_bytes": summary.get("peak_device_memory_bytes"),
            "perplexity": summary["metrics"]["perplexity"],
            "vocabulary": summary["data"]["vocabulary_size"], "stdout": result.stdout[-1500:]}


# ---------------------------------------------------------------- the table


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--parts", nargs="+", default=["pretrain", "lora"],
                        choices=[*PARTS, "ablation", "remat", "bf16"])
    parser.add_argument("--quick", action="store_true", help="tiny shapes: checks the script")
    parser.add_argument("--epochs", type=int, default=2, help="tfsuite epochs (first compiles)")
    parser.add_argument("--steps", type=int, default=20, help="timed Hugging Face / LoRA steps")
    parser.add_argument("--json", help="also write the results to this file")
    args = parser.parse_args()
    shapes = QUICK if args.quick else PARTS
    rate = worker("matmul_worker", {}, 300)
    peak = rate.get("tflops")
    results = {"gpu": rate.get("gpu"), "bf16_matmul_tflops": peak, "quick": args.quick,
               "python": platform.python_version(), "torch": rate.get("torch"), "rows": {}}
    print(f"{rate.get('gpu')}: bf16 matrix rate "
          + (f"{peak:.0f} TFLOP/s" if peak else "not measured"), flush=True)

    def record(part, name, result, size, sequence, batch):
        result = {k: v for k, v in result.items() if k != "stdout"}
        results["rows"][name] = {"part": part, "size": size, "batch": batch,
                                 "sequence": sequence, **result}
        print(f"{name}: " + (result["error"][-2500:] if "error" in result else
                             f"{result['tokens_per_second']:,.0f} tokens/s"), flush=True)
        if args.json:
            with open(args.json, "w") as f:
                json.dump(results, f, indent=1)

    hf_warmup = 3 if args.quick else 5
    if "pretrain" in args.parts:
        size, batch, sequence, vocab, _ = shapes["pretrain"]
        shape = dict(size=size, batch=batch, sequence=sequence, vocab=vocab)
        for name, compiled, warmup in (("HF transformers eager", False, hf_warmup),
                                       ("HF transformers torch.compile", True, hf_warmup + 3)):
            record("pretrain", name, worker("hf_worker", {
                **shape, "lora_rank": None, "compiled": compiled, "warmup": warmup,
                "steps": args.steps}, 600), size, sequence, batch)
        record("pretrain", "tfsuite CLI, JAX", tfsuite_cli(
            size, batch, sequence, vocab, args.epochs, 900), size, sequence, batch)
    if "lora" in args.parts:
        size, batch, sequence, vocab, rank = shapes["lora"]
        shape = dict(size=size, batch=batch, sequence=sequence, vocab=vocab, lora_rank=rank)
        record("lora", "HF + PEFT LoRA, eager", worker("hf_worker", {
            **shape, "compiled": False, "warmup": hf_warmup, "steps": args.steps}, 600),
            size, sequence, batch)
        record("lora", "tfsuite model LoRA, JAX", worker("keras_worker", {
            **shape, "warmup": 2, "steps": args.steps}, 600), size, sequence, batch)
    if "ablation" in args.parts:  # the pretraining shape without the CLI: causal vs mask
        size, batch, sequence, vocab, _ = shapes["pretrain"]
        shape = dict(size=size, batch=batch, sequence=sequence, vocab=vocab, lora_rank=None)
        for name, masked in (("tfsuite model, train_on_batch", False),
                             ("tfsuite model, KerasHub's masked attention", True)):
            record("pretrain", name, worker("keras_worker", {
                **shape, "warmup": 2, "steps": args.steps, "masked": masked}, 600),
                size, sequence, batch)

    if "remat" in args.parts:  # train.remat: memory against compute, and a larger batch
        size, batch, sequence, vocab, _ = shapes["pretrain"]
        for name, remat, scale in (("tfsuite model, batch 8", False, 1),
                                   ("tfsuite model, batch 8, train.remat", True, 1),
                                   ("tfsuite model, batch 32", False, 4),
                                   ("tfsuite model, batch 32, train.remat", True, 4)):
            record("remat", name, worker("keras_worker", {
                "size": size, "batch": batch * scale, "sequence": sequence, "vocab": vocab,
                "lora_rank": None, "warmup": 2, "steps": args.steps, "remat": remat}, 600),
                size, sequence, batch * scale)

    if "bf16" in args.parts:  # bfloat16 weights: float32 or bfloat16 Adam state
        size, batch, sequence, vocab, _ = shapes["pretrain"]
        for name, precision, state in (
                ("tfsuite model, mixed_bfloat16 (float32 weights)", "mixed_bfloat16", None),
                ("tfsuite model, bfloat16 weights, float32 state", "bfloat16", "float32"),
                ("tfsuite model, bfloat16 weights, bfloat16 state", "bfloat16", "bfloat16")):
            record("bf16", name, worker("keras_worker", {
                "size": size, "batch": batch, "sequence": sequence, "vocab": vocab,
                "lora_rank": None, "warmup": 2, "steps": args.steps, "precision": precision,
                "state": state}, 600), size, sequence, batch)
        size, batch, sequence, vocab, rank = shapes["lora"]
        record("lora", "tfsuite model LoRA, JAX, bfloat16 weights", worker("keras_worker", {
            "size": size, "batch": batch, "sequence": sequence, "vocab": vocab,
            "lora_rank": rank, "warmup": 2, "steps": args.steps, "precision": "bfloat16",
            "state": "float32"}, 600), size, sequence, batch)

    print("\n| part | run | tokens/s | vs torch.compile | MFU | peak memory | notes |\n"
          "|---|---|---|---|---|---|---|")
    reference = results["rows"].get("HF transformers torch.compile", {}).get("tokens_per_second")
    lora_reference = results["rows"].get("HF + PEFT LoRA, eager", {}).get("tokens_per_second")
    for name, row in results["rows"].items():
        if "error" in row:
            print(f"| {row['part']} | {name} | failed | | | | {row['error'][-200:]!r} |")
            continue
        tokens = row["tokens_per_second"]
        base = reference if row["part"] == "pretrain" else lora_reference
        ratio = f"{tokens / base:.2f}x" if base else "-"
        mfu = "-"
        if peak and row["part"] in ("pretrain", "remat", "bf16"):
            row["mfu"] = tokens * flop_per_token(row["params"], row["size"],
                                                 row["sequence"]) / (peak * 1e12)
            mfu = f"{row['mfu']:.1%}"
        memory = f"{row['peak_memory_bytes'] / 2 ** 30:.1f} GiB" \
            if row.get("peak_memory_bytes") else "-"
        notes = [f"{row['params'] / 1e6:,.0f}M weights"]
        if row.get("trainable_params") and row["part"] == "lora":
            notes.append(f"{row['trainable_params']:,} trained")
        if "epoch_tokens_per_second" in row:
            notes.append("epochs " + " ".join(f"{r:,.0f}" for r in
                                              row["epoch_tokens_per_second"]))
            notes.append(f"{row['wall_seconds']:.0f} s wall, perplexity "
                         f"{row['perplexity']:.1f}, {row['vocabulary']:,} pieces")
        if "warmup_seconds" in row:
            notes.append(f"warm-up {row['warmup_seconds']:.0f} s; loss "
                         f"{row['loss_first']:.2f} -> {row['loss_last']:.2f}")
        print(f"| {row['part']} | {name} | {tokens:,.0f} | {ratio} | {mfu} | {memory} | "
              f"{'; '.join(notes)} |")
    print(json.dumps(results))


if __name__ == "__main__":
    main()
