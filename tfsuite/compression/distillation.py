"""Knowledge distillation: a trained teacher's softened probabilities teach a smaller
student (Hinton et al., 2015), on any Keras backend.

The loss is alpha * cross-entropy(labels, student) + (1 - alpha) * T^2 *
KL(teacher_T || student_T), where *_T are the probabilities at temperature T.
tfsuite models end in a softmax, so the logits are recovered as log-probabilities
(equal to the logits up to a constant, which the softmax ignores).
"""

import keras
from keras import ops


def _log_probabilities(probabilities):
    return ops.log(ops.clip(ops.cast(probabilities, "float32"), 1e-7, 1.0))


class Distiller(keras.Model):
    """Trains `student` against labels and a frozen `teacher`; predicts with the student.

    Args:
        student: the model to train.
        teacher: the trained model (not updated).
        temperature: softening temperature T. Defaults to `4.0`.
        alpha: weight of the hard-label loss. Defaults to `0.1`.
    """

    def __init__(self, student, teacher, temperature=4.0, alpha=0.1, **kwargs):
        super().__init__(**kwargs)
        self.student = student
        self.teacher = teacher
        self.teacher.trainable = False
        self.temperature = temperature
        self.alpha = alpha

    def call(self, inputs, training=False):
        return self.student(inputs, training=training)

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        hard = keras.losses.sparse_categorical_crossentropy(y, y_pred)
        teacher = ops.softmax(_log_probabilities(self.teacher(x, training=False))
                              / self.temperature)
        student_log = ops.log_softmax(_log_probabilities(y_pred) / self.temperature)
        soft = ops.sum(teacher * (ops.log(ops.clip(teacher, 1e-7, 1.0)) - student_log), axis=-1)
        return ops.mean(self.alpha * hard
                        + (1.0 - self.alpha) * self.temperature ** 2 * soft)
