"""The commands the language_model task adds: `generate RUN_DIR PROMPT ...` and
`write-corpus FOLDER`."""

from tfsuite.language_model.config import SAMPLERS
from tfsuite.task import get_task


def add_generate_command(parser):
    parser.add_argument("run_dir")
    parser.add_argument("prompts", nargs="+", metavar="PROMPT", help="text to continue")
    parser.add_argument("--max-new-tokens", type=int, help="tokens generated after each "
                        "prompt (default: the run's language_model.max_new_tokens)")
    parser.add_argument("--sampler", choices=SAMPLERS, help="default: the run's "
                        "language_model.sampler")
    parser.add_argument("--temperature", type=float, help="softens (> 1) or sharpens (< 1) "
                        "top_k and top_p sampling")
    return run_generate


def run_generate(args, backends):
    config = backends.run_config(args.run_dir, "language_model", "`generate` needs a "
                                 "language model run", "language_model")
    backends.start(config, args.debug)
    texts = get_task(config).generate(args.run_dir, args.prompts, args.max_new_tokens,
                                      args.sampler, args.temperature)
    for text in texts:
        print(text if args.quiet or len(texts) == 1 else f"{text}\n")


def add_write_corpus_command(parser):
    parser.add_argument("folder", nargs="?", default="corpus",
                        help="where kjv.txt is written (default: corpus/)")
    return run_write_corpus


def run_write_corpus(args, backends):
    from tfsuite.io import display_path
    from tfsuite.language_model.corpus import write_bundled_corpus

    path, documents, characters = write_bundled_corpus(args.folder)
    print(f"Wrote {display_path(path)}: the King James Bible (1769 text, public domain, from "
          f"the purebible package), {documents:,} chapters separated by blank lines, "
          f"{characters:,} characters.")
    print(f"  train on it: python -m tfsuite.run train language_model --set data.source=text "
          f"--set data.path={display_path(path)}")
