"""`translation.preset`: a KerasHub preset folder is fine-tuned with its own tokenizer;
a preset name that is not on this machine is a clear error, and nothing is downloaded."""

import json
import os

from tests.conftest import assert_user_error, call_cli, run_cli
from tests.translation.test_cli import write_tatoeba_file


def _write_preset(folder, corpus_path):
    """A real KerasHub T5 preset (config, weights, tokenizer), written by KerasHub itself."""
    import keras_hub

    from tfsuite.translation.corpus import read_tsv
    from tfsuite.translation.tokenizer import train_sentencepiece

    pairs = read_tsv(corpus_path)
    proto = train_sentencepiece(pairs.sources + pairs.targets, 150)
    tokenizer = keras_hub.models.T5Tokenizer(proto=proto)
    backbone = keras_hub.models.T5Backbone(
        vocabulary_size=tokenizer.vocabulary_size(), num_layers=1, num_heads=2,
        hidden_dim=32, intermediate_dim=64, dropout=0.0, tie_embedding_weights=False)
    backbone.save_to_preset(folder)
    tokenizer.save_to_preset(folder)
    return backbone.count_params(), proto


def test_local_preset_folder_is_fine_tuned_with_its_tokenizer(tmp_path):
    corpus = write_tatoeba_file(str(tmp_path / "fra.txt"), count=120)
    params, proto = _write_preset(str(tmp_path / "my_t5"), corpus)
    result = run_cli("train", "translation", "--set", f"data.path={corpus}",
                     "--set", f"translation.preset={tmp_path / 'my_t5'}",
                     "--set", "train.epochs=1", "--set", "translation.max_target_length=16",
                     cwd=str(tmp_path))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "T5 preset" in result.stdout
    run_dir = tmp_path / "runs" / "translation"
    with open(run_dir / "summary.json") as f:
        summary = json.load(f)
    assert summary["model"]["num_params"] == params  # the preset's network, not `tiny`
    assert (run_dir / "tokenizer.model").read_bytes() == proto  # and its tokenizer


def test_preset_missing_from_this_machine_is_a_clear_error(tmp_path):
    corpus = write_tatoeba_file(str(tmp_path / "fra.txt"), count=50)
    result = call_cli("train", "translation", "--set", f"data.path={corpus}",
                     "--set", "translation.preset=t5_small_multi", cwd=str(tmp_path),
                     env={"KAGGLEHUB_CACHE": str(tmp_path / "empty_cache")})
    assert_user_error(result, "is not on this machine", "t5_small_multi",
                       "from_preset('t5_small_multi')")
    assert not os.path.exists(tmp_path / "runs")
    assert_user_error(call_cli("train", "translation", "--set", f"data.path={corpus}",
                               "--set", f"translation.preset={tmp_path}", cwd=str(tmp_path)),
                       "Not a KerasHub preset folder")
