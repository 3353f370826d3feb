"""Translation export: a SavedModel that decodes token ids, with its tokenizer beside it.

TF Serving's stock binary has no TF-Text ops (SentencePiece), so the
SavedModel holds only the T5 network and the decoding loop: its
`serving_default` signature takes `encoder_token_ids` (int32 [batch, length],
`prefix + text </s>` padded with 0) and returns `token_ids` (int32 [batch,
max_length], zeros after `</s>`) and `length`. Clients tokenize with the
`tokenizer.model` written next to it (`sentencepiece` in Python). The graph is
built from a T5Seq2SeqLM without its preprocessor, so it loads in plain
TensorFlow with neither KerasHub nor TF-Text installed. Decoding runs row by
row (`tf.map_fn`): KerasHub's generation loop needs a static batch size.
"""

import json
import os
import shutil
import time

import numpy as np

from tfsuite.export import layout
from tfsuite.export.formats import task_formats
from tfsuite.export.saved_model import SIGNATURE
from tfsuite.run_dir import MODEL
from tfsuite.translation.tokenizer import EOS_ID, PAD_ID, TOKENIZER_FILE

FORMATS = ("saved_model", "keras")
INPUT = "encoder_token_ids"


def formats_for(requested):
    """The translation formats of `export.formats`: SavedModel always, `.keras` on request."""
    return task_formats(requested, FORMATS, "saved_model",
                        "A translation model exports as a SavedModel (and .keras)",
                        "ONNX, LiteRT and TensorRT have no KerasHub generation loop; "
                        "serve the SavedModel (TF Serving) instead.")


def serving_module(backbone, max_length, sampler_name, num_beams):
    """A tf.Module with the decoding signature (see the module docstring)."""
    import tensorflow as tf

    from tfsuite.translation.decoding import sampler
    from tfsuite.translation.model import seq2seq

    lm = seq2seq(backbone)  # no preprocessor: no SentencePiece op in the graph
    lm.compile(sampler=sampler(sampler_name, num_beams))
    steps = max_length + 1  # the start token, then max_length tokens
    start = np.zeros((1, steps), bool)
    start[0, 0] = True

    def one(ids):
        ids = ids[None, :]
        out = lm.generate_step(
            {"encoder_token_ids": ids, "encoder_padding_mask": ids != PAD_ID,
             "decoder_token_ids": tf.zeros([1, steps], tf.int32),
             "decoder_padding_mask": tf.constant(start)}, stop_token_ids=(EOS_ID,))
        mask = tf.cast(out["decoder_padding_mask"], tf.bool)
        return tf.where(mask, tf.cast(out["decoder_token_ids"], tf.int32), PAD_ID)[0, 1:]

    @tf.function(input_signature=[tf.TensorSpec([None, None], tf.int32, name=INPUT)],
                 jit_compile=False)
    def serve(encoder_token_ids):
        tokens = tf.map_fn(one, encoder_token_ids,
                           fn_output_signature=tf.TensorSpec([max_length], tf.int32))
        ended = tf.cumsum(tf.cast(tokens == EOS_ID, tf.int32), axis=1, exclusive=True) > 0
        tokens = tf.where(ended, PAD_ID, tokens)
        length = tf.reduce_sum(tf.cast((tokens != PAD_ID) & (tokens != EOS_ID), tf.int32), 1)
        return {"token_ids": tokens, "length": length}

    concrete = serve.get_concrete_function()
    module = tf.Module()
    module.captured_variables = list(concrete.variables)
    module.serve = serve
    return module, concrete


class SavedModelTranslator:
    """Runs an exported translation SavedModel: token ids in, token ids out."""

    def __init__(self, path):
        import tensorflow as tf

        self._tf = tf
        self.signature = tf.saved_model.load(path).signatures[SIGNATURE]

    def __call__(self, encoder_ids):
        out = self.signature(**{INPUT: self._tf.constant(encoder_ids, self._tf.int32)})
        return out["token_ids"].numpy()


def _keras_reference(translator, encoder_ids, batch_size):
    """The Keras model's ids in the SavedModel's layout (start token dropped, 0 after </s>)."""
    ids = translator.generate_ids(encoder_ids, batch_size)[:, 1:]
    ended = np.cumsum(ids == EOS_ID, axis=1) - (ids == EOS_ID) > 0
    return np.where(ended, PAD_ID, ids)


class TranslationExport:
    """The translation run's serving module for the shared export flow: a SavedModel that
    decodes token ids (plus tokenizer.model, request.json and optionally model.keras),
    checked against the Keras model on test sentences (99% identical needed)."""

    def __init__(self, run_dir, config, export_config, model, tokenizer):
        from tfsuite.translation.data import load_pairs
        from tfsuite.translation.decoding import translator_for

        self.run_dir, self.config, self.export_config = run_dir, config, export_config
        self.backbone, self.tokenizer = model.backbone, tokenizer
        self.translator = translator_for(config, self.backbone, tokenizer)
        _, splits = load_pairs(config)
        self.sources, self.references = (s[:export_config.verify_samples] for s in splits.test)
        self.encoder_ids = self.translator.encode(self.sources)
        self.expected = _keras_reference(self.translator, self.encoder_ids,
                                         config.translation.eval_batch_size)

    def write(self, staging, final, formats, quiet):
        import tensorflow as tf

        from tfsuite.translation.metrics import score

        config, export_config, translator = self.config, self.export_config, self.translator
        started = time.perf_counter()
        module, concrete = serving_module(self.backbone, translator.max_length,
                                          config.translation.sampler,
                                          config.translation.num_beams)
        tf.saved_model.save(module, staging, signatures={SIGNATURE: concrete})
        self.tokenizer.save(os.path.join(staging, TOKENIZER_FILE))
        runner = SavedModelTranslator(staging)
        encoder_ids = self.encoder_ids
        got = np.concatenate([runner(encoder_ids[i:i + 64])
                              for i in range(0, len(encoder_ids), 64)])
        agreement = float(np.mean(np.all(got == self.expected, axis=1)))
        metrics = score(self.tokenizer.decode(got), self.references, self.tokenizer)
        batch = encoder_ids[:export_config.batch_size]
        runner(batch)
        timed = time.perf_counter()
        runner(batch)
        latency = (time.perf_counter() - timed) * 1000
        results = {"saved_model": {
            "path": final, "size_bytes": layout.folder_size(staging),
            "sequence_agreement": round(agreement, 4), "verified": agreement >= 0.99,
            "bleu": metrics["bleu"], "exact_match": metrics["exact_match"],
            "latency_ms": round(latency, 1), "latency_batch_size": len(batch),
            "export_seconds": round(time.perf_counter() - started, 2)}}
        if not quiet:
            print(f"  saved_model      written and checked: {agreement:.1%} of "
                  f"{len(self.sources)} test translations identical to the Keras model's",
                  flush=True)
        if "keras" in formats:
            source = os.path.join(self.run_dir, MODEL)
            shutil.copyfile(source, os.path.join(staging, MODEL))
            results["keras"] = {"path": os.path.join(final, MODEL),
                                "size_bytes": os.path.getsize(source),
                                "verified": True, "note": "a copy of the run's model.keras"}
        _write_request(os.path.join(staging, "request.json"), encoder_ids[:2])
        entries = {
            "input": {"name": INPUT, "shape": [None, None], "dtype": "int32",
                      "description": f"SentencePiece ids of '{translator.prefix}' + text, "
                                     "then </s> (1), padded with 0; see tokenizer.model"},
            "outputs": {"token_ids": [None, translator.max_length], "length": [None]},
            "tokenizer": os.path.join(final, TOKENIZER_FILE),
            "decoding": {"sampler": config.translation.sampler,
                         "max_length": translator.max_length},
            "reference": {"model": os.path.abspath(os.path.join(self.run_dir, MODEL)),
                          "num_samples": len(self.sources), "inputs": "test-split sentences"},
            "formats": results, "skipped": {},
            "note": "TF Serving's stock binary lacks TF-Text ops: tokenize on the client "
                    "with tokenizer.model (the SavedModel holds none)."}
        failure = None if results["saved_model"]["verified"] else (
            f"Export verification failed: the SavedModel's translations match the Keras "
            f"model's on {agreement:.1%} of {len(self.sources)} test sentences (99% needed).")
        return entries, failure


def _write_request(path, encoder_ids):
    body = {"signature_name": SIGNATURE,
            "instances": [{INPUT: [int(t) for t in row]} for row in encoder_ids]}
    with open(path, "w", encoding="utf-8") as f:
        json.dump(body, f)
