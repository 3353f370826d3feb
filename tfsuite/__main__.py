import sys

from tfsuite.run import main

sys.exit(main())
