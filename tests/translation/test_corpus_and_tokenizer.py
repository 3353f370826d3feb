"""Parallel corpora as users have them, the numbers corpus, the SentencePiece tokenizer
and the BLEU/exact-match scores: real files, real SentencePiece, real sacrebleu."""

import numpy as np
import pytest

from tfsuite.errors import UserError
from tfsuite.translation import corpus
from tfsuite.translation.metrics import score
from tfsuite.translation.numbers import number_pairs, number_pool
from tfsuite.translation.tokenizer import EOS_ID, PAD_ID, Tokenizer, train_sentencepiece

pytestmark = pytest.mark.backend_agnostic  # also run with KERAS_BACKEND=jax (README)

TATOEBA = ("\ufeffGo.\tVa !\tCC-BY 2.0 (France) Attribution: tatoeba.org #2877272 (CM)\r\n"
           "Hi.\tSalut !\tCC-BY 2.0 (France) Attribution: tatoeba.org #538123 (CM)\r\n"
           "\r\n"
           "this line has no tab\r\n"
           "Run!\tCours !\r\n"
           "\tmissing source\r\n"
           "Wait!\tAttendez !\r\n")


def test_tatoeba_tsv_with_bom_attribution_blank_and_malformed_lines(tmp_path):
    path = tmp_path / "fra.txt"
    path.write_bytes(TATOEBA.encode("utf-8"))
    pairs = corpus.read_tsv(str(path))
    # The BOM is not part of the first sentence; attribution columns are dropped.
    assert pairs.sources == ["Go.", "Hi.", "Run!", "Wait!"]
    assert pairs.targets == ["Va !", "Salut !", "Cours !", "Attendez !"]
    assert pairs.skipped_lines == 2  # the blank line is ignored, not counted
    assert [line for line, _ in pairs.skipped] == [4, 6]


def test_paired_files(tmp_path):
    (tmp_path / "train.en").write_text("one\ntwo\n\nthree\n", encoding="utf-8")
    (tmp_path / "train.fr").write_text("un\ndeux\n\n\n", encoding="utf-8")
    pairs = corpus.read_corpus(str(tmp_path / "train.en"), str(tmp_path / "train.fr"))
    assert list(zip(pairs.sources, pairs.targets)) == [("one", "un"), ("two", "deux")]
    assert pairs.skipped_lines == 1  # "three" has no translation
    (tmp_path / "short.fr").write_text("un\n", encoding="utf-8")
    with pytest.raises(UserError, match="different numbers of lines.*4 lines"):
        corpus.read_paired_files(str(tmp_path / "train.en"), str(tmp_path / "short.fr"))


@pytest.mark.parametrize("content, fragment", [
    (None, "does not exist"),
    ("no tabs here\nnor here\n", "no valid sentence pairs"),
    ("\n\n", "no valid sentence pairs"),
    (b"caf\xe9\tcaf\xe9\n", "not UTF-8"),
])
def test_bad_corpora_are_clear_errors(tmp_path, content, fragment):
    path = tmp_path / "pairs.tsv"
    if isinstance(content, bytes):
        path.write_bytes(content)
    elif content is not None:
        path.write_text(content, encoding="utf-8")
    with pytest.raises(UserError, match=fragment) as error:
        corpus.read_tsv(str(path))
    assert "Received:" in str(error.value)


def test_split_is_seeded_disjoint_and_keeps_duplicates_together():
    sources = [f"s{i % 150}" for i in range(200)]  # 50 pairs appear twice
    targets = [f"t{i % 150}" for i in range(200)]
    first = corpus.split(sources, targets, 0.1, 0.2, seed=3)
    again = corpus.split(sources, targets, 0.1, 0.2, seed=3)
    other = corpus.split(sources, targets, 0.1, 0.2, seed=4)
    assert first == again and first.test != other.test
    train, val, test = (set(zip(*part)) for part in (first.train, first.val, first.test))
    assert not (train & test) and not (train & val) and not (val & test)
    assert len(test) == 30 and len(val) == 15 and len(train) == 105
    assert len(first.train[0]) + len(first.val[0]) + len(first.test[0]) == 200


def test_numbers_corpus_matches_num2words_and_holds_out_test_numbers():
    sources, targets = number_pairs([21, 71, 80, 1234])
    assert sources[3] == "one thousand, two hundred and thirty-four"
    assert targets == ["vingt et un", "soixante et onze", "quatre-vingts",
                       "mille deux cent trente-quatre"]
    pool = number_pool(3000, 999_999, seed=0)
    assert len(set(pool)) == 3000 and set(range(1000)) <= set(pool) and max(pool) < 10 ** 6
    assert pool == number_pool(3000, 999_999, seed=0)
    sources, targets = number_pairs(pool)
    parts = corpus.split(sources, targets, 0.05, 0.1, seed=0)
    assert not set(parts.test[0]) & set(parts.train[0])  # each number appears once
    with pytest.raises(UserError, match="Not enough distinct numbers"):
        number_pool(101, 99, seed=0)


@pytest.fixture(scope="module")
def number_tokenizer():
    sources, targets = number_pairs(number_pool(2000, 999_999, seed=1))
    prefix = "translate English to French: "
    proto = train_sentencepiece([prefix + s for s in sources] + targets, 128,
                                user_symbols=[prefix.strip()])
    return Tokenizer(proto), prefix


def test_tokenizer_uses_t5_ids_and_round_trips(number_tokenizer):
    tokenizer, prefix = number_tokenizer
    sp = tokenizer.processor
    assert (sp.piece_to_id("<pad>"), sp.piece_to_id("</s>"), sp.piece_to_id("<unk>")) == (0, 1, 2)
    assert 60 < tokenizer.vocabulary_size <= 128  # a soft cap: the corpus has ~110 pieces
    texts = [prefix + "seven hundred and seventy-seven", "quatre-vingt-dix-neuf mille"]
    ids, truncated = tokenizer.encode(texts, 32)
    assert ids.shape == (2, 32) and ids.dtype == np.int32 and truncated == 0
    # The prefix is one piece.
    assert sp.id_to_piece(int(ids[0, 0])) == "\u2581" + prefix.strip().replace(" ", "\u2581")
    assert sp.encode(prefix + "one", out_type=str)[1:] == ["\u2581one"]
    for row in ids:
        end = list(row).index(EOS_ID)
        assert (row[end + 1:] == PAD_ID).all() and (row[:end] > 2).all()
    assert tokenizer.decode(ids) == texts
    cut, truncated = tokenizer.encode([texts[0]], 4)
    assert truncated == 1 and cut[0, -1] == EOS_ID


def test_keras_hub_t5_tokenizer_reads_the_same_model(number_tokenizer):
    import keras_hub

    tokenizer, prefix = number_tokenizer
    hub = keras_hub.models.T5Tokenizer(proto=tokenizer.proto)
    text = "deux cent trente-quatre"
    ids, _ = tokenizer.encode([text], 16)
    hub_ids = [int(t) for t in np.asarray(hub(text))]
    assert hub_ids == list(ids[0, :len(hub_ids)])
    assert hub.pad_token_id == PAD_ID and hub.end_token_id == EOS_ID


def test_scores():
    refs = ["mille deux cent trente-quatre", "vingt et un", "deux cents", "cent un"]
    perfect = score(refs, refs)
    assert perfect["bleu"] == 100.0 and perfect["exact_match"] == 1.0
    assert perfect["chrf"] == 100.0 and "tok:13a" in perfect["bleu_signature"]
    one_wrong = score([refs[0], "vingt et deux", refs[2], refs[3]], refs)
    assert one_wrong["exact_match"] == 0.75 and 50 < one_wrong["bleu"] < 100


def test_small_splits_hold_a_pair_and_paired_files_tolerate_a_trailing_newline(tmp_path):
    parts = corpus.split([f"s{i}" for i in range(10)], [f"t{i}" for i in range(10)],
                         0.05, 0.05, seed=0)
    assert len(parts.test[0]) == 1 and len(parts.val[0]) == 1 and len(parts.train[0]) == 8
    (tmp_path / "a.en").write_text("one\ntwo\n", encoding="utf-8")
    (tmp_path / "a.fr").write_text("un\ndeux\n\n\n", encoding="utf-8")
    pairs = corpus.read_paired_files(str(tmp_path / "a.en"), str(tmp_path / "a.fr"))
    assert pairs.targets == ["un", "deux"] and pairs.skipped_lines == 0
    # Only a newline ends a line: U+2028 inside a sentence does not shift the numbering.
    (tmp_path / "b.tsv").write_text("a\u2028b\tx\nno tab\n", encoding="utf-8")
    pairs = corpus.read_tsv(str(tmp_path / "b.tsv"))
    assert pairs.sources == ["a\u2028b"] and pairs.skipped == [(2, pairs.skipped[0][1])]


def test_a_vocabulary_smaller_than_the_alphabet_is_a_clear_error():
    sources, targets = number_pairs(range(300))
    with pytest.raises(UserError, match="Raise translation.vocab_size"):
        train_sentencepiece(sources + targets, 16)


def test_references_are_scored_as_the_tokenizer_normalizes_them(number_tokenizer):
    tokenizer, _ = number_tokenizer
    # NFKC, as SentencePiece normalizes: a no-break space becomes a space.
    assert tokenizer.normalize(["vingt\u00a0et  un"]) == ["vingt et un"]
    assert score(["vingt et un"], ["vingt\u00a0et un"], tokenizer)["exact_match"] == 1.0
