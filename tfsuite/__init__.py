"""tfsuite: a Keras 3 training suite on TensorFlow.

    import tfsuite

    run = tfsuite.train("digits", overrides={"train.epochs": 3})
    run.summary["metrics"]["test_accuracy"]
    run.export(["saved_model"])
    tfsuite.load_run("runs/digits").evaluate()
"""

__version__ = "0.1.0"

import tfsuite.tasks  # noqa: E402,F401  (registers the tasks: configs need their schemas)


def __getattr__(name):
    # The Python API loads on first use: `import tfsuite` stays light (no Keras yet, so
    # the backend can still be chosen).
    if name in ("train", "load_run", "Run", "load_config", "UserError", "load_model",
                "lr_find"):
        from tfsuite import api

        return getattr(api, name)
    raise AttributeError(f"module 'tfsuite' has no attribute {name!r}")
