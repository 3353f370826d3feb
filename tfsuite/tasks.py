"""The composition root: importing this registers every task and export format tfsuite
ships.

A new task is a package with a `Task` subclass decorated with
`tfsuite.task.register_task`, plus one import line here. Nothing else in the
generic layers names it. Export formats register in `tfsuite.export.formats`.
"""

import tfsuite.export.formats  # noqa: F401
import tfsuite.image_classification.task  # noqa: F401
import tfsuite.language_model.task  # noqa: F401
import tfsuite.recommend.task  # noqa: F401
import tfsuite.rl.task  # noqa: F401
import tfsuite.translation.task  # noqa: F401
