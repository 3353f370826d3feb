"""Deployment artifacts: SavedModel for TF Serving, ONNX, LiteRT, TensorRT and `.keras`.

Each format module builds its artifact and a runner that executes it in the
format's own runtime; `verify` compares every runner with the Keras model, and
`stage.export_run` ties them into the export stage.
"""
