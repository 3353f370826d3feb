from tfsuite.cli import run_and_exit

run_and_exit()
