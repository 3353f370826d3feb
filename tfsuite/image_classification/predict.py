"""`predict`: the top classes of image files, from a run's model or an exported SavedModel."""

import logging
import os

import numpy as np

from tfsuite.config import DataConfig, read_run_config
from tfsuite.errors import user_error
from tfsuite.io import printable, read_json
from tfsuite.run_dir import CONFIG, EXPORT_REPORT, SUMMARY

NAME = "image_classification"
logger = logging.getLogger("tfsuite")


BATCH = 64  # images decoded and classified at a time


def predict(task, run_dir, images, top_k=5):
    """Top-k class names and probabilities for image files, from a run's model.

    `images`: files, folders (read recursively) and glob patterns; unreadable files are
    skipped with a warning (all unreadable: an error).
    """
    summary_path = os.path.join(run_dir, SUMMARY)
    paths = expand_image_paths(images)
    model = task.load_model(run_dir)
    class_names = read_json(summary_path)["data"]["class_names"] if os.path.isfile(
        summary_path) else [str(i) for i in range(model.output_shape[-1])]
    import keras

    def classify(batch):
        return keras.ops.convert_to_numpy(model.predict_on_batch(batch))

    return _rank_in_batches(paths, task.config.data, classify, class_names, top_k)


def predict_saved_model(path, images, top_k=5):
    """Top-k class names and probabilities from an exported SavedModel (OUT/NAME/VERSION).

    Image size and color mode come from the signature and the version's
    export.json; without that file, classes are shown by index.
    """
    from tfsuite.export.saved_model import SavedModelRunner

    paths = expand_image_paths(images)
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
    return _rank_in_batches(paths, data, runner, info.get("class_names"), top_k)


def expand_image_paths(specs):
    """Image files from files, folders (recursively, image extensions only, sorted) and
    glob patterns (`**` included), in the order given, each once."""
    import glob

    from tfsuite.data.folder import IMAGE_EXTENSIONS, image_files

    paths = []
    for spec in specs:
        spec = os.fspath(spec)
        if os.path.isdir(spec):
            found = list(image_files(spec, skipped=[]))  # other files in it are not asked for
            if not found:
                raise user_error("No image files in the folder", "a folder holding files "
                                 f"ending in {', '.join(IMAGE_EXTENSIONS)} (any depth)",
                                 f"image={printable(spec)!r}")
            paths += found
        elif os.path.isfile(spec):
            paths.append(spec)
        elif glob.has_magic(spec):
            found = sorted(p for p in glob.glob(spec, recursive=True) if os.path.isfile(p))
            if not found:
                raise user_error("No files match the pattern", "a glob matching image "
                                 "files, e.g. 'photos/**/*.jpg'", f"image={printable(spec)!r}")
            paths += found
        else:
            raise user_error("Image file not found", "an existing image file, folder or glob "
                             "pattern", f"image={printable(spec)!r}")
    return list(dict.fromkeys(paths))


def _rank_in_batches(paths, data_config, classify, class_names, top_k):
    """[(path, [(class name, probability), ...])] for the readable `paths`, classified
    `BATCH` at a time by `classify` (float32 images -> probabilities); classes without
    `class_names` are named by index."""
    from tfsuite.data.pipeline import load_image_file
    from tfsuite.errors import UserError
    from tfsuite.image_classification.evaluation import rank_top_k
    from tfsuite.progress import ProgressBar

    results, skipped = [], []
    bar = ProgressBar(len(paths), "Predicting", "img")
    for start in range(0, len(paths), BATCH):
        batch = paths[start:start + BATCH]
        chunk, images = [], []
        for path in batch:
            try:
                images.append(load_image_file(path, data_config))
                chunk.append(path)
            except UserError as e:
                skipped.append((path, str(e)))
        if chunk:
            probabilities = np.asarray(classify(np.stack(images).astype(np.float32)))
            names = class_names or [str(i) for i in range(probabilities.shape[1])]
            results += rank_top_k(chunk, probabilities, names, max(1, min(top_k, len(names))))
        bar.update(start + len(batch))
    bar.close()
    if not results:
        if len(skipped) == 1:
            raise UserError(skipped[0][1])  # the reader's own message
        raise user_error("Cannot read image", "png/jpg/jpeg/bmp/gif files",
                         f"{len(skipped)} files, none readable (the first: "
                         f"{printable(skipped[0][0])!r})")
    for path, reason in skipped:
        logger.warning("Skipped %s (%s)", printable(path), reason)
    return results


def check_output(path):
    """Refuses an --output that is not a new .csv or .json file (before any work)."""
    if os.path.splitext(path)[1].lower() not in (".csv", ".json"):
        raise user_error("--output must be a .csv or .json file", "a path ending in .csv or "
                         ".json", f"output={printable(path)!r}")
    if os.path.exists(path):
        raise user_error("--output already exists", "a new file (predictions are never "
                         "written over a file you have)", f"output={printable(path)!r}",
                         "Pick another name, or move that file away.")


def write_predictions(path, results):
    """One row per image (path, then each top class and its probability) to a new .csv or
    .json file; an existing file is never replaced."""
    import csv
    import json

    from tfsuite.io import replacing

    check_output(path)
    kind = os.path.splitext(path)[1].lower()
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    # surrogateescape: a file name that is not UTF-8 is written back as its own bytes.
    with replacing(path) as tmp, open(tmp, "w", newline="", encoding="utf-8",
                                      errors="surrogateescape") as f:
        if kind == ".json":
            json.dump([{"path": p, "top_k": [{"label": name, "probability": prob}
                                             for name, prob in ranked]}
                       for p, ranked in results], f, indent=1)
            return
        k = max(len(ranked) for _, ranked in results)
        writer = csv.writer(f)
        writer.writerow(["path", *(f"{column}_{i}" for i in range(1, k + 1)
                                   for column in ("label", "probability"))])
        for p, ranked in results:
            writer.writerow([p, *(value for name, prob in ranked
                                  for value in (name, f"{prob:.6f}"))])


def add_predict_command(parser):
    """The `predict` command's arguments; returns the function that runs it."""
    parser.add_argument("run_dir", metavar="RUN_DIR_OR_SAVED_MODEL",
                        help="a run directory, or an export version such as "
                             "saved_models/digits/1")
    parser.add_argument("--image", action="extend", nargs="+", required=True,
                        metavar="PATH", help="image files, folders (read recursively) or "
                        "glob patterns such as 'photos/**/*.jpg' (repeatable)")
    parser.add_argument("--top-k", type=int, default=5, help="classes to show (default 5)")
    parser.add_argument("--output", metavar="FILE.csv|FILE.json", help="write one row per "
                        "image (path, top-k labels and probabilities) to this new file "
                        "instead of printing each image")
    return run_predict


def run_predict(args, backends):
    from tfsuite.task import get_task

    if args.top_k < 1:
        raise user_error("--top-k must be positive", "an int >= 1", f"top_k={args.top_k}")
    if args.output:
        check_output(args.output)
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
    if args.output:
        write_predictions(args.output, results)
        print(f"{len(results)} image{'s' * (len(results) != 1)} classified: "
              f"{printable(args.output)}")
        return
    for path, ranked in results:
        print(f"{printable(path)}:")
        for rank, (name, probability) in enumerate(ranked, start=1):
            print(f"  {rank:>2}. {name:<20} {probability:.4f}")
