"""The translation task: a T5 model trained on a parallel corpus, scored by BLEU.

A run directory holds what an image run holds (config.yaml, checkpoints/,
logs/, history.csv, model.keras, training_curves.png, evaluation/,
summary.json) plus tokenizer.model (the SentencePiece model, trained on the
training split) and, for the generated numbers corpus, corpus.tsv. model.keras
is KerasHub's `T5Seq2SeqLM` with its preprocessor: it loads with `import
keras_hub` and takes text. Training resumes after its last completed epoch.
"""

import dataclasses
import os

from tfsuite.config import LANGUAGE_MODEL_ONLY, TaskSchema, unused_image_keys
from tfsuite.errors import user_error
from tfsuite.io import display_path
from tfsuite.run_dir import EVALUATION, SUMMARY
from tfsuite.task import Task, check_full_batches, model_line, register_task
from tfsuite.translation import config as translation_config
from tfsuite.translation.tokenizer import TOKENIZER_FILE

CORPUS_FILE = "corpus.tsv"


@register_task
class TranslationTask(Task):
    """A T5 encoder-decoder trained with teacher forcing on token ids."""

    name = "translation"
    noun = "translation models"
    schema = TaskSchema(
        task=name, data_sources=("numbers", "parallel"), section="translation",
        section_class=translation_config.TranslationConfig,
        choices={"translation.size": tuple(translation_config.MODEL_SIZES),
                 "translation.sampler": translation_config.SAMPLERS,
                 "translation.tokenizer_type": ("unigram", "bpe")},
        validate=translation_config.validate,
        unused={**unused_image_keys("translation"), **LANGUAGE_MODEL_ONLY})
    unit = "pairs"
    run_files = (TOKENIZER_FILE, CORPUS_FILE)
    compression_methods = ("quantize",)
    commands = {"translate": "translate text with a translation run's model"}
    evaluate_options = {
        "--sampler": {"choices": ("greedy", "beam"), "help": "translation runs: decoding "
                      "(default: the run's translation.sampler)"},
        "--num-beams": {"type": int, "help": "translation runs: beams for --sampler beam "
                        "(default: the run's translation.num_beams)"}}

    # ---------------------------------------------------------------- the trainer's

    def build_model(self, data):
        from tfsuite.translation.model import build_backbone, seq2seq

        t = self.config.translation
        if t.preset:
            from tfsuite.translation.model import load_preset

            backbone, _ = load_preset(t.preset)  # built here, inside the strategy scope
        else:
            backbone = build_backbone(t, data.num_classes)
        return seq2seq(backbone)

    def loss(self):
        from tfsuite.training.losses import SparseCategoricalCrossentropy

        return SparseCategoricalCrossentropy(
            from_logits=True, label_smoothing=self.config.train.label_smoothing)

    def weighted_metrics(self, num_classes):
        """Next-token accuracy over real (not padded) target positions."""
        import keras

        return [keras.metrics.SparseCategoricalAccuracy(name="accuracy")]

    # ---------------------------------------------------------------- diagnosis

    def task_verdicts(self, run):
        from tfsuite.translation.diagnosis import token_accuracy_verdict

        verdict = token_accuracy_verdict(run)
        return ([verdict] if verdict else []), ["token_accuracy_vs_bleu"]

    def chance_loss(self, run):
        from tfsuite.translation.diagnosis import chance_loss

        return chance_loss(self.config)

    # ---------------------------------------------------------------- the run

    def prepare(self, runtime, run_dir, resuming):
        """The corpus, its splits and the tokenizer (kept when resuming, the preset's, or
        trained on the training split); a bad corpus, a preset that is not here or a
        tokenizer that cannot be trained fails here."""
        from tfsuite.translation.data import build_translation_data, load_pairs
        from tfsuite.translation.model import resolve_preset

        corpus, splits = load_pairs(self.config)
        if self.config.translation.preset:
            resolve_preset(self.config.translation.preset)
        tokenizer = _tokenizer(self.config, run_dir, splits, resuming)
        data = build_translation_data(self.config, corpus, splits, tokenizer,
                                      drop_remainder=runtime.needs_full_batches)
        check_full_batches(self.config, data, runtime)
        data = dataclasses.replace(data, train=runtime.shard_dataset(data.train),
                                   val=runtime.shard_dataset(data.val))
        return dataclasses.replace(data, corpus=corpus, tokenizer=tokenizer)

    def write_run_files(self, run_dir, data, resuming):
        data.tokenizer.save(os.path.join(run_dir, TOKENIZER_FILE))
        if self.config.data.source == "numbers":
            from tfsuite.translation.numbers import write_tsv

            write_tsv(os.path.join(run_dir, CORPUS_FILE), data.corpus.sources,
                      data.corpus.targets)

    def print_start(self, run_dir, runtime, data, resuming):
        from tfsuite.translation.model import model_sizes

        super().print_start(run_dir, runtime, data, resuming)
        t, r = self.config.translation, data.report
        print(f"  data: {r['path']}: {r['num_pairs']:,} pairs"
              + (f" ({r['skipped_lines']} malformed lines skipped)" if r["skipped_lines"]
                 else "")
              + f", {data.num_train:,} train / {data.num_val:,} val / {data.num_test:,} test")
        print(f"  tokenizer: SentencePiece, {r['vocabulary_size']} pieces; sequences "
              f"{r['source_length']} -> {r['target_length']} tokens; prefix "
              f"{r['task_prefix']!r}")
        if t.preset:
            model = f"T5 preset {t.preset}"
        else:
            layers, heads, hidden, intermediate, _ = model_sizes(t)
            model = (f"T5 {t.size} ({layers} layers, {heads} heads, hidden {hidden}, "
                     f"feed-forward {intermediate})")
        print(model_line(model, runtime), flush=True)

    def model_to_save(self, model, data):
        from tfsuite.translation.model import with_preprocessor

        return with_preprocessor(model, data.tokenizer, self.config.translation)

    def evaluate_model(self, model, data, out_dir):
        from tfsuite.translation.decoding import evaluate_translator, translator_for

        translator = translator_for(self.config, model.backbone, data.tokenizer)
        return evaluate_translator(translator, data.test_sources, data.test_targets, out_dir,
                                   self.config.translation.eval_batch_size)

    def summary(self, fitted, data, runtime):
        from tfsuite.translation.data import task_prefix

        t = self.config.translation
        return {"data": data.report,
                "decoding": {"sampler": t.sampler,
                             "num_beams": t.num_beams if t.sampler == "beam" else None,
                             "max_length": t.max_length or t.max_target_length,
                             "prefix": task_prefix(t)},
                "runtime": runtime.report(),
                "sentences_per_second": round(fitted.throughput or 0, 1)}

    def model_name(self):
        return "t5"

    def model_summary(self, model, data, run_dir):
        return {"preset": self.config.translation.preset,
                "tokenizer": os.path.join(run_dir, TOKENIZER_FILE)}

    def format_summary(self, summary):
        m = summary["metrics"]
        run_dir = os.path.dirname(summary["model"]["path"])
        lines = [f"Done: {summary['experiment']} - BLEU {m['bleu']:.2f}, exact match "
                 f"{m['exact_match']:.2%} on {m['num_sentences']:,} test sentences "
                 f"({summary['decoding']['sampler']}) - {summary['epochs_completed']} epochs - "
                 f"{summary['wall_seconds']:.0f}s",
                 f"  model: {summary['model']['path']} (tokenizer: "
                 f"{summary['model']['tokenizer']})",
                 f"  translations: {os.path.join(run_dir, EVALUATION, 'translations.tsv')}",
                 f"  curves: {os.path.join(run_dir, 'training_curves.png')}",
                 f"  summary: {os.path.join(run_dir, SUMMARY)}",
                 f"  try it: python -m tfsuite.run translate {run_dir} \"...\""]
        if summary["data"]["skipped_lines"]:
            lines.insert(1, f"  data: {summary['data']['skipped_lines']} malformed lines "
                            "skipped (see summary.json data.skipped)")
        return "\n".join(lines)

    # ---------------------------------------------------------------- finished runs

    def load_model(self, run_dir):
        from tfsuite.translation.model import keras_hub

        keras_hub()  # registers KerasHub's classes before model.keras is read
        return super().load_model(run_dir)

    def load_translator(self, run_dir, sampler_name=None, num_beams=None, max_length=None):
        from tfsuite.translation.decoding import translator_for
        from tfsuite.translation.tokenizer import load_tokenizer

        tokenizer = load_tokenizer(run_dir)
        backbone = self.load_model(run_dir).backbone
        return translator_for(self.config, backbone, tokenizer, sampler_name, num_beams,
                              max_length)

    def evaluate_run(self, run_dir, options):
        """Re-scores a finished run on its test split (`--sampler`, `--num-beams`)."""
        from tfsuite.translation.data import load_pairs
        from tfsuite.translation.decoding import evaluate_translator

        _, splits = load_pairs(self.config)
        translator = self.load_translator(run_dir, options.get("sampler"),
                                          options.get("num_beams"))
        out_dir = os.path.join(run_dir, EVALUATION)
        metrics = evaluate_translator(translator, *splits.test, out_dir,
                                      self.config.translation.eval_batch_size)
        return metrics, (
            f"BLEU {metrics['bleu']:.2f}, exact match {metrics['exact_match']:.2%}, chrF "
            f"{metrics['chrf']:.1f} on {metrics['num_sentences']:,} test sentences\n"
            f"  translations: {display_path(os.path.join(out_dir, 'translations.tsv'))}")

    def translate(self, run_dir, texts, sampler_name=None, num_beams=None, max_length=None):
        """Translations of `texts` with a finished run's model, in order, and how many
        inputs were cut to translation.max_source_length."""
        texts = [t.strip() for t in texts]
        if not texts or not any(texts):
            raise user_error("Nothing to translate", "at least one non-empty text (arguments, "
                             "or lines of --file)", f"{len(texts)} texts, all empty",
                             'e.g. python -m tfsuite.run translate RUN_DIR "twenty-one"')
        if sampler_name not in (None, *translation_config.SAMPLERS):
            raise user_error("Unknown sampler", f"one of {list(translation_config.SAMPLERS)}",
                             f"sampler={sampler_name!r}")
        if max_length is not None and max_length < 2:
            raise user_error("--max-length is too small", "an int >= 2 (tokens)",
                             f"max_length={max_length}")
        translator = self.load_translator(run_dir, sampler_name, num_beams, max_length)
        nonempty = [t for t in texts if t]
        translated = iter(translator.translate(nonempty,
                                               self.config.translation.eval_batch_size))
        return [next(translated) if t else "" for t in texts], translator.truncated

    def predict(self, run_dir, inputs, sampler=None, num_beams=None, max_length=None):
        """Translations of a text or a list of texts (options as `translate`'s flags)."""
        single = isinstance(inputs, str)
        translations, _ = self.translate(run_dir, [inputs] if single else list(inputs),
                                         sampler, num_beams, max_length)
        return translations[0] if single else translations

    def serving_formats(self, requested):
        from tfsuite.translation.export import formats_for

        return formats_for(requested)

    def serving_export(self, run_dir, export_config):
        from tfsuite.translation.export import TranslationExport
        from tfsuite.translation.tokenizer import load_tokenizer

        return TranslationExport(run_dir, self.config, export_config,
                                 self.load_model(run_dir), load_tokenizer(run_dir))

    def compress(self, run_dir, config, method, quiet):
        from tfsuite.translation.quantize import compress_translation

        return compress_translation(run_dir, config, method, quiet)

    def format_compression(self, report):
        from tfsuite.translation.quantize import format_report

        return format_report(report)

    @classmethod
    def add_command(cls, name, parser):
        from tfsuite.translation.commands import add_translate_command

        return add_translate_command(parser)


def _tokenizer(config, run_dir, splits, resuming):
    """The run's tokenizer: kept when resuming, the preset's, or trained on the training
    split (both sides; the task prefix is one piece). Not saved yet."""
    from tfsuite.translation.data import task_prefix
    from tfsuite.translation.tokenizer import Tokenizer, train_sentencepiece

    path = os.path.join(run_dir, TOKENIZER_FILE)
    t = config.translation
    if resuming and os.path.isfile(path):
        return Tokenizer(path)
    if t.preset:
        from tfsuite.translation.model import load_preset

        _, proto = load_preset(t.preset)
    else:
        prefix = task_prefix(t)
        proto = train_sentencepiece([prefix + s for s in splits.train[0]] + splits.train[1],
                                    t.vocab_size, t.tokenizer_type,
                                    user_symbols=[prefix.strip()], seed=config.runtime.seed)
    return Tokenizer(proto)
