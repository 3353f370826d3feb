"""Translation runs: train a T5 model on a parallel corpus, evaluate it, translate text.

A run directory holds what an image run holds (config.yaml, checkpoints/,
logs/, history.csv, model.keras, training_curves.png, evaluation/,
summary.json) plus tokenizer.model (the SentencePiece model, trained on the
training split) and, for the generated numbers corpus, corpus.tsv. model.keras
is KerasHub's `T5Seq2SeqLM` with its preprocessor: it loads with `import
keras_hub` and takes text. Training resumes after its last completed epoch.
"""

import dataclasses
import os
import time

from tfsuite.config import read_run_config, write_config
from tfsuite.errors import user_error
from tfsuite.io import display_path, write_json
from tfsuite.run_dir import MODEL, SUMMARY
from tfsuite.translation.tokenizer import TOKENIZER_FILE

CORPUS_FILE = "corpus.tsv"


# ---------------------------------------------------------------- train


def train(config, run_dir=None, quiet=False):
    """Trains `config` (task: translation) end to end; returns the summary dict."""
    from tfsuite.plots import plot_history
    from tfsuite.run_dir import resolve_run_dir, start_run_dir
    from tfsuite.stages import (check_full_batches, completed_summary, save_model,
                                single_process_runtime)
    from tfsuite.tasks.translation import TranslationTask
    from tfsuite.training.trainer import Trainer
    from tfsuite.translation.data import build_translation_data, load_pairs, task_prefix
    from tfsuite.translation.model import resolve_preset, with_preprocessor

    started = time.perf_counter()
    t = config.translation
    run_dir, resuming = resolve_run_dir(config, run_dir)
    runtime = single_process_runtime(config, "Translation")
    # A bad corpus, a preset that is not here or a tokenizer that cannot be trained fails
    # before the run directory is touched.
    corpus, splits = load_pairs(config)
    if t.preset:
        resolve_preset(t.preset)
    tokenizer = _tokenizer(config, run_dir, splits, resuming)
    data = build_translation_data(config, corpus, splits, tokenizer,
                                  drop_remainder=runtime.needs_full_batches)
    check_full_batches(config, data, runtime)
    start_run_dir(run_dir, resuming)
    write_config(config, os.path.join(run_dir, "config.yaml"))
    tokenizer.save(os.path.join(run_dir, TOKENIZER_FILE))
    if config.data.source == "numbers":
        from tfsuite.translation.numbers import write_tsv

        write_tsv(os.path.join(run_dir, CORPUS_FILE), corpus.sources, corpus.targets)
    data = dataclasses.replace(data, train=runtime.shard_dataset(data.train),
                               val=runtime.shard_dataset(data.val))
    if not quiet:
        _print_start(config, run_dir, runtime, data, resuming)
    trainer = Trainer(config, run_dir, runtime, quiet=quiet)
    model = trainer.fit(TranslationTask(config), data)
    save_model(with_preprocessor(model, tokenizer, t), os.path.join(run_dir, MODEL))
    history = trainer.history()
    if history:
        plot_history(history, os.path.join(run_dir, "training_curves.png"), title=config.name)
    translator = translator_for(config, model.backbone, tokenizer)
    metrics = evaluate_translator(translator, data.test_sources, data.test_targets,
                                  os.path.join(run_dir, "evaluation"), t.eval_batch_size)
    info = trainer.info()
    summary = {
        **completed_summary(config, trainer, metrics, started),
        "data": data.report,
        "decoding": {"sampler": t.sampler, "num_beams": t.num_beams if t.sampler == "beam"
                     else None, "max_length": translator.max_length,
                     "prefix": task_prefix(t)},
        "runtime": runtime.report(),
        "sentences_per_second": round(info["images_per_second"] or 0, 1),
        "model": {"name": "t5", "preset": t.preset, "num_params": int(model.count_params()),
                  "path": os.path.join(run_dir, MODEL),
                  "tokenizer": os.path.join(run_dir, TOKENIZER_FILE)},
    }
    write_json(os.path.join(run_dir, SUMMARY), summary)
    if config.compress.methods:
        from tfsuite.stages import compress_after_training

        summary["compress"] = compress_after_training(run_dir, config, quiet)
        write_json(os.path.join(run_dir, SUMMARY), summary)
    if config.export.formats:
        from tfsuite.stages import export_after_training

        summary["export"] = export_after_training(run_dir, config, quiet)
        write_json(os.path.join(run_dir, SUMMARY), summary)
    runtime.end_job()
    return summary


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


def _print_start(config, run_dir, runtime, data, resuming):
    from tfsuite.translation.model import model_sizes

    report, t = runtime.report(), config.translation
    r = data.report
    print(f"tfsuite: experiment '{config.name}' -> {run_dir}" + (" (resuming)" if resuming
                                                                 else ""))
    print(f"  data: {r['path']}: {r['num_pairs']:,} pairs"
          + (f" ({r['skipped_lines']} malformed lines skipped)" if r["skipped_lines"] else "")
          + f", {data.num_train:,} train / {data.num_val:,} val / {data.num_test:,} test")
    print(f"  tokenizer: SentencePiece, {r['vocabulary_size']} pieces; sequences "
          f"{r['source_length']} -> {r['target_length']} tokens; prefix {r['task_prefix']!r}")
    if t.preset:
        model = f"T5 preset {t.preset}"
    else:
        layers, heads, hidden, intermediate, _ = model_sizes(t)
        model = (f"T5 {t.size} ({layers} layers, {heads} heads, hidden {hidden}, "
                 f"feed-forward {intermediate})")
    print(f"  model: {model}; runtime: backend {report['backend']}, strategy "
          f"{report['strategy']} ({report['num_replicas']} replica(s)), "
          f"{report['precision']}", flush=True)


# ---------------------------------------------------------------- decode and score


def translator_for(config, backbone, tokenizer, sampler_name=None, num_beams=None,
                   max_length=None):
    from tfsuite.translation.data import task_prefix
    from tfsuite.translation.decoding import Translator

    t = config.translation
    if num_beams is not None and num_beams < 1:
        raise user_error("--num-beams must be positive", "an int >= 1",
                         f"num_beams={num_beams}")
    if num_beams is not None and (sampler_name or t.sampler) != "beam":
        raise user_error("--num-beams needs beam search", "--sampler beam (or a run with "
                         "translation.sampler=beam)", f"num_beams={num_beams} with sampler "
                         f"{sampler_name or t.sampler!r}", "Add --sampler beam.")
    return Translator(backbone, tokenizer, task_prefix(t), t.max_source_length,
                      max_length or t.max_length or t.max_target_length,
                      sampler_name or t.sampler, num_beams or t.num_beams)


def evaluate_translator(translator, sources, references, out_dir, batch_size):
    """Translates the test split; writes evaluation/ and returns BLEU, exact match, chrF."""
    from tfsuite.translation.metrics import score, write_evaluation

    started = time.perf_counter()
    hypotheses = translator.translate(sources, batch_size)
    seconds = time.perf_counter() - started
    references = translator.tokenizer.normalize(references)  # see `score`
    metrics = {**score(hypotheses, references),
               "decode_seconds": round(seconds, 2),
               "sentences_per_second_decoding": round(len(sources) / max(seconds, 1e-9), 1),
               "truncated_test_sources": translator.truncated}
    write_evaluation(out_dir, sources, references, hypotheses, metrics)
    return metrics


def load_run(run_dir):
    """(config, T5 backbone, Tokenizer) of a finished run."""
    from tfsuite.stages import load_run_model
    from tfsuite.translation.model import keras_hub
    from tfsuite.translation.tokenizer import load_tokenizer

    config = read_run_config(run_dir)
    if config.task != "translation":
        raise user_error("Not a translation run", "a run of a translation experiment "
                         "(e.g. translate_numbers)", f"{run_dir} (task={config.task})")
    tokenizer = load_tokenizer(run_dir)
    keras_hub()  # registers KerasHub's classes before model.keras is read
    return config, load_run_model(run_dir).backbone, tokenizer


def evaluate(run_dir, sampler_name=None, num_beams=None):
    """Re-scores a finished run on its test split; returns (metrics, out_dir)."""
    from tfsuite.translation.data import load_pairs

    config, backbone, tokenizer = load_run(run_dir)
    _, splits = load_pairs(config)
    translator = translator_for(config, backbone, tokenizer, sampler_name, num_beams)
    out_dir = os.path.join(run_dir, "evaluation")
    return evaluate_translator(translator, *splits.test, out_dir,
                               config.translation.eval_batch_size), out_dir


def translate(run_dir, texts, sampler_name=None, num_beams=None, max_length=None):
    """Translations of `texts` with a finished run's model, in order."""
    texts = [t.strip() for t in texts]
    if not texts or not any(texts):
        raise user_error("Nothing to translate", "at least one non-empty text (arguments, "
                         "or lines of --file)", f"{len(texts)} texts, all empty",
                         'e.g. python -m tfsuite.run translate RUN_DIR "twenty-one"')
    if max_length is not None and max_length < 2:
        raise user_error("--max-length is too small", "an int >= 2 (tokens)",
                         f"max_length={max_length}")
    config, backbone, tokenizer = load_run(run_dir)
    translator = translator_for(config, backbone, tokenizer, sampler_name, num_beams,
                                max_length)
    nonempty = [t for t in texts if t]
    translated = iter(translator.translate(nonempty, config.translation.eval_batch_size))
    return [next(translated) if t else "" for t in texts], translator.truncated


def read_lines(path):
    """The lines of a --file (UTF-8, a BOM tolerated)."""
    from tfsuite.translation.corpus import open_text

    return open_text(path, "--file", "Give a UTF-8 text file, one sentence per line.")


# ---------------------------------------------------------------- what the CLI prints


def format_summary(summary):
    m = summary["metrics"]
    run_dir = os.path.dirname(summary["model"]["path"])
    lines = [f"Done: {summary['experiment']} - BLEU {m['bleu']:.2f}, exact match "
             f"{m['exact_match']:.2%} on {m['num_sentences']:,} test sentences "
             f"({summary['decoding']['sampler']}) - {summary['epochs_completed']} epochs - "
             f"{summary['wall_seconds']:.0f}s",
             f"  model: {summary['model']['path']} (tokenizer: "
             f"{summary['model']['tokenizer']})",
             f"  translations: {os.path.join(run_dir, 'evaluation', 'translations.tsv')}",
             f"  curves: {os.path.join(run_dir, 'training_curves.png')}",
             f"  summary: {os.path.join(run_dir, SUMMARY)}",
             f"  try it: python -m tfsuite.run translate {run_dir} \"...\""]
    if summary["data"]["skipped_lines"]:
        lines.insert(1, f"  data: {summary['data']['skipped_lines']} malformed lines skipped "
                        f"(see summary.json data.skipped)")
    return "\n".join(lines)


def format_metrics(metrics, out_dir):
    return (f"BLEU {metrics['bleu']:.2f}, exact match {metrics['exact_match']:.2%}, chrF "
            f"{metrics['chrf']:.1f} on {metrics['num_sentences']:,} test sentences\n"
            f"  translations: {display_path(os.path.join(out_dir, 'translations.tsv'))}")

