"""What is wrong with a run, and which setting fixes it: `diagnose`, `lr-find`.

`verdict` (the record every check returns), `curves` (overfitting, underfitting and
divergence from a run's per-epoch history), `probe` (timing the input pipeline against
the training step; finding the first layer whose output is not finite) and `report`
(diagnose.json, the PNG, the printed report) are building blocks the tasks use;
`run` reads a run directory and asks its task, and `lr_find` runs the range test.
"""
