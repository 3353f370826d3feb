"""The language model's export: a KerasHub preset folder (`save_to_preset`: config,
weights, tokenizer; `keras_hub.models.LlamaCausalLM.from_preset(path)` loads it without
tfsuite) and, on request, a copy of model.keras. The preset is loaded back and its
logits compared with the run's model (within `export.atol`) before the version is
published.
"""

import os
import shutil
import time

import numpy as np

from tfsuite.export import layout
from tfsuite.export.formats import task_formats
from tfsuite.run_dir import MODEL

FORMATS = ("keras_hub_preset", "keras")
PRESET_FOLDER = "preset"


def formats_for(requested):
    """The language-model formats of `export.formats`: the preset always, .keras on request."""
    return task_formats(requested, FORMATS, "keras_hub_preset",
                        "A language model exports as a KerasHub preset folder (and .keras)",
                        "SavedModel, ONNX, LiteRT and TensorRT have no KerasHub generation "
                        "loop here; load the preset with keras_hub.models.LlamaCausalLM."
                        "from_preset(PATH).")


def logits(causal_lm, ids):
    """float32 [batch, length, vocabulary] logits of a LlamaCausalLM's backbone."""
    import keras

    backbone = causal_lm.backbone
    hidden = backbone({"token_ids": ids, "padding_mask": np.ones_like(ids)})
    return keras.ops.convert_to_numpy(
        keras.ops.cast(backbone.token_embedding(hidden, reverse=True), "float32"))


class LanguageModelExport:
    """The run's text-in `LlamaCausalLM` for the shared export flow (`write`)."""

    def __init__(self, run_dir, model, samples, atol):
        self.run_dir, self.model, self.atol = run_dir, model, atol
        vocabulary = model.backbone.vocabulary_size
        self.ids = np.random.default_rng(0).integers(3, vocabulary, (min(samples, 8), 16),
                                                     dtype=np.int64).astype("int32")
        self.expected = logits(model, self.ids)

    def write(self, staging, final, formats, quiet):
        import keras_hub  # present: the run's model was loaded with it

        results = {}
        for fmt in formats:
            started = time.perf_counter()
            if fmt == "keras":  # the reference itself, copied
                path = os.path.join(staging, MODEL)
                shutil.copyfile(os.path.join(self.run_dir, MODEL), path)
                results[fmt] = {"path": os.path.join(final, MODEL),
                                "size_bytes": os.path.getsize(path), "verified": True,
                                "note": "a copy of the run's model.keras"}
                continue
            path = os.path.join(staging, PRESET_FOLDER)
            self.model.save_to_preset(path)
            loaded = keras_hub.models.LlamaCausalLM.from_preset(path)
            difference = float(np.abs(logits(loaded, self.ids) - self.expected).max())
            results[fmt] = {"path": os.path.join(final, PRESET_FOLDER),
                            "size_bytes": layout.folder_size(path),
                            "max_logit_difference": difference,
                            "verified": difference <= self.atol,
                            "export_seconds": round(time.perf_counter() - started, 2)}
            if not quiet:
                print(f"  {fmt:<16} written and checked: logits within {difference:.1e} of "
                      f"the run's model on {len(self.ids)} sequences", flush=True)
        entries = {"formats": results, "skipped": {},
                   "reference": {"model": os.path.abspath(os.path.join(self.run_dir, MODEL)),
                                 "num_samples": len(self.ids),
                                 "inputs": "random token ids of length 16 (seeded)"},
                   "load": "keras_hub.models.LlamaCausalLM.from_preset("
                           f"{os.path.join(final, PRESET_FOLDER)!r})"}
        failed = [f for f, r in results.items() if not r["verified"]]
        failure = None if not failed else (
            f"Export verification failed: {', '.join(failed)} gives other logits than the "
            f"run's model (max |diff| "
            f"{max(results[f]['max_logit_difference'] for f in failed):.3g}, tolerance "
            f"{self.atol:g}).", "If the difference is acceptable, raise the tolerance with "
            "--set export.atol=VALUE.")
        return entries, failure
