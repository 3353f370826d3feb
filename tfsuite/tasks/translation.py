"""Translation: the T5 model, loss and metrics the shared trainer fits.

The run-level work (corpus, tokenizer, BLEU, `translate`, the SavedModel) is in
`tfsuite.translation.stage`; this object is what `Trainer.fit` asks for.
"""

import keras

from tfsuite.training.losses import SparseCategoricalCrossentropy


class TranslationTask:
    """A T5 encoder-decoder trained with teacher forcing on token ids."""

    def __init__(self, config):
        self.config = config

    def build_model(self, data):
        from tfsuite.translation.model import build_backbone, seq2seq

        t = self.config.translation
        if t.preset:
            from tfsuite.translation.model import load_preset

            backbone, _ = load_preset(t.preset)  # built here, inside the strategy scope
        else:
            backbone = build_backbone(t, data.num_classes)
        return seq2seq(backbone)

    def start_fine_tuning(self, model):
        """Fine-tuning epochs train every weight, as the first phase does."""

    def loss(self):
        return SparseCategoricalCrossentropy(
            from_logits=True, label_smoothing=self.config.train.label_smoothing)

    def metrics(self, num_classes):
        return []

    def weighted_metrics(self, num_classes):
        """Next-token accuracy over real (not padded) target positions."""
        return [keras.metrics.SparseCategoricalAccuracy(name="accuracy")]
