"""The language_model task: a decoder (KerasHub Llama) pretrained on your text, or a local
preset fine-tuned (LoRA with model.lora_rank), scored by held-out perplexity.

A run directory holds what every run holds (config.yaml, checkpoints/, logs/,
history.csv, model.keras, training_curves.png, evaluation/, summary.json) plus
tokenizer.model (SentencePiece, Llama's ids). model.keras is KerasHub's
`LlamaCausalLM` with its preprocessor: it loads with `import keras_hub` and generates
from text. Training resumes after its last completed epoch.
"""

import dataclasses
import os

from tfsuite.config import PRECISIONS, TaskSchema, unused_image_keys
from tfsuite.config.sections import ModelConfig
from tfsuite.data.sentencepiece import TOKENIZER_FILE
from tfsuite.errors import user_error
from tfsuite.language_model import config as lm_config
from tfsuite.run_dir import SUMMARY
from tfsuite.task import Task, model_line, register_task


@register_task
class LanguageModelTask(Task):
    """Next-token prediction on packed windows of documents."""

    name = "language_model"
    noun = "language models"
    label = "language model"
    schema = TaskSchema(
        task=name, data_sources=("kjv", "text"), section="language_model",
        section_class=lm_config.LanguageModelConfig,
        choices={"language_model.size": tuple(lm_config.MODEL_SIZES),
                 "language_model.sampler": lm_config.SAMPLERS,
                 "language_model.tokenizer_type": lm_config.TOKENIZER_TYPES,
                 # bfloat16: the weights too (Adam's update in float32, bfloat16_optimizers)
                 "runtime.precision": (*PRECISIONS, "bfloat16")},
        validate=lm_config.validate, unused={
            **{key: why for key, why in unused_image_keys("language_model").items()
               if key != "model"},
            **{f"model.{f.name}": "an image model's setting; this task's model is set in "
               "`language_model.*`" for f in dataclasses.fields(ModelConfig)
               if f.name != "lora_rank"},
            "train.label_smoothing": "the language model's loss is the plain cross-entropy"})
    unit = "sequences"
    run_files = (TOKENIZER_FILE,)
    commands = {"generate": "language models: continue a prompt with a run's model",
                "write-corpus": "write the bundled corpus (the King James Bible) as text"}

    # ---------------------------------------------------------------- the trainer's

    def build_model(self, data):
        from tfsuite.language_model.model import CausalLMTraining

        return CausalLMTraining(self._backbone(data), self.config.language_model.loss_chunk,
                                remat=self.config.train.remat)

    def _backbone(self, data):
        from tfsuite.language_model import model as lm_model

        lm = self.config.language_model
        if lm.preset:
            backbone = lm_model.load_backbone(lm.preset)  # inside the strategy scope
            if self.config.model.lora_rank:
                backbone.enable_lora(self.config.model.lora_rank)
            return backbone
        return lm_model.build_backbone(lm, data.num_classes)

    def layout_map(self, mesh):
        """KerasHub's Llama layout (Gemma's recipe): the kernels split over both axes of
        the [batch, model] mesh, FSDP-style over `batch`, tensor-parallel over `model`."""
        from tfsuite.language_model.model import keras_hub

        return keras_hub().models.LlamaBackbone.get_layout_map(
            mesh, model_parallel_dim_name="model", data_parallel_dim_name="batch")

    def loss(self):
        from tfsuite.language_model.model import TokenLoss

        return TokenLoss()

    def metrics(self, num_classes):
        from tfsuite.language_model.model import metrics

        return metrics()

    # ---------------------------------------------------------------- the run

    def prepare(self, runtime, run_dir, resuming):
        """The corpus, its split by document, the tokenizer and the windows; a bad corpus,
        a missing preset or a sequence the model cannot take fails here."""
        from tfsuite.language_model.corpus import Corpus, bundled_text, read_corpus, \
            split_documents
        from tfsuite.language_model.data import build_data
        from tfsuite.language_model.model import context_length

        config, lm = self.config, self.config.language_model
        longest = context_length(lm)  # resolves the preset: a missing one fails here
        if longest is not None and lm.sequence_length > longest:
            raise user_error("The sequence length is beyond the model's", f"at most "
                             f"{longest} tokens ({'the preset' if lm.preset else lm.size}'s "
                             "context)", f"language_model.sequence_length="
                             f"{lm.sequence_length}", "Lower language_model.sequence_length.")
        if config.data.source == "kjv":
            corpus = Corpus(bundled_text(), "the King James Bible (purebible)")
        else:
            corpus = read_corpus(config.data.path)
        splits = split_documents(corpus.documents, config.data.validation_split,
                                 config.data.test_split, config.runtime.seed)
        tokenizer = _tokenizer(config, run_dir, splits[0], resuming)
        data = build_data(config, corpus, splits, tokenizer, runtime.needs_full_batches)
        if data.val is None:
            import logging

            logging.getLogger("tfsuite").warning(
                "No validation windows (%d validation documents, %s tokens): the run "
                "monitors the training loss and the bigram's mix is not tuned. Raise "
                "data.validation_split for a held-out curve.", len(splits[1]),
                f"{data.report['tokens'][1]:,}")
        return dataclasses.replace(data, tokenizer=tokenizer, test_documents=splits[2])

    def write_run_files(self, run_dir, data, resuming):
        data.tokenizer.save(os.path.join(run_dir, TOKENIZER_FILE))

    def print_start(self, run_dir, runtime, data, resuming):
        from tfsuite.language_model.config import model_shape

        super().print_start(run_dir, runtime, data, resuming)
        r, lm = data.report, self.config.language_model
        print(f"  data: {r['path']}: {r['documents']:,} documents, {r['characters']:,} "
              f"characters; documents {'/'.join(f'{n:,}' for n in r['split_documents'])} "
              f"(train/val/test), tokens {'/'.join(f'{n:,}' for n in r['tokens'])}"
              + (f"; {r['skipped_records']:,} JSONL records without text skipped"
                 if r["skipped_records"] else ""))
        print(f"  tokenizer: SentencePiece, {r['vocabulary_size']:,} pieces; windows of "
              f"{lm.sequence_length} tokens: {'/'.join(f'{n:,}' for n in r['windows'])}")
        if lm.preset:
            model = f"preset {lm.preset}"
        else:
            layers, heads, kv_heads, hidden, intermediate = model_shape(lm)
            model = (f"Llama {lm.size} ({layers} layers, {heads} heads, {kv_heads} key-value "
                     f"heads, hidden {hidden}, feed-forward {intermediate})")
        print(model_line(model, runtime), flush=True)

    def model_to_save(self, model, data):
        """A text-in LlamaCausalLM; after LoRA, with the LoRA factors merged into the
        kernels (a plain model any KerasHub user loads)."""
        from tfsuite.language_model.model import merged, with_preprocessor

        return with_preprocessor(merged(model.backbone), data.tokenizer.proto,
                                 self.config.language_model.sequence_length)

    def write_model_files(self, model, run_dir):
        """After LoRA, its weights alone (RUN_DIR/lora.lora.h5: `backbone.load_lora_weights`
        puts them on the preset again)."""
        from tfsuite.language_model.model import LORA_FILE, lora_enabled

        if lora_enabled(model.backbone):
            model.backbone.save_lora_weights(os.path.join(run_dir, LORA_FILE))

    def evaluate_model(self, model, data, out_dir):
        from tfsuite.language_model.evaluation import evaluate

        lm = self.config.language_model
        # The text model is made only for the samples (after LoRA, a merged copy).
        return evaluate(model, data, lm, out_dir,
                        generate=lambda prompts: generate_texts(
                            self.model_to_save(model, data), prompts, lm))

    def summary(self, fitted, data, runtime):
        length = self.config.language_model.sequence_length
        progress = fitted.trainer.progress
        return {"data": data.report, "runtime": runtime.report(),
                "tokens_per_second": round((fitted.throughput or 0) * length, 1),
                # Each epoch this process ran, the first (compiling) included.
                "epoch_tokens_per_second": [
                    round(progress.num_examples * length / s, 1)
                    for s in (progress.epoch_seconds if progress else []) if s > 0],
                "peak_device_memory_bytes": runtime.peak_memory()}

    def model_name(self):
        return "llama"

    def model_summary(self, model, data, run_dir):
        from tfsuite.language_model.model import weight_counts

        from tfsuite.language_model.model import LORA_FILE

        trainable, total = weight_counts(model.backbone)
        lora = self.config.model.lora_rank
        return {"preset": self.config.language_model.preset,
                "trainable_params": trainable, "total_params": total, "lora_rank": lora,
                "lora_weights": os.path.join(run_dir, LORA_FILE) if lora else None,
                "tokenizer": os.path.join(run_dir, TOKENIZER_FILE)}

    def format_summary(self, summary):
        m, peak = summary["metrics"], summary.get("peak_device_memory_bytes")
        run_dir = os.path.dirname(summary["model"]["path"])
        lines = [f"Done: {summary['experiment']} - perplexity {m['perplexity']:.2f} "
                 f"(bigram {m['bigram_perplexity']:.2f}, x{m['perplexity_vs_bigram']:.2f}), "
                 f"token accuracy {m['token_accuracy']:.2%} on {m['test_tokens']:,} held-out "
                 f"tokens - {summary['epochs_completed']} epochs - "
                 f"{summary['wall_seconds']:.0f}s - {summary['tokens_per_second']:,.0f} "
                 "tokens/s" + (f" - peak device memory {peak / 2 ** 30:.1f} GiB" if peak
                               else "")]
        model = summary["model"]
        if model.get("lora_rank"):
            lines.append(f"  LoRA rank {model['lora_rank']}: {model['trainable_params']:,} of "
                         f"{model['total_params']:,} weights trained "
                         f"({model['trainable_params'] / model['total_params']:.2%}); "
                         f"weights alone: {model['lora_weights']}; model.keras has them "
                         "merged")
        for sample in m.get("samples", []):
            lines.append(f"  sample: {sample['text'][:160]!r}")
        lines += [f"  model: {summary['model']['path']} (tokenizer: "
                  f"{summary['model']['tokenizer']})",
                  f"  curves: {os.path.join(run_dir, 'training_curves.png')}",
                  f"  summary: {os.path.join(run_dir, SUMMARY)}",
                  f"  try it: python -m tfsuite.run generate {run_dir} \"In the beginning\""]
        return "\n".join(lines)

    # ---------------------------------------------------------------- finished runs

    def load_model(self, run_dir):
        from tfsuite.language_model.model import keras_hub

        keras_hub()  # registers KerasHub's classes before model.keras is read
        return super().load_model(run_dir)

    def generate(self, run_dir, prompts, max_new_tokens=None, sampler=None,
                 temperature=None):
        """Texts that continue `prompts` (each text starts with its prompt)."""
        lm = self.config.language_model
        lm = dataclasses.replace(lm, **{k: v for k, v in (
            ("max_new_tokens", max_new_tokens), ("sampler", sampler),
            ("temperature", temperature)) if v is not None})
        lm_config.validate_generation(lm)
        if not prompts or not all(p.strip() for p in prompts):
            raise user_error("Nothing to continue", "a non-empty prompt", f"{prompts!r}",
                             'e.g. python -m tfsuite.run generate RUN_DIR "In the beginning"')
        return generate_texts(self.load_model(run_dir), prompts, lm)

    def predict(self, run_dir, inputs, **options):
        single = isinstance(inputs, str)
        texts = self.generate(run_dir, [inputs] if single else list(inputs), **options)
        return texts[0] if single else texts

    def serving_formats(self, requested):
        from tfsuite.language_model.export import formats_for

        return formats_for(requested)

    def serving_export(self, run_dir, export_config):
        from tfsuite.language_model.export import LanguageModelExport

        return LanguageModelExport(run_dir, self.load_model(run_dir),
                                   export_config.verify_samples, export_config.atol)

    def evaluate_run(self, run_dir, options):
        raise user_error("`evaluate` does not score language models yet", "a run of "
                         "another task", f"{run_dir} (task={self.name})",
                         "The held-out perplexity is in RUN_DIR/evaluation/metrics.json.")

    @classmethod
    def add_command(cls, name, parser):
        from tfsuite.language_model import commands

        if name == "generate":
            return commands.add_generate_command(parser)
        return commands.add_write_corpus_command(parser)


def generate_texts(text_model, prompts, lm):
    """`LlamaCausalLM.generate` with the config's sampler: prompt + up to
    `lm.max_new_tokens` tokens each."""
    from tfsuite.language_model.model import sampler

    text_model.compile(sampler=sampler(lm))
    lengths = [len(ids) for ids in text_model.preprocessor.tokenizer(prompts)]
    out = text_model.generate(list(prompts), max_length=max(lengths) + 1 + lm.max_new_tokens)
    return [out] if isinstance(out, str) else list(out)


def _tokenizer(config, run_dir, train_documents, resuming):
    """Kept when resuming, the preset's, or trained on the training documents (seeded)."""
    from tfsuite.language_model.tokenizer import Tokenizer, train_tokenizer

    path = os.path.join(run_dir, TOKENIZER_FILE)
    lm = config.language_model
    if resuming and os.path.isfile(path):
        return Tokenizer(path)
    if lm.preset:
        from tfsuite.language_model.model import preset_tokenizer

        return Tokenizer(preset_tokenizer(lm.preset))
    return Tokenizer(train_tokenizer(train_documents, lm.vocab_size, lm.tokenizer_type,
                                     config.runtime.seed))
