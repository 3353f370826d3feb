import os

import pytest
import yaml

from tfsuite.config import (ExperimentConfig, config_from_dict, list_experiments, load_config,
                            parse_override, read_run_config, write_config)
from tfsuite.errors import UserError

pytestmark = pytest.mark.backend_agnostic  # also run with KERAS_BACKEND=jax (README)


def test_shipped_experiments_all_load():
    experiments = list_experiments()
    assert {"digits", "digits_mlp", "image_folder", "image_folder_transfer",
            "resnet50"} <= set(experiments)
    for name, description in experiments.items():
        assert description, name
        if name in ("image_folder", "image_folder_transfer", "resnet50"):  # need a data path
            config = load_config(name, overrides=["data.source=synthetic"])
        elif name in ("translation", "movielens"):  # a corpus / ratings file from the user
            config = load_config(name, overrides=["data.path=data.tsv"])
        else:
            config = load_config(name)
        assert isinstance(config, ExperimentConfig) and config.name == name


def test_translation_keys_are_checked():
    with pytest.raises(UserError, match="data.source.*numbers"):
        load_config("translate_numbers", overrides=["data.source=digits"])
    with pytest.raises(UserError, match="data.source.*digits"):
        load_config("digits", overrides=["data.source=numbers"])
    with pytest.raises(UserError, match="translation.size"):
        load_config("translate_numbers", overrides=["translation.size=huge"])
    with pytest.raises(UserError, match="compress.methods.*quantize"):
        load_config("translate_numbers", overrides=["compress.methods=[prune]"])
    with pytest.raises(UserError, match="num_pairs"):
        load_config("translate_numbers", overrides=["translation.max_number=99",
                                                    "translation.num_pairs=500"])


def test_overrides_are_yaml_and_nested():
    config = load_config("digits", overrides=["data.image_size=[32, 24]", "train.epochs=3",
                                              "data.augment.horizontal_flip=true",
                                              "train.clipnorm=1", "model.weights=null",
                                              "train.learning_rate=3e-4"])
    assert config.train.learning_rate == pytest.approx(3e-4)  # YAML 1.1 reads 3e-4 as text
    assert config.data.image_size == [32, 24]
    assert config.train.epochs == 3
    assert config.data.augment.horizontal_flip is True
    assert config.train.clipnorm == 1.0 and isinstance(config.train.clipnorm, float)
    assert parse_override("a.b.c=[1,2]") == {"a": {"b": {"c": [1, 2]}}}


def test_unknown_key_lists_valid_keys_and_suggests():
    with pytest.raises(UserError) as e:
        load_config("digits", overrides=["train.epoch=3"])
    message = str(e.value)
    assert "train.epochs" in message and "train.batch_size" in message
    assert "Did you mean `train.epochs`" in message and "Received: train.epoch=3" in message


@pytest.mark.parametrize("override, fragment", [
    ("train.epochs=abc", "Expected int"),
    ("train.epochs=2.5", "Expected int"),
    ("train.epochs=0", "train.epochs"),
    ("data.augment.horizontal_flip=3", "Expected bool"),
    ("model.name=vgg16", "one of ['mlp', 'cnn', 'resnet', 'resnet50', 'efficientnetv2b0'"),
    ("data.image_size=[32]", "data.image_size"),
    ("data.validation_split=0.85", "data.test_split"),
    ("data.augment.zoom_range=[1.2, 0.8]", "zoom_range"),
    ("data.augment.fill_mode=mirror", "fill_mode"),
    ("runtime.precision=fp16", "runtime.precision"),
    ("model.weights=/no/such/file.h5", "model.weights"),
    ("train", "Malformed override"),
    ("train.gradient_accumulation_steps=1", "null or an int >= 2"),
    ("model.dropout=1.5", "model.dropout"),
    ("train.monitor=val_acc", "train.monitor"),
    ("data.augment.width_shift_range=-0.1", "a value >= 0"),
    ("data.augment.cval=300", "data.augment.cval"),
    ("train.learning_rate=.inf", "a finite value > 0"),
    ("name=../escape", "name"),
])
def test_bad_values_raise_clear_errors(override, fragment):
    with pytest.raises(UserError) as e:
        load_config("digits", overrides=[override])
    assert fragment in str(e.value)
    assert "Received:" in str(e.value) or "Malformed" in str(e.value)


def test_unknown_experiment_suggests_close_name():
    with pytest.raises(UserError, match="Did you mean 'digits'"):
        load_config("digit")


def test_a_run_needs_a_validation_or_test_split():
    with pytest.raises(UserError, match="a validation or test split above 0"):
        load_config("digits", overrides=["data.test_split=0", "data.validation_split=0"])
    assert load_config("digits", overrides=["data.test_split=0"]).data.test_split == 0


def test_data_path_becomes_absolute(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    config = load_config("image_folder", overrides=["data.path=my_images"])
    assert config.data.path == os.path.join(str(tmp_path), "my_images")


def test_folder_source_requires_path():
    with pytest.raises(UserError, match="data.path"):
        load_config("image_folder")


def test_config_file_then_overrides(tmp_path):
    path = tmp_path / "mine.yaml"
    path.write_text(yaml.safe_dump({"train": {"epochs": 7, "batch_size": 16}}))
    config = load_config("digits", config_file=str(path), overrides=["train.epochs=9"])
    assert (config.train.epochs, config.train.batch_size) == (9, 16)
    with pytest.raises(UserError, match="not found"):
        load_config("digits", config_file=str(tmp_path / "missing.yaml"))
    bad = tmp_path / "bad.yaml"
    bad.write_text("train: [unclosed")
    with pytest.raises(UserError, match="not valid YAML"):
        load_config("digits", config_file=str(bad))


def test_written_config_round_trips(tmp_path):
    config = load_config("digits_mlp", overrides=["train.epochs=2"])
    write_config(config, os.path.join(tmp_path, "config.yaml"))
    again = read_run_config(str(tmp_path))
    assert again == config
    assert config_from_dict(config.to_dict()) == config
    with pytest.raises(UserError, match="Not a tfsuite run directory"):
        read_run_config(str(tmp_path / "nowhere"))


def test_config_is_frozen():
    config = load_config("digits")
    with pytest.raises(Exception):
        config.train = None


def test_two_of_four_is_text_not_a_base_60_number():
    """YAML 1.1 reads 2:4 as 124 (base 60); tfsuite's YAML does not."""
    config = load_config("digits", overrides=["compress.pruning_structure=2:4",
                                              "train.epochs=124"])
    assert config.compress.pruning_structure == "2:4" and config.train.epochs == 124


def test_a_run_config_holds_its_own_task_section_only():
    """Only the chosen task's section is in a config; another task's key is refused."""
    image, dqn = load_config("digits_mlp"), load_config("cartpole_dqn")
    assert not {"rl", "translation", "recommend"} & set(image.to_dict())
    assert "rl" in dqn.to_dict() and dqn.rl.total_steps == 50_000
    assert len(yaml.safe_dump(image.to_dict()).splitlines()) < 130
    with pytest.raises(UserError, match=r"`rl.total_steps` belongs to another task.*"
                                        r"Received: rl.total_steps=5 for task=image_class"):
        load_config("digits", overrides=["rl.total_steps=5"])


def test_run_folders_of_older_versions_with_every_section_still_load(tmp_path):
    """Before sections were per task, every config.yaml held all of them."""
    from tfsuite.recommend.config import RecommendConfig
    from tfsuite.rl.config import DQNConfig
    from tfsuite.translation.config import TranslationConfig

    raw = load_config("digits_mlp").to_dict()
    raw.update(rl=DQNConfig().__dict__, translation=TranslationConfig().__dict__,
               recommend=RecommendConfig().__dict__)
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(raw))
    assert read_run_config(str(tmp_path)) == load_config("digits_mlp")


def test_replace_validates_and_types_are_checked_on_every_construction():
    import dataclasses

    config = load_config("digits")
    assert config.replace(train={"epochs": 3}).train.epochs == 3
    assert config.replace(train={"epochs": 3}).train.batch_size == config.train.batch_size
    with pytest.raises(UserError, match="Expected an int >= 1. Received: train.epochs=0"):
        config.replace(train={"epochs": 0})
    with pytest.raises(UserError, match="belongs to another task"):
        config.replace(rl={"total_steps": 3})
    # dataclasses.replace skips validate(), but a wrong type still fails with the key's name.
    with pytest.raises(UserError, match="Wrong type for config key `train.epochs`"):
        dataclasses.replace(config, train=dataclasses.replace(config.train, epochs="3"))


def test_keys_the_run_will_not_read_draw_a_warning(caplog):
    load_config("digits_mlp", overrides=["model.width=8", "data.path=/tmp"])
    load_config("cartpole_dqn", overrides=["train.epochs=3"])
    load_config("digits", overrides=["train.remat=true", "train.optimizer_state=bfloat16"])
    with pytest.raises(UserError, match="one of .*Received: runtime.precision='bfloat16'"):
        load_config("digits", overrides=["runtime.precision=bfloat16"])  # language_model's
    warned = "\n".join(r.getMessage() for r in caplog.records)
    assert "`train.remat` is ignored (rematerialization is built for the decoders of task " \
        "language_model)" in warned
    assert "`train.optimizer_state` is ignored (the optimizer state's dtype applies to " \
        "bfloat16 weights" in warned
    assert "`model.width` is ignored" in warned and "model.name=mlp" in warned
    assert "`data.path` is ignored" in warned and "data.source=digits" in warned
    assert "`train.epochs` is ignored (DQN reads `rl.*` instead)" in warned
    caplog.clear()
    load_config("digits")  # the shipped experiments set nothing they ignore
    assert not caplog.records
