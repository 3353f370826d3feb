"""`predict`: the top classes of image files, from a run's model or an exported SavedModel."""

import os

import numpy as np

from tfsuite.config import DataConfig, read_run_config
from tfsuite.errors import user_error
from tfsuite.io import printable, read_json
from tfsuite.run_dir import CONFIG, EXPORT_REPORT, SUMMARY

NAME = "image_classification"


def predict(task, run_dir, images, top_k=5):
    """Top-k class names and probabilities for image files, from a run's model."""
    from tfsuite.data.pipeline import load_image_file
    from tfsuite.image_classification.evaluation import rank_top_k

    _check_image_files(images)
    summary_path = os.path.join(run_dir, SUMMARY)
    model = task.load_model(run_dir)
    class_names = read_json(summary_path)["data"]["class_names"] if os.path.isfile(
        summary_path) else [str(i) for i in range(model.output_shape[-1])]
    top_k = max(1, min(top_k, len(class_names)))
    batch = np.stack([load_image_file(p, task.config.data) for p in images])
    import keras

    probabilities = keras.ops.convert_to_numpy(model.predict(batch.astype(np.float32),
                                                             verbose=0))
    return rank_top_k(images, probabilities, class_names, top_k)


def predict_saved_model(path, images, top_k=5):
    """Top-k class names and probabilities from an exported SavedModel (OUT/NAME/VERSION).

    Image size and color mode come from the signature and the version's
    export.json; without that file, classes are shown by index.
    """
    from tfsuite.data.pipeline import load_image_file
    from tfsuite.export.saved_model import SavedModelRunner
    from tfsuite.image_classification.evaluation import rank_top_k

    _check_image_files(images)
    info_path = os.path.join(path, EXPORT_REPORT)
    info = read_json(info_path) if os.path.isfile(info_path) else {}
    runner = SavedModelRunner(path)
    if "probabilities" not in info.get("outputs", {"probabilities": None}) or \
            len(runner.input_spec.shape) != 4:
        raise user_error("This SavedModel does not classify images", "an image classifier's "
                         "export (inputs [batch, height, width, channels], output "
                         "probabilities)", f"{path} with input {runner.input_spec.shape} and "
                         f"outputs {sorted(info.get('outputs', {}))}", "A DQN policy's "
                         "SavedModel takes observations: query it through TF Serving, or use "
                         "`evaluate`/`render` on its run directory.")
    height, width, channels = runner.input_spec.shape[1:]
    color_mode = info.get("input", {}).get("color_mode") or {1: "grayscale", 3: "rgb",
                                                              4: "rgba"}[channels]
    data = DataConfig(image_size=[height, width], color_mode=color_mode)
    batch = np.stack([load_image_file(p, data) for p in images]).astype(np.float32)
    probabilities = runner(batch)
    class_names = info.get("class_names") or [str(i) for i in range(probabilities.shape[1])]
    return rank_top_k(images, probabilities, class_names, max(1, min(top_k, len(class_names))))


def _check_image_files(images):
    for path in images:
        if not os.path.isfile(path):
            what = "is a folder" if os.path.isdir(path) else "not found"
            raise user_error(f"Image file {what}", "an existing image file",
                             f"image={printable(path)!r}")


def add_predict_command(parser):
    """The `predict` command's arguments; returns the function that runs it."""
    parser.add_argument("run_dir", metavar="RUN_DIR_OR_SAVED_MODEL",
                        help="a run directory, or an export version such as "
                             "saved_models/digits/1")
    parser.add_argument("--image", action="append", required=True, metavar="FILE",
                        help="image file (repeatable)")
    parser.add_argument("--top-k", type=int, default=5, help="classes to show (default 5)")
    return run_predict


def run_predict(args, backends):
    from tfsuite.task import get_task

    if args.top_k < 1:
        raise user_error("--top-k must be positive", "an int >= 1", f"top_k={args.top_k}")
    if os.path.isfile(os.path.join(args.run_dir, "saved_model.pb")):
        backends.start_tensorflow(args.debug)
        results = predict_saved_model(args.run_dir, args.image, args.top_k)
    else:
        if not os.path.isfile(os.path.join(args.run_dir, CONFIG)):
            raise user_error("Nothing to predict with here", "a run directory (holding "
                             "config.yaml) or an exported SavedModel version (holding "
                             "saved_model.pb, e.g. saved_models/digits/1)",
                             f"path={args.run_dir!r}")
        config = read_run_config(args.run_dir)
        if config.task != NAME:
            raise user_error("`predict` classifies images", "a run of an image_classification "
                             "experiment", f"{args.run_dir} (task={config.task})",
                             f"For a DQN run use `evaluate {args.run_dir} --episodes N` or "
                             f"`render {args.run_dir} --out episode.gif`.")
        backends.start(config, args.debug)
        results = predict(get_task(config), args.run_dir, args.image, args.top_k)
    for path, ranked in results:
        print(f"{printable(path)}:")
        for rank, (name, probability) in enumerate(ranked, start=1):
            print(f"  {rank:>2}. {name:<20} {probability:.4f}")
