"""Recommendation: the model, loss and metrics the shared trainer fits.

The run-level work (ratings, splits, recall@k, the popularity baseline,
`recommend`, the SavedModel) is in `tfsuite.recommend.stage`; this object is
what `Trainer.fit` asks for.
"""

import keras
import numpy as np


class RecommendationTask:
    """A two-tower retrieval model (in-batch softmax) or a ranking model."""

    def __init__(self, config):
        self.r = config.recommend

    def build_model(self, data):
        from tfsuite.recommend.model import build_model

        model = build_model(self.r, data.interactions)
        ids = np.ones(2, np.int32)
        # Built here, so a resumed run can load its checkpoint into the weights.
        model({"user": ids, "item": ids})
        return model

    def start_fine_tuning(self, model):
        """Fine-tuning epochs train every weight, as the first phase does."""

    def loss(self):
        if self.r.model == "two_tower":
            return keras.losses.SparseCategoricalCrossentropy(from_logits=True)
        if self.r.ranking_loss == "mse":
            return keras.losses.MeanSquaredError()
        import keras_rs

        losses = keras_rs.losses
        return {"list_mle": losses.ListMLELoss, "pairwise_hinge": losses.PairwiseHingeLoss,
                "pairwise_logistic": losses.PairwiseLogisticLoss}[self.r.ranking_loss]()

    def metrics(self, num_classes):
        if self.r.model == "two_tower":  # the batch's own items: a cheap proxy of recall@k
            return [keras.metrics.SparseTopKCategoricalAccuracy(
                k=self.r.k, name=f"batch_recall_at_{self.r.k}")]
        if self.r.ranking_loss == "mse":
            return [keras.metrics.RootMeanSquaredError(name="rmse")]
        import keras_rs

        return [keras_rs.metrics.NDCG(name="list_ndcg")]
