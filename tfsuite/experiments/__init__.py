"""Named experiments, one YAML file each (see `python -m tfsuite.run list`)."""
