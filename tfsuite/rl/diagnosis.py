"""What `diagnose` checks of a DQN run: whether the returns rose as exploration fell."""

import os

import numpy as np

from tfsuite.diagnosis.record import read_history_csv
from tfsuite.diagnosis.verdict import Verdict
from tfsuite.run_dir import HISTORY


def returns_verdict(run):
    """`underfitting` when the last fifth of the episodes returns no more than the first
    fifth once epsilon has fallen; None without enough episodes."""
    history = read_history_csv(os.path.join(run.run_dir, HISTORY))
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
