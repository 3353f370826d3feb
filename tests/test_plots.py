"""Plots that must stay readable and drawable at any size."""

import matplotlib.image
import numpy as np

from tfsuite.plots import MOST_CONFUSED, most_confused_classes, plot_confusion_matrix


def test_a_thousand_class_confusion_matrix_shows_the_most_confused_classes(tmp_path):
    classes = 1000
    matrix = np.diag(np.full(classes, 5))
    matrix[17, 400] = matrix[400, 17] = 3  # the pair the model mixes up
    matrix[999, 0] = 1
    path = plot_confusion_matrix(matrix, [f"class_{i}" for i in range(classes)],
                                 str(tmp_path / "confusion.png"))
    height, width = matplotlib.image.imread(path).shape[:2]
    assert max(height, width) < 2000  # the whole matrix would be 45,000 pixels a side
    keep = most_confused_classes(matrix, MOST_CONFUSED)
    assert len(keep) == MOST_CONFUSED and {0, 17, 400, 999} <= set(keep.tolist())


def test_a_small_confusion_matrix_is_drawn_whole(tmp_path):
    matrix = np.array([[3, 1], [0, 4]])
    path = plot_confusion_matrix(matrix, ["cat", "dog"], str(tmp_path / "confusion.png"))
    assert matplotlib.image.imread(path).shape[0] >= 400
