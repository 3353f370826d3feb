"""`translate RUN_DIR TEXT ...`: the command the translation task adds to the CLI."""

import sys

from tfsuite.errors import user_error
from tfsuite.task import get_task


def add_translate_command(parser):
    parser.add_argument("run_dir")
    parser.add_argument("texts", nargs="*", metavar="TEXT", help="text to translate "
                        "(the task prefix is added)")
    parser.add_argument("--file", help="translate every line of this UTF-8 file (one "
                        "translation per line on stdout, blank lines kept)")
    parser.add_argument("--sampler", choices=("greedy", "beam"),
                        help="decoding (default: the run's translation.sampler)")
    parser.add_argument("--num-beams", type=int, help="beams for --sampler beam")
    parser.add_argument("--max-length", type=int, help="longest translation in tokens")
    return run_translate


def read_lines(path):
    """The lines of a --file (UTF-8, a BOM tolerated)."""
    from tfsuite.translation.corpus import open_text

    return open_text(path, "--file", "Give a UTF-8 text file, one sentence per line.")


def run_translate(args, backends):
    config = backends.run_config(args.run_dir, "translation", "`translate` needs a "
                                 "translation run", "translate_numbers")
    if args.file and args.texts:
        raise user_error("Give texts or --file, not both", "TEXT ... or --file FILE",
                         f"{len(args.texts)} texts and --file {args.file!r}")
    texts = read_lines(args.file) if args.file else args.texts
    if not texts:
        raise user_error("Nothing to translate", "a text argument or --file FILE",
                         "no text", f'e.g. python -m tfsuite.run translate {args.run_dir} '
                         '"twenty-one"')
    backends.start(config, args.debug)
    translations, truncated = get_task(config).translate(
        args.run_dir, texts, args.sampler, args.num_beams, args.max_length)
    for text, translation in zip(texts, translations):
        print(translation if args.file or args.quiet else f"{text} -> {translation}")
    if truncated:
        print(f"warning: {truncated} input(s) were longer than "
              f"translation.max_source_length={config.translation.max_source_length} "
              "tokens and were cut.", file=sys.stderr)
