"""The tfsuite command line (`python -m tfsuite.run [COMMAND] ...`): the parser and one
function per command.

A thin layer: the work is in `tfsuite.api`, `tfsuite.stages` and the tasks. Each
registered task adds its own commands (`translate`, `recommend`, `render`,
`predict`) and its `evaluate` flags. With no command it trains the default
experiment (`digits`) into `runs/digits`.
"""

import argparse
import logging
import os
import signal
import sys

from tfsuite.backends import start_backend, start_tensorflow_backend
from tfsuite.task import get_task, registered_tasks

DEFAULT_EXPERIMENT = "digits"
HANDLERS = {}  # the tasks' commands: {name: run(args, backends)}


def build_parser():
    parser = argparse.ArgumentParser(
        # The `tfsuite` console script, or python -m tfsuite.run (and tfsuite's __main__).
        prog="tfsuite" if os.path.basename(sys.argv[0]) == "tfsuite" else "python -m tfsuite.run",
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
                       help="experiment name (see `list`) or an experiment YAML file. "
                            f"Default: {DEFAULT_EXPERIMENT}")
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
    for task in registered_tasks().values():
        for flag, options in task.evaluate_options.items():
            evaluate.add_argument(flag, **options)
    for task in registered_tasks().values():
        for name, help_text in task.commands.items():
            HANDLERS[name] = task.add_command(
                name, commands.add_parser(name, parents=[common], help=help_text))
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

    diagnose = commands.add_parser(
        "diagnose", parents=[common], help="say what is wrong with a run (overfitting, "
        "divergence, underfitting, an input-bound pipeline, its data) and which --set fixes "
        "it; writes RUN_DIR/diagnosis/")
    diagnose.add_argument("run_dir")
    diagnose.add_argument("--probe", action="store_true", help="also time a few steps of "
                          "the real pipeline: the input alone, the training step on one "
                          "cached batch, the real loop (and replay a NaN to its first layer)")

    find = commands.add_parser(
        "lr-find", parents=[common], help="the learning-rate range test: about 100 steps "
        "at exponentially rising rates on the experiment's real data; suggests a rate")
    find.add_argument("experiment", nargs="?", default=DEFAULT_EXPERIMENT)
    find.add_argument("--config")
    find.add_argument("--set", dest="overrides", action="append", default=[],
                      metavar="KEY=VALUE")
    find.add_argument("--steps", type=int, default=100, help="steps, one rate each "
                      "(default 100)")
    find.add_argument("--start", type=float, default=1e-7, help="first rate (default 1e-7)")
    find.add_argument("--end", type=float, default=10.0, help="last rate (default 10)")
    find.add_argument("--out", help="folder for lr_find.json and lr_find.png (default: "
                      "runs/EXPERIMENT-lr-find)")
    find.add_argument("--apply", metavar="FILE", help="write train.learning_rate into this "
                      "YAML file (other keys kept) for `train EXPERIMENT --config FILE`")

    doctor = commands.add_parser(
        "doctor", parents=[common], help="check the environment: packages and their "
        "versions, devices, half precision, XLA, ONNX Runtime, LiteRT, TensorRT, Gymnasium")
    doctor.add_argument("--json", action="store_true", help="print the checks as JSON")

    digits = commands.add_parser("write-digits", parents=[common],
                                 help="write the bundled digits as an image folder")
    digits.add_argument("out", nargs="?", default=os.path.join("data", "digits"))

    show = commands.add_parser("config", parents=[common],
                               help="print an experiment's resolved config as YAML")
    show.add_argument("experiment", nargs="?", default=DEFAULT_EXPERIMENT)
    show.add_argument("--config")
    show.add_argument("--set", dest="overrides", action="append", default=[])
    return parser


def _configure_logging(debug):
    if not debug:
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
        from tfsuite.quiet import silence_known_warnings

        silence_known_warnings()
    logging.basicConfig(format="%(levelname)s: %(message)s",
                        level=logging.DEBUG if debug else logging.WARNING)
    logging.getLogger("tfsuite").setLevel(logging.INFO if debug else logging.WARNING)
    if debug:
        os.environ["TFSUITE_DEBUG"] = "1"  # native logs stay visible


def cmd_train(args):
    from tfsuite import api, stages
    from tfsuite.config import load_config

    config = load_config(args.experiment, args.config, args.overrides)
    start_backend(config, args.debug)
    run = api.train(config, run_dir=args.run_dir, quiet=args.quiet)
    if "worker" in run.result:  # a multi-worker job's other workers: the chief reports
        print(run.task.format_worker_summary(run.result))
        return
    print(run.task.format_summary(run.result))
    after = stages.format_after_training(run.result, run.task)
    if after:
        print(after)


def cmd_list(args):
    from tfsuite.config import list_experiments

    experiments = list_experiments()
    width = max(map(len, experiments))
    for name, description in experiments.items():
        marker = " (default)" if name == DEFAULT_EXPERIMENT else ""
        print(f"{name:<{width}}  {description}{marker}")


def cmd_evaluate(args):
    from tfsuite.config import read_run_config
    from tfsuite.errors import user_error

    config = read_run_config(args.run_dir)
    task = get_task(config)
    options = {"quiet": args.quiet}
    for other in registered_tasks().values():
        flags = list(other.evaluate_options)
        given = [flag for flag in flags if getattr(args, _dest(flag)) is not None]
        if other.name != task.name and given:
            raise user_error(f"{' and '.join(flags)} appl{'y' if len(flags) > 1 else 'ies'} "
                             f"to {other.label} runs", "no such flag for this run",
                             f"{args.run_dir} (task={config.task})", "Leave them out.")
        if other.name == task.name:
            options.update({_dest(flag): getattr(args, _dest(flag))
                            for flag in other.evaluate_options})
    start_backend(config, args.debug)
    _, text = task.evaluate_run(args.run_dir, options)
    print(text)


def _dest(flag):
    return flag.lstrip("-").replace("-", "_")


def cmd_export(args):
    from tfsuite import api
    from tfsuite.export.report import format_report
    from tfsuite.tensorflow_process import is_child

    start_tensorflow_backend(args.debug)
    report = api.load_run(args.run_dir).export(args.format, args.overrides, args.name,
                                               args.out, args.opset, quiet=args.quiet)
    if not is_child():  # a child's parent prints the report
        print(format_report(report))


def cmd_compress(args):
    from tfsuite import api
    from tfsuite.compression.stage import check_method
    from tfsuite.io import display_path
    from tfsuite.tensorflow_process import is_child

    check_method(args.method)  # a misspelt method first: before the run is read
    run = api.load_run(args.run_dir)
    report = run.compress(args.method, args.overrides, source=args.source, quiet=args.quiet)
    if is_child():  # a child's parent prints the report
        return
    print(f"{args.method}: {report['compressed']['file']} in {display_path(report['path'])}")
    print(run.task.format_compression(report))


class Backends:
    """What a task's command needs from the CLI: the run's config, and Keras started on the
    run's backend (or on TensorFlow) before anything imports it."""

    @staticmethod
    def run_config(run_dir, task_name, what, example):
        """The run's config, or a clear error when the run is of another task."""
        from tfsuite.config import read_run_config
        from tfsuite.errors import user_error

        config = read_run_config(run_dir)
        if config.task != task_name:
            raise user_error(what, f"a run of a {task_name} experiment (e.g. {example})",
                             f"{run_dir} (task={config.task})")
        return config

    start = staticmethod(start_backend)
    start_tensorflow = staticmethod(start_tensorflow_backend)


def cmd_launch(args):
    from tfsuite.launch import launch

    command = list(args.worker_command)
    if command[:1] == ["--"]:
        command = command[1:]
    return launch(args.workers, _shorthand(command), build_parser(), backend=args.backend,
                  port=args.port)


def cmd_diagnose(args):
    from tfsuite.config import read_run_config

    start_backend(read_run_config(args.run_dir), args.debug)  # a probe trains on it
    from tfsuite.diagnosis.report import format_report
    from tfsuite.diagnosis.run import diagnose

    print(format_report(diagnose(args.run_dir, probe=args.probe)))


def cmd_lr_find(args):
    from tfsuite.config import load_config
    from tfsuite.errors import user_error

    config = load_config(args.experiment, args.config, args.overrides)
    if not 0 < args.start < args.end:
        raise user_error("The lr-find range is empty", "0 < --start < --end",
                         f"--start {args.start:g} --end {args.end:g}")
    start_backend(config, args.debug)  # before anything imports Keras
    from tfsuite.diagnosis.lr_find import (apply_suggestion, format_result, lr_find,
                                           read_apply_target)

    target = read_apply_target(args.apply) if args.apply else None
    result = lr_find(config, steps=args.steps, start=args.start, end=args.end,
                     out_dir=args.out, quiet=args.quiet)
    applied = None
    if args.apply and result["suggestion"] is not None:
        applied = apply_suggestion(args.apply, target, result["suggestion"])
    print(format_result(result, applied))
    return 0 if result["suggestion"] is not None else 1


def cmd_doctor(args):
    import dataclasses
    import json

    from tfsuite.backends import import_tensorflow_quietly
    from tfsuite.doctor import exit_code, format_checks, run_checks

    if not args.debug:
        try:
            import_tensorflow_quietly()  # its start-up lines are not findings
        except Exception:  # noqa: BLE001 - a broken TensorFlow is reported by the checks
            pass
    checks = run_checks()
    print(json.dumps([dataclasses.asdict(c) for c in checks], indent=1) if args.json
          else format_checks(checks))
    return exit_code(checks)


def cmd_write_digits(args):
    from tfsuite.data.sources import write_digits_folder

    count = write_digits_folder(args.out)
    print(f"Wrote {count} digit images to {args.out} (one folder per class). Train on them "
          f"with: python -m tfsuite.run train image_folder --set data.path={args.out}")


def cmd_config(args):
    import yaml

    from tfsuite.config import load_config

    config = load_config(args.experiment, args.config, args.overrides)
    print(yaml.safe_dump(config.to_dict(), sort_keys=False), end="")


COMMANDS = {"train": cmd_train, "list": cmd_list, "evaluate": cmd_evaluate,
            "export": cmd_export, "compress": cmd_compress,
            "launch": cmd_launch, "diagnose": cmd_diagnose, "lr-find": cmd_lr_find,
            "doctor": cmd_doctor,
            "write-digits": cmd_write_digits,
            "config": cmd_config}


def _shorthand(argv):
    """`run digits ...` and `run --set k=v ...` mean `run train digits ...` / `run train ...`."""
    from tfsuite.config import list_experiments

    if argv and (argv[0] in list_experiments() or argv[0].endswith((".yaml", ".yml"))):
        return ["train", *argv]
    if argv and argv[0] in ("--set", "--config", "--run-dir"):
        return ["train", *argv]
    return argv


_exit_at_once = False  # set by a full disk: see `run_and_exit`


def run_and_exit():
    """`python -m tfsuite.run`: main's exit code. After a full disk the process ends at
    once, without Python's shutdown: h5py, with a half-written file open, crashed in it
    (exit 139). (`main` itself returns, for notebooks and tests that call it.)"""
    code = main()
    if _exit_at_once:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    sys.exit(code)


def main(argv=None):
    from tfsuite import progress

    try:
        return _main(argv)
    finally:
        progress.silence(False)  # a notebook or test calling main again starts with bars


def _main(argv):
    argv = _shorthand(list(sys.argv[1:] if argv is None else argv))
    args = build_parser().parse_args(argv)
    if args.command is None:
        args = build_parser().parse_args(["train", DEFAULT_EXPERIMENT]
                                         + (["--quiet"] if args.quiet else [])
                                         + (["--debug"] if args.debug else []))
    _configure_logging(args.debug)
    from tfsuite import progress

    progress.silence(getattr(args, "quiet", False))
    from tfsuite.errors import DiskFull, UserError, describe_error

    global _exit_at_once
    _exit_at_once = False

    def terminated(signum, frame):  # e.g. launch stopping its workers: run `finally` blocks
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, terminated)

    from tfsuite.api import cli_wording

    try:
        with cli_wording():
            if args.command in COMMANDS:
                code = COMMANDS[args.command](args)
            else:
                code = HANDLERS[args.command](args, Backends)
    except UserError as e:
        if args.debug:
            raise
        print(f"error: {e}", file=sys.stderr)
        _exit_at_once = isinstance(e, DiskFull)
        return e.exit_code
    except (OSError, UnicodeError, RecursionError) as e:
        # What the checks before could not foresee (a file vanished or denied mid-run, a
        # name no encoding takes, a structure too deep): one line, not a traceback.
        if args.debug:
            raise
        print(f"error: {describe_error(e)} Run again with --debug for the traceback; "
              "what was already written is kept.", file=sys.stderr)
        return UserError.exit_code
    except KeyboardInterrupt:
        print("interrupted. Run the same command again: an image run resumes after its last "
              "completed epoch (one stopped during its first epoch starts again); a DQN run "
              "starts again.", file=sys.stderr)
        return 130
    return code or 0


if __name__ == "__main__":
    run_and_exit()
