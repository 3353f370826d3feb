"""Writes data.npz for sweep.py: the translate_numbers corpora (24k and 100k numbers) as
token ids, with 1,000 test numbers held out of both. Run here (CPU, with tfsuite):
`python benchmarks/t5_sweep/prep.py`."""
import os
import sys

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(os.path.dirname(HERE)))
from tfsuite.translation.numbers import number_pool, number_pairs
from tfsuite.translation.corpus import split
from tfsuite.translation.tokenizer import Tokenizer, train_sentencepiece
from tfsuite.translation.data import teacher_forcing
P = "translate English to French: "
out = {}
for n in (24000, 100000):
    s, t = number_pairs(number_pool(n, 999_999, 42))
    sp = split(s, t, 0.0, 1000 / n, 42)
    if n == 24000:
        tok = Tokenizer(train_sentencepiece([P + x for x in sp.train[0]] + sp.train[1], 128, user_symbols=[P.strip()]))
        test = sp.test
    tr = teacher_forcing(tok, [P + x for x in sp.train[0]], sp.train[1], 32, 32)
    out[f"enc{n}"] = tr[0]["encoder_token_ids"].astype(np.uint8)
    out[f"lab{n}"] = tr[1].astype(np.uint8)
te_enc, _ = tok.encode([P + x for x in test[0]], 32)
te_lab, _ = tok.encode(test[1], 32)
test_rows = set(bytes(r.astype(np.uint8)) for r in te_enc)
keep = np.array([bytes(r) not in test_rows for r in out["enc100000"]])
out["enc100000"], out["lab100000"] = out["enc100000"][keep], out["lab100000"][keep]
print("vocab", tok.vocabulary_size, "kept", keep.sum(), "of", len(keep))
np.savez_compressed(os.path.join(HERE, "data.npz"), te_enc=te_enc.astype(np.uint8), te_lab=te_lab.astype(np.uint8), vocab=tok.vocabulary_size, **out)
