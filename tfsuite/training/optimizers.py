"""Optimizers and learning-rate schedules from the train config.

`get_optimizer` accepts a `TrainConfig`, a name, a Keras config dict or an
optimizer instance, like Keras' own `get()` resolvers.
"""

import keras

from tfsuite.config import BFLOAT16_OPTIMIZERS, OPTIMIZERS, SCHEDULES
from tfsuite.errors import user_error
from tfsuite.training.bfloat16_optimizers import Bfloat16Adam, Bfloat16AdamW


def get_schedule(name, learning_rate, steps_per_epoch, epochs, warmup_epochs=0,
                 step_epochs=10, step_gamma=0.1):
    """A learning rate (float) or `keras.optimizers.schedules.LearningRateSchedule`.

    Args:
        name: "constant", "step" (multiply by `step_gamma` every `step_epochs`),
            "cosine" (to zero over the run) or "warmup_cosine" (linear warm-up
            over `warmup_epochs`, at most half the run, then cosine).
        learning_rate: peak learning rate.
        steps_per_epoch: optimizer steps per epoch.
        epochs: epochs the schedule spans.
    """
    total = max(1, steps_per_epoch * epochs)
    if name == "constant":
        return learning_rate
    if name == "step":
        return keras.optimizers.schedules.ExponentialDecay(
            learning_rate, decay_steps=max(1, step_epochs * steps_per_epoch),
            decay_rate=step_gamma, staircase=True)
    if name == "cosine":
        return keras.optimizers.schedules.CosineDecay(learning_rate, decay_steps=total)
    if name == "warmup_cosine":
        # At most half the run: a short run (--set train.epochs=2) still reaches its peak.
        warmup = min(int(round(warmup_epochs * steps_per_epoch)), total // 2)
        return keras.optimizers.schedules.CosineDecay(
            0.0, decay_steps=max(1, total - warmup), warmup_target=learning_rate,
            warmup_steps=warmup)
    raise user_error("Unknown schedule", f"one of {list(SCHEDULES)}", f"schedule={name!r}")


def build_optimizer(name, learning_rate, momentum=0.9, weight_decay=0.0, clipnorm=None,
                    gradient_accumulation_steps=None, ema=False, ema_momentum=0.99,
                    bfloat16_state=None):
    """Builds a Keras optimizer by name with the shared options.

    `bfloat16_state` ("float32" or "bfloat16"): the weights are bfloat16, and Adam or AdamW
    update them in float32 with moments of this dtype (`bfloat16_optimizers`).
    """
    common = {"weight_decay": weight_decay or None, "global_clipnorm": clipnorm,
              "gradient_accumulation_steps": gradient_accumulation_steps,
              "use_ema": ema, "ema_momentum": ema_momentum}
    adam, adamw = keras.optimizers.Adam, keras.optimizers.AdamW
    if bfloat16_state is not None:
        if name not in BFLOAT16_OPTIMIZERS:  # the config check refuses it first
            raise user_error("Unsupported optimizer for bfloat16 weights",
                             f"one of {list(BFLOAT16_OPTIMIZERS)}", f"optimizer={name!r}")
        adam, adamw = Bfloat16Adam, Bfloat16AdamW
        common["state_dtype"] = bfloat16_state
    if name == "sgd":
        return keras.optimizers.SGD(learning_rate, **common)
    if name in ("momentum", "nesterov"):
        return keras.optimizers.SGD(learning_rate, momentum=momentum,
                                    nesterov=name == "nesterov", **common)
    if name == "adam":
        return adam(learning_rate, **common)
    if name == "adamw":
        common["weight_decay"] = weight_decay
        return adamw(learning_rate, **common)
    if name == "rmsprop":
        return keras.optimizers.RMSprop(learning_rate, momentum=0.0, **common)
    if name == "lion":
        return keras.optimizers.Lion(learning_rate, **common)
    raise user_error("Unknown optimizer", f"one of {list(OPTIMIZERS)}", f"optimizer={name!r}")


def get_optimizer(identifier, steps_per_epoch=1, epochs=1, learning_rate=None,
                  bfloat16_weights=False):
    """Resolves an optimizer from a `TrainConfig`, a name, a config dict or an instance.

    Args:
        identifier: `TrainConfig`, optimizer name, Keras config dict, or optimizer.
        steps_per_epoch: steps per epoch, for schedules. Defaults to `1`.
        epochs: epochs the schedule spans. Defaults to `1`.
        learning_rate: overrides the config's rate (fine-tuning). Defaults to `None`.
        bfloat16_weights: the model's weights are bfloat16 (`runtime.precision=bfloat16`):
            the update runs in float32, the moments are `train.optimizer_state`.

    Returns:
        A `keras.optimizers.Optimizer`.
    """
    if isinstance(identifier, keras.optimizers.Optimizer):
        return identifier
    if isinstance(identifier, (str, dict)) and not hasattr(identifier, "optimizer"):
        if isinstance(identifier, str) and identifier in OPTIMIZERS:
            return build_optimizer(identifier, learning_rate or 1e-3)
        return keras.optimizers.get(identifier)
    config = identifier
    rate = learning_rate if learning_rate is not None else config.learning_rate
    schedule = get_schedule(config.schedule, rate, steps_per_epoch, epochs,
                            config.warmup_epochs, config.step_epochs, config.step_gamma)
    return build_optimizer(config.optimizer, schedule, config.momentum, config.weight_decay,
                           config.clipnorm, config.gradient_accumulation_steps, config.ema,
                           config.ema_momentum,
                           config.optimizer_state if bfloat16_weights else None)
