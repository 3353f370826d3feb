"""Tasks: each builds inputs, model, loss and metrics from an experiment config."""

from tfsuite.config import TASKS
from tfsuite.errors import user_error


def get_task(config):
    """Returns the task object for `config.task`."""
    if config.task == "image_classification":
        from tfsuite.tasks.image_classification import ImageClassificationTask

        return ImageClassificationTask(config)
    if config.task == "reinforcement_learning":
        from tfsuite.tasks.reinforcement_learning import ReinforcementLearningTask

        return ReinforcementLearningTask(config)
    raise user_error("Unknown task", f"one of {list(TASKS)}", f"task={config.task!r}")
