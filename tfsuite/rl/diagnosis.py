"""What `diagnose` checks of a DQN run: whether the returns rose as exploration fell, and
whether the Q-values stayed within the returns the agent has seen."""

import numpy as np

from tfsuite.diagnosis.verdict import Verdict
from tfsuite.plots import moving_average


OVERESTIMATION = 1.5  # Q-values this many times past the largest return seen


def dqn_verdicts(run):
    """([`Verdict`], names of the checks) of a DQN run."""
    verdicts = [returns_verdict(run, run.history), q_value_verdict(run, run.history)]
    return [v for v in verdicts if v is not None], ["returns", "q_values"]


def curves(run):
    """diagnosis.png's panels: the returns, and the mean Q(s, a) against the largest return
    (history.csv's rows, one per episode)."""
    returns = run.history.get("return", [])
    q = run.history.get("q_mean", [])
    largest = np.maximum.accumulate(np.abs(returns)) if len(returns) else []
    return "episode", [("return", {"episode": returns,
                                   "mean of 20": list(moving_average(returns, 20))}),
                       ("Q-values", {"mean Q(s, a) of the updates": q,
                                     "largest return so far": list(largest)})]


def returns_verdict(run, history):
    """`underfitting` when the last fifth of the episodes returns no more than the first
    fifth once epsilon has fallen; None without enough episodes."""
    returns, epsilons = history.get("return", []), history.get("epsilon", [])
    if len(returns) < 10:
        return None
    fifth = max(2, len(returns) // 5)
    first, last = float(np.mean(returns[:fifth])), float(np.mean(returns[-fifth:]))
    solved = run.value("metrics", "solved")
    evidence = {"episodes": len(returns), "first_fifth_mean_return": round(first, 2),
                "last_fifth_mean_return": round(last, 2), "epsilon_first": epsilons[0],
                "epsilon_last": epsilons[-1], "eval_mean_return":
                run.value("metrics", "eval_mean_return"), "solved": solved}
    rl = run.config.rl
    if last > 1.1 * first + 1e-9 or solved:
        return Verdict("underfitting", "info", f"Returns rose from {first:.1f} (first "
                       f"{fifth} episodes) to {last:.1f} (last {fifth}) as epsilon fell "
                       f"from {epsilons[0]:.2f} to {epsilons[-1]:.2f}.", evidence)
    return Verdict("underfitting", "problem", f"Returns stayed flat: {first:.1f} over the "
                   f"first {fifth} episodes, {last:.1f} over the last {fifth}, while epsilon "
                   f"fell from {epsilons[0]:.2f} to {epsilons[-1]:.2f}: the greedy policy "
                   "learned nothing exploration did not.", evidence,
                   [f"--set rl.total_steps={2 * rl.total_steps}",
                    f"--set rl.learning_rate={rl.learning_rate / 3:.3g}",
                    f"--set rl.exploration_fraction={min(0.5, 2 * rl.exploration_fraction):.3g}"])


def q_value_verdict(run, history):
    """`q_value_growth`: a problem when the mean Q(s, a) of the updates turned non-finite or
    grew past 1.5x the largest return of any episode (a discounted return of non-negative
    rewards is at most the undiscounted one: such values are overestimation feeding on
    itself through the bootstrapped targets); None before any update."""
    q = np.asarray([v for v in history.get("q_mean", []) if not np.isnan(v)], np.float64)
    returns = np.asarray(history.get("return", []), np.float64)
    if len(q) < 5 or not len(returns):
        return None
    fifth = max(1, len(q) // 5)
    last = float(np.mean(q[-fifth:]))
    bound = float(np.max(np.abs(returns)))
    evidence = {"q_mean_first": round(float(q[0]), 4), "q_mean_last": round(last, 4),
                "q_mean_peak": round(float(np.max(np.abs(q))), 4) if np.isfinite(q).all()
                else None, "largest_return": round(bound, 2), "gamma": run.config.rl.gamma,
                "horizon_bound": round(1 / (1 - run.config.rl.gamma), 1)
                if run.config.rl.gamma < 1 else None}
    if np.isfinite(q).all() and abs(last) <= OVERESTIMATION * max(bound, 1e-9):
        return Verdict("q_value_growth", "info", f"Q-values settled at {last:.3g} (the mean "
                       f"Q(s, a) of the updates in the last {fifth} of {len(q)} episodes with "
                       f"updates), within the largest return seen ({bound:.3g}).", evidence)
    rl = run.config.rl
    fixes = [] if rl.double_dqn else ["--set rl.double_dqn=true"]
    fixes.append(f"--set rl.learning_rate={rl.learning_rate / 3:.3g}")
    fixes.append(f"--set rl.tau={rl.tau / 4:.3g}" if rl.tau < 1 else
                 f"--set rl.target_update_interval={4 * rl.target_update_interval}")
    if rl.max_grad_norm > 1:
        fixes.append("--set rl.max_grad_norm=1")
    grown = ("turned non-finite" if not np.isfinite(q).all() else
             f"grew to {last:.3g} (from {q[0]:.3g})")
    return Verdict("q_value_growth", "problem", f"Q-values {grown}, past {OVERESTIMATION}x "
                   f"the largest return any episode got ({bound:.3g}): the targets bootstrap "
                   "from overestimates, which the updates chase upwards.", evidence, fixes,
                   ["Scale the rewards into [-1, 1] if they are large."])
