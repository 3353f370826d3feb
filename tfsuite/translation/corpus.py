"""Parallel corpora: reading TSV or paired text files, and seeded train/val/test splits.

The TSV layout is Tatoeba's / ManyThings' (`source<TAB>target[<TAB>attribution...]`,
UTF-8): a byte-order mark is tolerated, blank lines are ignored, and a line
without both a source and a target is skipped and counted, never fatal. Paired
plain-text files (`train.en`, `train.fr`) hold one sentence per line, line N
of one translating line N of the other.
"""

import dataclasses
import os
from typing import List, Tuple

import numpy as np

from tfsuite.errors import user_error

MAX_REPORTED_SKIPS = 20


@dataclasses.dataclass
class Corpus:
    """Sentence pairs read from a file, and what was skipped."""

    sources: List[str]
    targets: List[str]
    skipped_lines: int = 0
    skipped: List[Tuple[int, str]] = dataclasses.field(default_factory=list)  # (line, why)
    path: str = ""

    def __len__(self):
        return len(self.sources)


@dataclasses.dataclass
class Splits:
    """Train/validation/test pairs; each split is (sources, targets)."""

    train: Tuple[List[str], List[str]]
    val: Tuple[List[str], List[str]]
    test: Tuple[List[str], List[str]]


def open_text(path, key, fix=None):
    """The lines of a UTF-8 text file (a BOM dropped, CRLF or LF), or a clear error."""
    if not path or not os.path.isfile(path):
        raise user_error("The file does not exist" if key == "--file" else
                         "The parallel corpus file does not exist", "an existing UTF-8 text "
                         "file", f"{key}={path!r}", fix)
    try:
        # utf-8-sig drops a byte-order mark. Lines end at "\n" only (str.splitlines would
        # also cut at U+2028 or form feeds inside a sentence and shift the line numbers).
        with open(path, encoding="utf-8-sig", newline="") as f:
            lines = [line.removesuffix("\r") for line in f.read().split("\n")]
        return lines[:-1] if lines and lines[-1] == "" else lines
    except UnicodeDecodeError as e:
        raise user_error("The file is not UTF-8 text", "a UTF-8 file", f"{key}={path!r} "
                         f"(byte {e.start}: {e.reason})", "Convert it, e.g. with "
                         "`iconv -f latin1 -t utf-8`.") from None


def _skip(corpus, number, why):
    corpus.skipped_lines += 1
    if len(corpus.skipped) < MAX_REPORTED_SKIPS:
        corpus.skipped.append((number, why))


def read_tsv(path):
    """Reads `source<TAB>target[<TAB>...]` lines; extra columns (attribution) are ignored."""
    corpus = Corpus([], [], path=path)
    lines = open_text(path, "data.path", "Pass it with --set data.path=pairs.tsv "
                      "(source<TAB>target per line).")
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        fields = line.split("\t")
        source = fields[0].strip()
        target = fields[1].strip() if len(fields) > 1 else ""
        if len(fields) < 2:
            _skip(corpus, number, "no tab: expected source<TAB>target")
        elif not source or not target:
            _skip(corpus, number, "empty source or target")
        else:
            corpus.sources.append(source)
            corpus.targets.append(target)
    return _require_pairs(corpus, path, "source<TAB>target lines",
                          "A TSV needs a tab between the source and the target sentence.")


def read_paired_files(source_path, target_path):
    """Reads two files of aligned lines; a pair with an empty side is skipped and counted."""
    sources = open_text(source_path, "data.path")
    targets = open_text(target_path, "translation.target_path", "Pass the target side "
                        "with --set translation.target_path=train.fr.")
    sources, targets = _without_extra_blank_tail(sources, targets)
    if len(sources) != len(targets):
        raise user_error("The paired files have different numbers of lines", "one target "
                         "line for each source line", f"{len(sources)} lines in "
                         f"{source_path}, {len(targets)} in {target_path}", "Check that both "
                         "files come from the same corpus and split.")
    corpus = Corpus([], [], path=source_path)
    for number, (source, target) in enumerate(zip(sources, targets), start=1):
        source, target = source.strip(), target.strip()
        if not source and not target:
            continue  # a blank line in both files
        if not source or not target:
            _skip(corpus, number, "empty source or target")
            continue
        corpus.sources.append(source)
        corpus.targets.append(target)
    return _require_pairs(corpus, source_path, "aligned non-empty lines",
                          "Line N of the target file must translate line N of the source.")


def _without_extra_blank_tail(a, b):
    """Blank lines at the end of only one file (an extra newline) do not misalign them."""
    n = min(len(a), len(b))
    if all(not line.strip() for line in a[n:] + b[n:]):
        return a[:n], b[:n]
    return a, b


def _require_pairs(corpus, path, expected, fix):
    if not corpus.sources:
        first = (f"; line {corpus.skipped[0][0]}: {corpus.skipped[0][1]}"
                 if corpus.skipped else "")
        raise user_error("The corpus has no valid sentence pairs", expected,
                         f"{path} ({corpus.skipped_lines} malformed lines{first})", fix)
    return corpus


def read_corpus(path, target_path=None):
    """A TSV corpus, or paired files when `target_path` is given."""
    if target_path:
        return read_paired_files(path, target_path)
    return read_tsv(path)


def split(sources, targets, validation_split, test_split, seed):
    """Shuffles the pairs with `seed` and cuts them into train/validation/test.

    Duplicate pairs (Tatoeba has some) stay together in one split, so a test
    pair is never also a training pair.
    """
    keys = sorted(set(zip(sources, targets)))
    order = np.random.default_rng(seed).permutation(len(keys))
    # A split asked for holds at least one pair (BLEU of an empty test split is undefined).
    num_test = max(int(test_split > 0), int(round(len(keys) * test_split)))
    num_val = max(int(validation_split > 0), int(round(len(keys) * validation_split)))
    if len(keys) - num_test - num_val < 1:
        raise user_error("The corpus is too small to split", "at least one training pair "
                         "after the validation and test splits", f"{len(keys)} distinct "
                         f"pairs with data.validation_split={validation_split}, "
                         f"data.test_split={test_split}", "Add pairs or lower the splits.")
    part = {}
    for rank, index in enumerate(order):
        part[keys[index]] = 0 if rank < num_test else 1 if rank < num_test + num_val else 2
    chosen = ([], [], [])  # test, val, train: pair lists in corpus order
    for pair in zip(sources, targets):
        chosen[part[pair]].append(pair)

    def columns(pairs):
        return [s for s, _ in pairs], [t for _, t in pairs]

    return Splits(train=columns(chosen[2]), val=columns(chosen[1]), test=columns(chosen[0]))
