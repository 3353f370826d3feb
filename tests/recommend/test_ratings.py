"""Reading MovieLens layouts and CSVs, the per-user time split, the bundled generated
ratings, and the accidental-hits mask."""

import hashlib

import numpy as np
import pytest

from tfsuite.errors import UserError
from tfsuite.recommend.config import RecommendConfig
from tfsuite.recommend.data import build_interactions
from tfsuite.recommend.generate import generate_ratings, write_movielens
from tfsuite.recommend.ratings import default_items_path, read_items, read_ratings

pytestmark = pytest.mark.backend_agnostic

R = RecommendConfig()


def write(path, text, encoding="utf-8"):
    with open(path, "w", encoding=encoding, newline="") as f:
        f.write(text)
    return str(path)


def test_ratings_csv_with_a_bom_crlf_and_unparsable_rows(tmp_path):
    path = write(tmp_path / "ratings.csv", "\ufeffuserId,movieId,rating,timestamp\r\n"
                 "1,10,4.0,100\r\n1,11,2.5,101\r\n\r\n2,10,five,102\r\n2,,3,103\r\n"
                 "2,12,5,104\r\n3,10\r\n")
    r = read_ratings(path, R)
    assert r.users == ["1", "1", "2"] and r.items == ["10", "11", "12"]
    assert r.ratings.tolist() == [4.0, 2.5, 5.0] and r.timestamps.tolist() == [100, 101, 104]
    assert r.skipped_lines == 3
    assert [line for line, _ in r.skipped] == [5, 6, 8]  # file line numbers
    assert "'five' is not a number" in r.skipped[0][1]


def test_movielens_100k_and_1m_layouts_without_header(tmp_path):
    (tmp_path / "ml-100k").mkdir()
    (tmp_path / "ml-1m").mkdir()
    u_data = write(tmp_path / "ml-100k" / "u.data", "196\t242\t3\t881250949\n"
                   "186\t302\t3\t891717742\n")
    write(tmp_path / "ml-100k" / "u.item", "242|Kolya (1996)|24-Jan-1997||http://x|"
          + "|".join("0001000000000000000") + "\n", encoding="latin-1")
    dat = write(tmp_path / "ml-1m" / "ratings.dat", "1::1193::5::978300760\n"
                "1::661::3::978302109\n")
    write(tmp_path / "ml-1m" / "movies.dat", "1193::One Flew Over the Cuckoo's Nest (1975)"
          "::Drama\n")
    r = read_ratings(u_data, R)
    assert r.users == ["196", "186"] and r.ratings.tolist() == [3, 3]
    assert read_items(default_items_path(u_data)) == {"242": ("Kolya (1996)", ["Animation"])}
    r = read_ratings(dat, R)
    assert r.items == ["1193", "661"] and r.timestamps[0] == 978300760
    assert read_items(default_items_path(dat))["1193"][1] == ["Drama"]


def test_any_csv_with_configured_columns_and_no_ratings(tmp_path):
    path = write(tmp_path / "log.csv", "ts;customer;sku\n5;a;x\n6;b;y\n")
    r = read_ratings(path, RecommendConfig(user_column="customer", item_column="sku",
                                           rating_column=None, timestamp_column="ts"))
    assert r.users == ["a", "b"] and r.ratings is None and r.timestamps.tolist() == [5, 6]


@pytest.mark.parametrize("text, fragments", [
    ("user,item,stars\n1,2,4\n", ["lacks a column", "['user', 'item', 'stars']",
                                  "recommend.user_column"]),
    ("userId,movieId,timestamp\n1,2,3\n", ["lacks a column", "missing: ['rating']",
                                          "rating_column"]),
    ("", ["is empty"]),
    ("userId,movieId,rating,timestamp\n", ["no usable row", "a header only"]),
    ("userId,movieId,rating,timestamp\n1,2,x,3\n", ["no usable row", "line 2"]),
])
def test_bad_ratings_files_are_clear_errors(tmp_path, text, fragments):
    path = write(tmp_path / "ratings.csv", text)
    with pytest.raises(UserError) as e:
        read_ratings(path, R)
    for fragment in fragments:
        assert fragment in str(e.value)
    assert "Received:" in str(e.value)


def test_movies_csv_titles_with_commas(tmp_path):
    path = write(tmp_path / "movies.csv", 'movieId,title,genres\n'
                 '11,"American President, The (1995)",Comedy|Drama|Romance\n'
                 '12,Empty (2000),(no genres listed)\n')
    assert read_items(path) == {"11": ("American President, The (1995)",
                                       ["Comedy", "Drama", "Romance"]), "12": ("Empty (2000)", [])}


def test_each_users_latest_ratings_are_held_out(tmp_path):
    # user a: 10 ratings given in shuffled time order; user b: 2 ratings (too few to split)
    times = [5, 1, 9, 3, 7, 0, 8, 2, 6, 4]
    rows = "".join(f"a,i{t},{4 + t % 2},{t}\n" for t in times) + "b,i0,5,0\nb,i1,5,1\n"
    path = write(tmp_path / "r.csv", "userId,movieId,rating,timestamp\n" + rows)
    data = build_interactions(read_ratings(path, R), R, 0.1, 0.2)
    a = data.users == 1
    order = np.argsort(np.array(times))  # rows of user a by time
    assert data.split[a][order].tolist() == [0] * 7 + [1] + [2, 2]
    assert data.split[~a].tolist() == [0, 0]
    assert data.user_ids == ["a", "b"] and data.item_ids[:2] == ["i5", "i1"]
    assert data.positive.tolist() == [4 + t % 2 >= 4 for t in times] + [True, True]


def test_threshold_above_every_rating_is_an_error(tmp_path):
    path = write(tmp_path / "r.csv", "userId,movieId,rating,timestamp\n1,1,3,0\n")
    with pytest.raises(UserError, match="No rating reaches recommend.rating_threshold"):
        build_interactions(read_ratings(path, R), R, 0.1, 0.2)


def test_generated_ratings_are_fixed_and_read_back_as_written(tmp_path):
    """`write-ratings` files and the `generated` source are the same data, every time."""
    from tfsuite.config import load_config
    from tfsuite.recommend.loading import load_ratings

    ratings, movies = generate_ratings()
    digests = []
    for out in (tmp_path / "a", tmp_path / "b"):
        paths = write_movielens(out, *generate_ratings())
        digests.append([hashlib.sha256(open(p, "rb").read()).hexdigest() for p in paths])
    assert digests[0] == digests[1]
    from_file = read_ratings(str(tmp_path / "a" / "ratings.csv"), R)
    generated, items = load_ratings(load_config("ratings_retrieval"))
    assert from_file.users == generated.users and from_file.items == generated.items
    assert np.array_equal(from_file.ratings, generated.ratings)
    assert np.array_equal(from_file.timestamps, generated.timestamps)
    assert read_items(str(tmp_path / "a" / "movies.csv")) == items
    users = np.array([r[0] for r in ratings])
    counts = np.bincount(np.array([r[1] for r in ratings]))
    assert len(set(users.tolist())) == 3000 and len(movies) == 1200
    # popularity skew: the top 5% of movies hold far more than 5% of the ratings
    assert np.sort(counts)[::-1][:60].sum() > 0.2 * len(ratings)


def test_accidental_hits_are_masked():
    """A batch's other row with the same item is not a negative (keras-rs 0.4's
    RemoveAccidentalHits leaves it; see tfsuite.recommend.model)."""
    import keras

    from tfsuite.recommend.model import AccidentalHitsMask

    logits = np.ones((3, 3), np.float32)
    out = keras.ops.convert_to_numpy(AccidentalHitsMask()(logits, np.array([5, 5, 7])))
    assert out[0, 1] < -1e3 and out[1, 0] < -1e3
    assert out[0, 0] == out[1, 1] == out[2, 2] == 1 and out[0, 2] == out[2, 0] == 1


@pytest.mark.parametrize("text, users, items", [
    # a tab inside a quoted title does not make the file tab-separated
    ('1,2,4,5,"A\tB"\n3,4,5,6,"C"\n', ["1", "3"], ["2", "4"]),
    # semicolons with decimal commas, as European spreadsheets write them
    ("userId;movieId;rating;timestamp\n1;2;3,5;100\n", ["1"], ["2"]),
])
def test_the_delimiter_is_the_one_that_splits_every_line_alike(tmp_path, text, users, items):
    path = write(tmp_path / "r.csv", text.replace("3,5;", "3.5;"))
    r = read_ratings(path, R)
    assert r.users == users and r.items == items


def test_utf16_files_and_headerless_implicit_logs(tmp_path):
    path = tmp_path / "r.csv"
    path.write_bytes("userId,movieId,rating,timestamp\n1,2,4,5\n".encode("utf-16"))
    assert read_ratings(str(path), R).items == ["2"]
    path = write(tmp_path / "log.csv", "7,9,100\n8,9,101\n")  # user, item, timestamp
    r = read_ratings(path, RecommendConfig(rating_column=None))
    assert r.users == ["7", "8"] and r.timestamps.tolist() == [100, 101]


def test_an_unclosed_quote_is_an_error_not_a_silent_loss(tmp_path):
    rows = "".join(f"{u},1,4,0\n" for u in range(30))
    path = write(tmp_path / "r.csv", 'userId,movieId,rating,timestamp,comment\n'
                 '1,2,4,5,"Bad title\n' + rows)
    with pytest.raises(UserError, match="unclosed quote") as e:
        read_ratings(path, R)
    assert "line 2" in str(e.value)


def test_every_user_keeps_a_training_rating(tmp_path):
    path = write(tmp_path / "r.csv", "userId,movieId,rating,timestamp\n"
                 + "".join(f"a,i{t},5,{t}\n" for t in range(3)))
    data = build_interactions(read_ratings(path, R), R, 0.1, 0.85)
    assert sorted(data.split.tolist()) == [0, 2, 2]


def test_tower_logits_stay_float32_under_mixed_precision():
    import keras

    from tfsuite.recommend.model import TwoTowerModel

    keras.mixed_precision.set_global_policy("mixed_bfloat16")
    try:
        model = TwoTowerModel(10, 10, embedding_dim=8)
        model.set_probabilities(np.full(11, 0.01))
        ids = np.array([1, 2, 3], np.int32)
        logits = model({"user": ids, "item": ids})
        cosine = keras.ops.sum(model.user_vectors(ids) * model.item_vectors(ids), axis=1)
    finally:
        keras.mixed_precision.set_global_policy("float32")
    assert keras.backend.standardize_dtype(logits.dtype) == "float32"
    # column 0 is each row's positive: cosine / temperature - log(0.01), not rounded to
    # bfloat16 (which would be off by ~0.03)
    expected = keras.ops.convert_to_numpy(cosine) / 0.3 + 4.60517
    assert np.allclose(keras.ops.convert_to_numpy(logits)[:, 0], expected, atol=1e-4)


def test_a_line_too_long_is_named_as_such_not_as_an_unclosed_quote(tmp_path):
    """Before, a 200 MB line was refused as "an unclosed quote" (csv's field limit)."""
    path = write(tmp_path / "r.csv", "userId,movieId,rating,timestamp\n1,2,4,5\n"
                 + "3," + "x" * 2_000_000 + ",4,5\n" + "4,2,4,5\n")
    with pytest.raises(UserError, match="far too long") as e:
        read_ratings(path, R)
    assert "line 3 has 2,000,006 characters" in str(e.value)
