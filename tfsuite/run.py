"""`python -m tfsuite.run [COMMAND] ...`: the command line (parser and commands in
`tfsuite.cli`). With no command it trains the default experiment into runs/digits."""

import sys

from tfsuite.cli import main

if __name__ == "__main__":
    sys.exit(main())
