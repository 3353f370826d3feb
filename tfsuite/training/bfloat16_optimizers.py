"""Adam and AdamW for bfloat16 weights (`runtime.precision=bfloat16`).

Keras' Adam computes in the variable's dtype. In bfloat16 (8 significant bits) that fails:
`beta_2=0.999` rounds to 1.0, so the second moment never moves, and any step smaller than
half a bfloat16 spacing (2^-9 of the weight) rounds away, as a learning rate of 3e-4 does
on a norm scale of 1.0. These subclasses keep each bfloat16 weight's moments in
`state_dtype` (float32: 12 bytes a weight with its gradient, against 16 for float32
weights; bfloat16: 8), do the whole update (weight decay included) in float32, and store
every bfloat16 result with stochastic rounding: up with a probability equal to the
remainder, so a step too small for one spacing still moves the weight on average. Weights
in other dtypes take the parent's update unchanged.
"""

import keras
from keras import ops

STATE_DTYPES = ("float32", "bfloat16")
MOMENTS = ("momentum", "velocity")  # Adam's variables kept in `state_dtype`


def round_stochastic(x, seed):
    """float32 `x` to bfloat16, rounding up with probability equal to the remainder.

    A bfloat16 is the top 16 bits of a float32: adding 16 random low bits before cutting
    them carries into the kept bits with that probability (in magnitude: the float's bits
    are sign and magnitude).
    """
    x = ops.cast(x, "float32")
    bits = ops.view(x, "int32")
    noise = keras.random.randint(ops.shape(bits), 0, 1 << 16, dtype="int32", seed=seed)
    kept = ops.bitwise_and(ops.add(bits, noise), ops.convert_to_tensor(-(1 << 16), "int32"))
    # A NaN's low bits can carry out of the int32 (GPUs make 0x7FFFFFFF): it would become
    # a zero, and a diverged step would pass for a finite one. NaN stays NaN.
    return ops.where(ops.isnan(x), ops.cast(x, "bfloat16"),
                     ops.cast(ops.view(kept, "float32"), "bfloat16"))


class _Bfloat16Updates:
    """The float32 update of bfloat16 weights, mixed into Adam and AdamW."""

    def __init__(self, *args, state_dtype="float32", seed=None, **kwargs):
        if state_dtype not in STATE_DTYPES:
            raise ValueError(f"state_dtype must be one of {STATE_DTYPES}. "
                             f"Received: state_dtype={state_dtype!r}. Pass one of those.")
        if kwargs.get("amsgrad"):
            raise ValueError("amsgrad is not supported for bfloat16 weights. "
                             "Received: amsgrad=True. Use amsgrad=False, or float32 "
                             "weights with keras.optimizers.Adam.")
        super().__init__(*args, **kwargs)
        self.state_dtype = state_dtype
        self.seed = seed
        self._reference_dtype = None  # the dtype only: a Variable attribute is tracked

    def build(self, var_list):
        if self.built:
            return
        # Its state is an optimizer variable: saved with the checkpoint, and updated by
        # JAX's stateless step like the moments.
        self._rounding_seed = keras.random.SeedGenerator(self.seed, name="rounding_seed")
        self._track_variable(self._rounding_seed.state)
        super().build(var_list)

    def add_variable_from_reference(self, reference_variable, name=None, initializer="zeros"):
        # The moments only: Keras' gradient accumulators and moving averages add to and
        # assign the weights in their dtype.
        if name in MOMENTS:
            self._reference_dtype = keras.backend.standardize_dtype(reference_variable.dtype)
        try:
            return super().add_variable_from_reference(reference_variable, name=name,
                                                       initializer=initializer)
        finally:
            self._reference_dtype = None

    def add_variable(self, shape, initializer="zeros", dtype=None, aggregation="none",
                     layout=None, name=None):
        if self._reference_dtype == "bfloat16":
            dtype = self.state_dtype  # a bf16 weight's moment
        return super().add_variable(shape, initializer=initializer, dtype=dtype,
                                    aggregation=aggregation, layout=layout, name=name)

    def _apply_weight_decay(self, variables):
        # bfloat16 weights decay inside update_step, in float32 with the Adam step.
        super()._apply_weight_decay([v for v in variables if not _is_bfloat16(v)])

    def update_step(self, gradient, variable, learning_rate):
        if not _is_bfloat16(variable):
            return super().update_step(gradient, variable, learning_rate)
        index = self._get_variable_index(variable)
        m_var, v_var = self._momentums[index], self._velocities[index]
        lr = ops.cast(learning_rate, "float32")
        step = ops.cast(self.iterations + 1, "float32")
        g = ops.cast(gradient, "float32")
        m = ops.cast(m_var, "float32")
        v = ops.cast(v_var, "float32")
        m = ops.add(m, ops.multiply(ops.subtract(g, m), 1 - self.beta_1))
        v = ops.add(v, ops.multiply(ops.subtract(ops.square(g), v), 1 - self.beta_2))
        alpha = lr * ops.sqrt(1 - ops.power(self.beta_2, step)) / (
            1 - ops.power(self.beta_1, step))
        w = ops.cast(variable, "float32")
        if self.weight_decay is not None and self._use_weight_decay(variable):
            w = ops.subtract(w, w * ops.cast(self.weight_decay, "float32") * lr)
        w = ops.subtract(w, ops.divide(ops.multiply(m, alpha),
                                       ops.add(ops.sqrt(v), self.epsilon)))
        self.assign(m_var, self._store(m, m_var))
        self.assign(v_var, self._store(v, v_var))
        self.assign(variable, round_stochastic(w, self._rounding_seed))

    def _store(self, value, variable):
        return round_stochastic(value, self._rounding_seed) if _is_bfloat16(variable) \
            else value

    def get_config(self):
        return {**super().get_config(), "state_dtype": self.state_dtype, "seed": self.seed}


def _is_bfloat16(variable):
    return keras.backend.standardize_dtype(variable.dtype) == "bfloat16"


@keras.saving.register_keras_serializable(package="tfsuite")
class Bfloat16Adam(_Bfloat16Updates, keras.optimizers.Adam):
    """Adam for bfloat16 weights: float32 arithmetic, `state_dtype` moments, stochastic
    rounding (module docstring)."""


@keras.saving.register_keras_serializable(package="tfsuite")
class Bfloat16AdamW(_Bfloat16Updates, keras.optimizers.AdamW):
    """AdamW for bfloat16 weights: float32 arithmetic (the decay too), `state_dtype`
    moments, stochastic rounding (module docstring)."""
