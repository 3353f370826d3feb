"""The tfsuite command line: `python -m tfsuite.run [COMMAND] ...`.

Argument parsing and dispatch only; the work is in `tfsuite.stages`. With no
command it trains the default experiment (`digits`) into `runs/digits`.
"""

import argparse
import logging
import os
import signal
import sys

DEFAULT_EXPERIMENT = "digits"


def build_parser():
    parser = argparse.ArgumentParser(
        prog="python -m tfsuite.run",
        description="tfsuite: train, evaluate and use Keras 3 models. With no command, trains "
                    f"the default experiment '{DEFAULT_EXPERIMENT}' into runs/{DEFAULT_EXPERIMENT}.")
    # SUPPRESS: a flag given before the command is not reset by the sub-parser.
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--quiet", action="store_true", default=argparse.SUPPRESS,
                        help="print only the final result")
    common.add_argument("--debug", action="store_true", default=argparse.SUPPRESS,
                        help="show TensorFlow logs and full tracebacks")
    parser.add_argument("--quiet", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--debug", action="store_true", help=argparse.SUPPRESS)
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")

    train = commands.add_parser("train", parents=[common], help="train an experiment")
    train.add_argument("experiment", nargs="?", default=DEFAULT_EXPERIMENT,
                       help=f"experiment name (see `list`). Default: {DEFAULT_EXPERIMENT}")
    train.add_argument("--run-dir", help="where to write the run (default runs/EXPERIMENT; "
                       "an unfinished run there is resumed)")
    train.add_argument("--config", help="YAML file merged over the experiment")
    train.add_argument("--set", dest="overrides", action="append", default=[],
                       metavar="KEY=VALUE", help="override a config key, e.g. train.epochs=5 "
                       "or data.image_size=[32,32] (repeatable; values are YAML)")

    commands.add_parser("list", parents=[common], help="list the experiments")

    evaluate = commands.add_parser("evaluate", parents=[common],
                                   help="evaluate a run's model on its test split (a DQN "
                                        "run: its greedy policy over N episodes)")
    evaluate.add_argument("run_dir")
    evaluate.add_argument("--episodes", type=int, help="DQN runs: episodes to play "
                          "(default 20)")
    evaluate.add_argument("--seed", type=int, help="DQN runs: seed of the first episode "
                          "(default 10000, apart from training's)")

    evaluate.add_argument("--sampler", choices=("greedy", "beam"), help="translation runs: "
                          "decoding (default: the run's translation.sampler)")
    evaluate.add_argument("--num-beams", type=int, help="translation runs: beams for "
                          "--sampler beam (default: the run's translation.num_beams)")

    translate = commands.add_parser("translate", parents=[common],
                                    help="translate text with a translation run's model")
    translate.add_argument("run_dir")
    translate.add_argument("texts", nargs="*", metavar="TEXT", help="text to translate "
                           "(the task prefix is added)")
    translate.add_argument("--file", help="translate every line of this UTF-8 file (one "
                           "translation per line on stdout, blank lines kept)")
    translate.add_argument("--sampler", choices=("greedy", "beam"),
                           help="decoding (default: the run's translation.sampler)")
    translate.add_argument("--num-beams", type=int, help="beams for --sampler beam")
    translate.add_argument("--max-length", type=int, help="longest translation in tokens")

    recommend = commands.add_parser("recommend", parents=[common],
                                    help="top-k items for users, from a recommendation run")
    recommend.add_argument("run_dir")
    recommend.add_argument("--user", dest="users", action="append", required=True,
                           metavar="ID", help="a user id as in the ratings file (repeatable); "
                           "an unknown one gets the most popular items")
    recommend.add_argument("--k", type=int, help="items per user (default: the run's "
                           "recommend.k)")

    render = commands.add_parser("render", parents=[common],
                                 help="DQN runs: a GIF of one greedy episode")
    render.add_argument("run_dir")
    render.add_argument("--out", default="episode.gif", help="GIF to write (a new file; "
                        "default episode.gif)")
    render.add_argument("--seed", type=int, default=10_000, help="episode seed "
                        "(default 10000)")
    render.add_argument("--fps", type=int, default=50, help="frames per second (default 50, "
                        "CartPole's real time)")
    render.add_argument("--scale", type=float, default=0.5, help="frame size factor "
                        "(default 0.5)")

    predict = commands.add_parser("predict", parents=[common],
                                  help="classify image files with a run's model or an "
                                       "exported SavedModel")
    predict.add_argument("run_dir", metavar="RUN_DIR_OR_SAVED_MODEL",
                         help="a run directory, or an export version such as "
                              "saved_models/digits/1")
    predict.add_argument("--image", action="append", required=True, metavar="FILE",
                         help="image file (repeatable)")
    predict.add_argument("--top-k", type=int, default=5, help="classes to show (default 5)")
    parser.add_argument("--version", action="version",
                        version=f"tfsuite {__import__('tfsuite').__version__}")

    export = commands.add_parser(
        "export", parents=[common], help="export a run's model as deployment artifacts "
        "(SavedModel for TF Serving, ONNX, LiteRT, TensorRT, .keras), each verified")
    export.add_argument("run_dir")
    export.add_argument("--format", help="comma-separated formats: saved_model, onnx, litert "
                        "(tflite), tensorrt, keras, or all (default: all this machine can "
                        "produce). The SavedModel is always included: every version folder "
                        "must be servable by TF Serving")
    export.add_argument("--name", help="model name under --out (default: the experiment name)")
    export.add_argument("--out", help="TF Serving base folder; versions go to OUT/NAME/VERSION "
                        "(default: saved_models)")
    export.add_argument("--opset", type=int, help="ONNX opset (default 17)")
    export.add_argument("--set", dest="overrides", action="append", default=[],
                        metavar="export.KEY=VALUE", help="override an export.* config key, "
                        "e.g. export.tensorrt_precision=int8 (repeatable)")

    compress = commands.add_parser(
        "compress", parents=[common], help="compress a run's model (prune, quantize, "
        "low_rank, distill) and compare it with the original")
    compress.add_argument("run_dir")
    compress.add_argument("--method", required=True, help="prune, quantize, low_rank or "
                          "distill")
    compress.add_argument("--from", dest="source", metavar="METHOD",
                          help="compress the output of an earlier method instead of the "
                               "run's model, e.g. --method quantize --from prune")
    compress.add_argument("--set", dest="overrides", action="append", default=[],
                          metavar="compress.KEY=VALUE", help="override a compress.* config "
                          "key, e.g. compress.sparsity=0.9 or compress.quantization=qat "
                          "(repeatable)")

    launch = commands.add_parser(
        "launch", parents=[common], help="run a command as N local workers of one "
        "multi-worker job (TF_CONFIG per worker, or JAX multi-process with --backend jax)")
    launch.add_argument("--workers", type=int, required=True, help="number of workers")
    launch.add_argument("--port", type=int, help="first loopback port (default: free ports)")
    launch.add_argument("--backend", choices=("tensorflow", "jax"),
                        help="tensorflow (MultiWorkerMirroredStrategy) or jax "
                             "(keras.distribution); default: KERAS_BACKEND, else tensorflow")
    launch.add_argument("worker_command", nargs=argparse.REMAINDER, metavar="-- COMMAND",
                        help="the tfsuite command every worker runs, e.g. -- train digits")

    digits = commands.add_parser("write-digits", parents=[common],
                                 help="write the bundled digits as an image folder")
    digits.add_argument("out", nargs="?", default=os.path.join("data", "digits"))

    ratings = commands.add_parser("write-ratings", parents=[common],
                                  help="write the bundled generated ratings (MovieLens "
                                       "format: ratings.csv, movies.csv)")
    ratings.add_argument("out", nargs="?", default=os.path.join("data", "ratings"))

    show = commands.add_parser("config", parents=[common],
                               help="print an experiment's resolved config as YAML")
    show.add_argument("experiment", nargs="?", default=DEFAULT_EXPERIMENT)
    show.add_argument("--config")
    show.add_argument("--set", dest="overrides", action="append", default=[])
    return parser


def _configure_logging(debug):
    if not debug:
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
        import warnings

        warnings.filterwarnings("ignore", category=UserWarning, module="keras")
    logging.basicConfig(format="%(levelname)s: %(message)s",
                        level=logging.DEBUG if debug else logging.WARNING)
    logging.getLogger("tfsuite").setLevel(logging.INFO if debug else logging.WARNING)
    if debug:
        os.environ["TFSUITE_DEBUG"] = "1"  # native logs stay visible


def _import_tensorflow_quietly():
    """Imports TensorFlow with its C++ start-up chatter (CUDA probing) silenced."""
    from tfsuite.quiet import native_stderr_silenced

    with native_stderr_silenced():
        try:
            import tensorflow  # noqa: F401
        except ImportError:
            pass  # JAX/torch machines without TensorFlow


def _start_backend(config, debug):
    """Sets the run's Keras backend, then imports TensorFlow (which imports Keras)."""
    from tfsuite.training.runtime import select_backend

    select_backend(config.runtime)
    if not debug:
        _import_tensorflow_quietly()


def cmd_train(args):
    from tfsuite import stages
    from tfsuite.config import load_config

    config = load_config(args.experiment, args.config, args.overrides)
    _start_backend(config, args.debug)
    summary = stages.train(config, args.run_dir, quiet=args.quiet)
    if config.task == "translation":
        from tfsuite.translation.stage import format_summary

        print(format_summary(summary))
        _print_compression(summary)
        _print_export(summary)
        return
    if config.task in ("reinforcement_learning", "recommendation"):
        if config.task == "reinforcement_learning":
            from tfsuite.rl.stage import format_summary
        else:
            from tfsuite.recommend.stage import format_summary

        print(format_summary(summary))
        _print_export(summary)
        return
    if "worker" in summary:  # a multi-worker job's other workers: the chief reports
        print(f"Done: worker {summary['worker']} of {summary['num_workers']} - test accuracy "
              f"{summary['metrics']['test_accuracy']:.2%} (the chief writes "
              f"{summary['run_dir']})")
        return
    print_summary(summary)
    _print_compression(summary)
    _print_export(summary)


def _print_compression(summary):
    from tfsuite.io import read_json

    for method, record in summary.get("compress", {}).items():
        print(f"Compressed ({method}):")
        print(_format_compression(read_json(record["report"])))


def _format_compression(report):
    if "bleu" in report["compressed"]:
        from tfsuite.translation.quantize import format_report
    else:
        from tfsuite.compression.stage import format_report
    return format_report(report)


def _print_export(summary):
    if summary.get("export"):
        from tfsuite.export.report import format_report
        from tfsuite.io import read_json

        print(format_report(read_json(summary["export"]["report"])))


def print_summary(summary):
    metrics = summary["metrics"]
    line = f"test accuracy {metrics['test_accuracy']:.2%}"
    if "test_top5_accuracy" in metrics:
        line += f", top-5 {metrics['test_top5_accuracy']:.2%}"
    resumed = summary["resumed_from_epoch"]
    epochs = summary["epochs_completed"]
    print(f"Done: {summary['experiment']} - {line} - {epochs} epoch{'s' * (epochs != 1)}"
          + (f" (resumed after epoch {resumed})" if resumed else "")
          + f" - {summary['wall_seconds']:.0f}s - {summary['images_per_second'] or 0:.0f} img/s")
    scaling = summary.get("scaling")
    if scaling and scaling["strategy"] != "none":
        workers = scaling["num_workers"]
        print(f"  scaling: {scaling['strategy']}, "
              + (f"{workers} workers, " if workers > 1 else "")
              + f"{scaling['num_replicas']} replicas x {scaling['per_replica_batch_size']} "
              f"images (global batch {scaling['global_batch_size']}) - "
              f"{scaling['images_per_second'] or 0:.0f} img/s, "
              f"{scaling['images_per_second_per_replica'] or 0:.0f} per replica")
    print(f"  model: {summary['model']['path']}")
    print(f"  summary: {os.path.join(os.path.dirname(summary['model']['path']), 'summary.json')}")


def cmd_list(args):
    from tfsuite.config import list_experiments

    experiments = list_experiments()
    width = max(map(len, experiments))
    for name, description in experiments.items():
        marker = " (default)" if name == DEFAULT_EXPERIMENT else ""
        print(f"{name:<{width}}  {description}{marker}")


def cmd_evaluate(args):
    from tfsuite import stages
    from tfsuite.config import read_run_config

    config = read_run_config(args.run_dir)
    _start_backend(config, args.debug)
    if config.task == "translation":
        from tfsuite.translation.stage import evaluate, format_metrics

        print(format_metrics(*evaluate(args.run_dir, args.sampler, args.num_beams)))
        return
    if args.sampler is not None or args.num_beams is not None:
        from tfsuite.errors import user_error

        raise user_error("--sampler and --num-beams apply to translation runs",
                         "no such flag for this run", f"{args.run_dir} (task={config.task})")
    if config.task == "reinforcement_learning":
        from tfsuite.rl.stage import EVAL_EPISODES, EVAL_SEED, evaluate, format_evaluation

        episodes = EVAL_EPISODES if args.episodes is None else args.episodes
        seed = EVAL_SEED if args.seed is None else args.seed
        print(format_evaluation(*evaluate(args.run_dir, episodes, seed)))
        return
    if args.episodes is not None or args.seed is not None:
        from tfsuite.errors import user_error

        raise user_error("--episodes and --seed apply to reinforcement-learning runs",
                         "no such flag for this run", f"{args.run_dir} (task={config.task})",
                         "Leave them out: this run is evaluated on its test split.")
    if config.task == "recommendation":
        from tfsuite.recommend.stage import evaluate, format_metrics

        print(format_metrics(*evaluate(args.run_dir)))
        return
    metrics, per_class, out_dir = stages.evaluate(args.run_dir, quiet=args.quiet)
    print(f"test accuracy {metrics['test_accuracy']:.2%} on {metrics['num_evaluated']} images"
          + (f", top-5 {metrics['test_top5_accuracy']:.2%}" if "test_top5_accuracy" in metrics
             else ""))
    if not args.quiet:
        print(f"{'class':<16}{'precision':>10}{'recall':>10}{'f1':>10}{'support':>9}")
        for row in per_class:
            print(f"{row['class'][:15]:<16}{row['precision']:>10.3f}{row['recall']:>10.3f}"
                  f"{row['f1']:>10.3f}{row['support']:>9d}")
    print(f"  confusion matrix: {os.path.join(out_dir, 'confusion_matrix.png')}")
    print(f"  per-class report: {os.path.join(out_dir, 'per_class.csv')}")


def cmd_predict(args):
    from tfsuite import stages
    from tfsuite.config import read_run_config

    if args.top_k < 1:
        from tfsuite.errors import user_error

        raise user_error("--top-k must be positive", "an int >= 1", f"top_k={args.top_k}")
    if os.path.isfile(os.path.join(args.run_dir, "saved_model.pb")):
        _start_tensorflow_backend(args.debug)
        results = stages.predict_saved_model(args.run_dir, args.image, args.top_k)
    else:
        if not os.path.isfile(os.path.join(args.run_dir, "config.yaml")):
            from tfsuite.errors import user_error

            raise user_error("Nothing to predict with here", "a run directory (holding "
                             "config.yaml) or an exported SavedModel version (holding "
                             "saved_model.pb, e.g. saved_models/digits/1)",
                             f"path={args.run_dir!r}")
        config = read_run_config(args.run_dir)
        if config.task != "image_classification":
            from tfsuite.errors import user_error

            raise user_error("`predict` classifies images", "a run of an image_classification "
                             "experiment", f"{args.run_dir} (task={config.task})",
                             f"For a DQN run use `evaluate {args.run_dir} --episodes N` or "
                             f"`render {args.run_dir} --out episode.gif`.")
        _start_backend(config, args.debug)
        results = stages.predict(args.run_dir, args.image, args.top_k)
    for path, ranked in results:
        print(f"{path}:")
        for rank, (name, probability) in enumerate(ranked, start=1):
            print(f"  {rank:>2}. {name:<20} {probability:.4f}")


def _start_tensorflow_backend(debug):
    """Export and SavedModel prediction run on TensorFlow whatever backend trained the model.

    TensorFlow gets no GPU here: conversion and checks run on the CPU, and the
    GPU stays free for TensorRT (and for the training process that may have
    started this one).
    """
    from tfsuite.packages import has_tensorflow

    if "keras" in sys.modules or not has_tensorflow():
        return
    os.environ["KERAS_BACKEND"] = "tensorflow"
    if not debug:
        _import_tensorflow_quietly()
    import tensorflow as tf

    tf.config.set_visible_devices([], "GPU")


def cmd_export(args):
    from tfsuite.packages import require_tensorflow

    require_tensorflow("Export")
    from tfsuite.export.report import format_report
    from tfsuite.export.stage import export_config_for, export_run

    export_config = export_config_for(args.run_dir, args.overrides, formats=args.format,
                                      name=args.name, out=args.out, opset=args.opset)
    _start_tensorflow_backend(args.debug)
    report = export_run(args.run_dir, export_config, quiet=args.quiet)
    from tfsuite.tensorflow_process import is_child

    if not is_child():  # a child's parent prints the report
        print(format_report(report))


def cmd_compress(args):
    from tfsuite.compression.stage import check_method, compress_config_for
    from tfsuite.tensorflow_process import is_child

    check_method(args.method)
    config = compress_config_for(args.run_dir, args.overrides)
    if is_child():  # a JAX/torch run's TensorFlow-only step: the run's backend key must not win
        _start_tensorflow_backend(args.debug)
    else:
        _start_backend(config, args.debug)
    from tfsuite.compression.stage import compress_run
    from tfsuite.io import display_path

    report = compress_run(args.run_dir, config, args.method, source=args.source,
                          quiet=args.quiet)
    if is_child():  # a child's parent prints the report
        return
    print(f"{args.method}: {report['compressed']['file']} in {display_path(report['path'])}")
    print(_format_compression(report))


def _run_of_task(run_dir, task, what, example):
    """The run's config, or a clear error when the run is of another task."""
    from tfsuite.config import read_run_config
    from tfsuite.errors import user_error

    config = read_run_config(run_dir)
    if config.task != task:
        raise user_error(what, f"a run of a {task} experiment (e.g. {example})",
                         f"{run_dir} (task={config.task})")
    return config


def cmd_render(args):
    config = _run_of_task(args.run_dir, "reinforcement_learning",
                          "`render` plays episodes of a DQN run", "cartpole_dqn")
    _start_backend(config, args.debug)
    from tfsuite.rl.stage import render

    path, total, frames = render(args.run_dir, args.out, args.seed, args.fps, args.scale)
    print(f"Wrote {path}: one greedy episode, return {total:g}, {frames} frames at "
          f"{args.fps} fps")


def cmd_translate(args):
    from tfsuite.errors import user_error

    config = _run_of_task(args.run_dir, "translation", "`translate` needs a translation run",
                          "translate_numbers")
    if args.file and args.texts:
        raise user_error("Give texts or --file, not both", "TEXT ... or --file FILE",
                         f"{len(args.texts)} texts and --file {args.file!r}")
    from tfsuite.translation.stage import read_lines, translate

    texts = read_lines(args.file) if args.file else args.texts
    if not texts:
        raise user_error("Nothing to translate", "a text argument or --file FILE",
                         "no text", f'e.g. python -m tfsuite.run translate {args.run_dir} '
                         '"twenty-one"')
    _start_backend(config, args.debug)
    translations, truncated = translate(args.run_dir, texts, args.sampler, args.num_beams,
                                        args.max_length)
    for text, translation in zip(texts, translations):
        print(translation if args.file or args.quiet else f"{text} -> {translation}")
    if truncated:
        print(f"warning: {truncated} input(s) were longer than "
              f"translation.max_source_length={config.translation.max_source_length} "
              "tokens and were cut.", file=sys.stderr)


def cmd_recommend(args):
    config = _run_of_task(args.run_dir, "recommendation",
                          "`recommend` needs a recommendation run", "ratings_retrieval")
    _start_backend(config, args.debug)
    from tfsuite.recommend.stage import format_recommendations, recommend

    print(format_recommendations(recommend(args.run_dir, args.users, args.k)))


def cmd_launch(args):
    from tfsuite.launch import launch

    command = list(args.worker_command)
    if command[:1] == ["--"]:
        command = command[1:]
    return launch(args.workers, _shorthand(command), backend=args.backend, port=args.port)


def cmd_write_digits(args):
    from tfsuite.data.sources import write_digits_folder

    count = write_digits_folder(args.out)
    print(f"Wrote {count} digit images to {args.out} (one folder per class). Train on them "
          f"with: python -m tfsuite.run train image_folder --set data.path={args.out}")


def cmd_write_ratings(args):
    from tfsuite.recommend.generate import generate_ratings, write_movielens

    ratings, movies = generate_ratings()
    paths = write_movielens(args.out, ratings, movies)
    print(f"Wrote {len(ratings):,} ratings of {len({r[0] for r in ratings}):,} users and "
          f"{len(movies):,} movies to {paths[0]} and {paths[1]} (MovieLens layout). Train on "
          f"them with: python -m tfsuite.run train movielens --set data.path={paths[0]}")


def cmd_config(args):
    import yaml

    from tfsuite.config import load_config

    config = load_config(args.experiment, args.config, args.overrides)
    print(yaml.safe_dump(config.to_dict(), sort_keys=False), end="")


COMMANDS = {"train": cmd_train, "list": cmd_list, "evaluate": cmd_evaluate, "render": cmd_render,
            "translate": cmd_translate, "recommend": cmd_recommend,
            "write-ratings": cmd_write_ratings,
            "predict": cmd_predict, "export": cmd_export, "compress": cmd_compress,
            "launch": cmd_launch, "write-digits": cmd_write_digits, "config": cmd_config}


def _shorthand(argv):
    """`run digits ...` and `run --set k=v ...` mean `run train digits ...` / `run train ...`."""
    from tfsuite.config import list_experiments

    if argv and argv[0] in list_experiments():
        return ["train", *argv]
    if argv and argv[0] in ("--set", "--config", "--run-dir"):
        return ["train", *argv]
    return argv


def main(argv=None):
    argv = _shorthand(list(sys.argv[1:] if argv is None else argv))
    args = build_parser().parse_args(argv)
    if args.command is None:
        args = build_parser().parse_args(["train", DEFAULT_EXPERIMENT]
                                         + (["--quiet"] if args.quiet else [])
                                         + (["--debug"] if args.debug else []))
    _configure_logging(args.debug)
    from tfsuite.errors import UserError

    def terminated(signum, frame):  # e.g. launch stopping its workers: run `finally` blocks
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, terminated)

    try:
        code = COMMANDS[args.command](args)
    except UserError as e:
        if args.debug:
            raise
        print(f"error: {e}", file=sys.stderr)
        return e.exit_code
    except KeyboardInterrupt:
        print("interrupted. Run the same command again: an image run resumes after its last "
              "completed epoch (one stopped during its first epoch starts again); a DQN run "
              "starts again.", file=sys.stderr)
        return 130
    return code or 0


if __name__ == "__main__":
    sys.exit(main())
