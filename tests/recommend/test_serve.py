"""Top k for heavy raters and small catalogues: `recommend` and the SavedModel agree and
never return an item the user rated (TensorFlow: the SavedModel is built here)."""

import numpy as np
import pytest

from tfsuite.recommend.config import RecommendConfig
from tfsuite.recommend.data import build_interactions
from tfsuite.recommend.model import build_model
from tfsuite.recommend.ratings import read_ratings
from tfsuite.recommend.serve import Recommender, build_index


@pytest.mark.parametrize("kind", ["two_tower", "ranking"])
def test_heavy_raters_get_only_unrated_items(tmp_path, kind):
    import tensorflow as tf

    from tfsuite.recommend.export import _check, serving_module

    # 13 movies; u1 rated 12 of them, u2 two, u3 five
    rows = [("u1", f"m{i}") for i in range(12)] + [("u2", "m0"), ("u2", "m1")] + [
        ("u3", f"m{i}") for i in range(8, 13)]
    path = tmp_path / "ratings.csv"
    path.write_text("userId,movieId,rating,timestamp\n"
                    + "".join(f"{u},{m},5,{t}\n" for t, (u, m) in enumerate(rows)))
    r = RecommendConfig(model=kind)
    data = build_interactions(read_ratings(str(path), r), r, 0.0, 0.2)
    model = build_model(r, data)
    ids = np.ones(2, np.int32)
    model({"user": ids, "item": ids})
    index = build_index(data)
    recommender = Recommender(model, index, k=10)
    out = {u: (known, [index.item_ids[i - 1] for i, _ in top])
           for u, known, top in recommender.recommend(["u1", "u2", "nobody"])}
    assert out["u1"] == (True, ["m12"])  # the one movie u1 has not rated
    assert out["u2"][0] and len(out["u2"][1]) == 10 and not {"m0", "m1"} & set(out["u2"][1])
    assert out["nobody"][0] is False and len(out["nobody"][1]) == 10

    module, concrete = serving_module(model, index, 10)
    tf.saved_model.save(module, str(tmp_path / "sm"), signatures={"serving_default": concrete})
    agreement, signature = _check(str(tmp_path / "sm"), recommender, ["u1", "u2", "nobody"], 10)
    assert agreement == 1.0
    got = signature(user_id=tf.constant(["u1"]))
    assert got["item_ids"].numpy()[0].astype(str).tolist() == ["m12"] + [""] * 9
    assert got["scores"].numpy()[0, 1:].tolist() == [0.0] * 9
