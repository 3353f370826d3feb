"""`python -m tfsuite.run [COMMAND] ...`: the command line (parser and commands in
`tfsuite.cli`). With no command it trains the default experiment into runs/digits."""

from tfsuite.cli import main, run_and_exit

__all__ = ["main", "run_and_exit"]  # main: what notebooks and tests call in-process

if __name__ == "__main__":
    run_and_exit()
