"""Text corpora: documents read from a text file, a folder of them, or JSONL; the bundled
King James Bible; and the held-out split by document.

A text file holds documents separated by blank lines (paragraphs of a book, chapters of
the bundled corpus); a JSONL file holds one document per line in its `text` field; a
folder holds such files (`.txt`, `.md`, `.jsonl`), read in sorted order. Every file
must be UTF-8: a file that is not is named with the line where decoding failed.
"""

import dataclasses
import json
import os
from typing import List

import numpy as np

from tfsuite.errors import user_error

TEXT_SUFFIXES = (".txt", ".text", ".md")
JSONL_SUFFIXES = (".jsonl", ".json")
# The bundled corpus: the King James Bible (1769 text, public domain) that the PyPI
# package `purebible` ships as purebible/data/SW1769Bible_both.txt.
BUNDLED_PACKAGE, BUNDLED_FILE = "purebible", "data/SW1769Bible_both.txt"


@dataclasses.dataclass
class Corpus:
    """Documents and where they came from."""

    documents: List[str]
    path: str
    files: int = 1
    skipped_records: int = 0  # JSONL lines without a non-empty `text` string

    @property
    def characters(self):
        return sum(len(d) for d in self.documents)


def _decode(path, raw):
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        line = raw[:e.start].count(b"\n") + 1
        raise user_error("A corpus file is not UTF-8 text", "UTF-8 text files",
                         f"{path} (line {line}, byte {e.start}: {e.reason})",
                         "Convert it, e.g. with `iconv -f latin1 -t utf-8 FILE > FILE.utf8`, "
                         "or move it out of the corpus.") from None


def _paragraphs(text):
    """Documents of a text file: blocks separated by blank lines, whitespace kept inside."""
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    blocks = [b.strip("\n") for b in text.split("\n\n")]
    return [b for b in blocks if b.strip()]


def _jsonl(path, text, corpus):
    documents = []
    # "\n" only: str.splitlines would also cut at U+2028 inside a JSON string.
    for number, line in enumerate(text.split("\n"), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as e:
            raise user_error("A JSONL corpus line is not JSON", 'one JSON object per line, '
                             'e.g. {"text": "..."}', f"{path} line {number} ({e.msg})") from None
        value = record.get("text") if isinstance(record, dict) else None
        if isinstance(value, str) and value.strip():
            documents.append(value)
        else:
            corpus.skipped_records += 1
    return documents


def _read_file(path, corpus):
    with open(path, "rb") as f:
        text = _decode(path, f.read())
    if path.lower().endswith(JSONL_SUFFIXES):
        return _jsonl(path, text, corpus)
    return _paragraphs(text)


def read_corpus(path):
    """A `Corpus` from `data.path`; refuses a missing path, a non-UTF-8 file and a corpus
    without text, before anything is written."""
    if not path or not os.path.exists(path):
        raise user_error("The corpus does not exist", "a UTF-8 text file, a JSONL file with "
                         "a `text` field, or a folder of them", f"data.path={path!r}",
                         "Write the bundled corpus with `python -m tfsuite.run write-corpus "
                         "corpus/` and pass --set data.path=corpus/kjv.txt.")
    corpus = Corpus([], path)
    if os.path.isdir(path):
        files = sorted(os.path.join(root, name) for root, dirs, names in os.walk(path)
                       for name in names
                       if name.lower().endswith(TEXT_SUFFIXES + JSONL_SUFFIXES)
                       and not name.startswith("."))
        corpus.files = len(files)
    else:
        files = [path]
    for file in files:
        corpus.documents += _read_file(file, corpus)
    if not corpus.documents:
        found = (f"{len(files)} text files and no text" if os.path.isdir(path) else
                 "an empty file" if not os.path.getsize(path) else "no document with text")
        raise user_error("The corpus has no text", "at least one document (non-blank text; "
                         "JSONL: a non-empty `text` field)", f"data.path={path!r} ({found})",
                         "Point data.path at your text, or write the bundled corpus with "
                         "`python -m tfsuite.run write-corpus corpus/`.")
    return corpus


def split_documents(documents, validation_split, test_split, seed):
    """(train, validation, test) document lists: a seeded shuffle of whole documents, so a
    held-out document is never trained on; each asked-for split gets at least one."""
    order = np.random.default_rng(seed).permutation(len(documents))
    num_test = max(int(test_split > 0), int(round(len(documents) * test_split)))
    num_val = max(int(validation_split > 0), int(round(len(documents) * validation_split)))
    if len(documents) - num_test - num_val < 1:
        raise user_error("The corpus is too small to split", "at least one training "
                         "document after the validation and test documents",
                         f"{len(documents)} documents with data.validation_split="
                         f"{validation_split}, data.test_split={test_split}",
                         "Add text, separate documents with blank lines, or lower the "
                         "splits.")
    picked = [sorted(order[:num_test]), sorted(order[num_test:num_test + num_val]),
              sorted(order[num_test + num_val:])]
    test, val, train = ([documents[i] for i in part] for part in picked)
    return train, val, test


# ---------------------------------------------------------------- the bundled corpus


def bundled_text():
    """The King James Bible as documents (one per chapter, one verse per line)."""
    from importlib import resources

    from tfsuite.errors import require_module
    from tfsuite.packages import install_hint

    require_module(BUNDLED_PACKAGE, "The bundled corpus", install_hint("language_model"))
    raw = resources.files(BUNDLED_PACKAGE).joinpath(BUNDLED_FILE).read_text("utf-8")
    chapters = {}
    # Each verse: a "$$$Book.C.V" line, then the verse twice between @...@: plain text
    # first, then with the translators' italics marked up. The plain one is kept.
    for block in raw.split("$$$")[1:]:
        reference, _, rest = block.partition("\n")
        book, chapter, _ = reference.strip().rsplit(".", 2)
        parts = rest.split("@")
        verse = " ".join(parts[1].replace("\u00b6", " ").split()) if len(parts) > 1 else ""
        if verse:
            chapters.setdefault((book, chapter), []).append(verse)
    return ["\n".join(verses) for verses in chapters.values()]


def write_bundled_corpus(folder):
    """Writes `folder/kjv.txt` (chapters separated by blank lines); refuses to overwrite.
    Returns (path, documents, characters)."""
    path = os.path.join(folder, "kjv.txt")
    if os.path.exists(path):
        raise user_error("The corpus file already exists", "a folder without kjv.txt",
                         f"{path}", "Remove it or pick another folder.")
    documents = bundled_text()
    os.makedirs(folder, exist_ok=True)
    tmp = path + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        f.write("\n\n".join(documents) + "\n")
    os.replace(tmp, path)
    return path, len(documents), sum(len(d) for d in documents)
