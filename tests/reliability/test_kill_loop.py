"""kill -9 at random moments across train -> compress -> export, then the same command
(issue 21). The bar's 20 kills: `python -m tests.reliability.kill_loop --kills 20`."""

from tests.reliability.kill_loop import kill_loop


def test_killed_at_random_moments_the_same_command_finishes_the_chain(tmp_path):
    """Before, a kill during the compression inside `train` left a run that the same
    command refused as completed: compression and export never happened."""
    result = kill_loop(str(tmp_path), kills=2, seed=3, max_seconds=300)
    assert result["kills"] == 2
