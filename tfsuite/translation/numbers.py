"""The bundled offline corpus of `translate_numbers`: English number words to French
(or between other languages num2words writes: `translation.source_language`, ...).

Both sides come from `num2words` ("one thousand, two hundred and thirty-four"
-> "mille deux cent trente-quatre"). Every number from 0 to 999 is in the pool
(given at least 1,000 pairs), the rest are drawn evenly per digit count up to
`max_number`, so each
magnitude is seen as often as its grammar needs. Each number appears once, so
the seeded split (`corpus.split`) holds the test numbers out of training.
"""

import os
import random

from tfsuite.errors import require_module, user_error
from tfsuite.translation.tokenizer import INSTALL


def _num2words():
    return require_module("num2words", "The numbers corpus", INSTALL).num2words


def number_pool(num_pairs, max_number, seed):
    """`num_pairs` distinct numbers in [0, max_number], in a seeded order."""
    if num_pairs > max_number + 1:
        raise user_error("Not enough distinct numbers", f"translation.num_pairs <= "
                         f"translation.max_number + 1 = {max_number + 1}",
                         f"translation.num_pairs={num_pairs}")
    rng = random.Random(seed)
    small = range(min(1000, max_number + 1))
    pool = set(small) if num_pairs >= len(small) else set(rng.sample(small, num_pairs))
    digits = range(4, len(str(max_number)) + 1)
    while len(pool) < num_pairs:
        d = rng.choice(digits)
        pool.add(rng.randint(10 ** (d - 1), min(10 ** d - 1, max_number)))
    pool = sorted(pool)
    rng.shuffle(pool)
    return pool


def number_pairs(numbers, source_lang="en", target_lang="fr"):
    """(source words, target words) for each number, in num2words' language codes."""
    num2words = _num2words()
    return ([num2words(n, lang=source_lang) for n in numbers],
            [num2words(n, lang=target_lang) for n in numbers])


def write_tsv(path, sources, targets):
    """Writes pairs as a Tatoeba-layout TSV (what `train translation` reads)."""
    tmp = path + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        for source, target in zip(sources, targets):
            f.write(f"{source}\t{target}\n")
    os.replace(tmp, path)
