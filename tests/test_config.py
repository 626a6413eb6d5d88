"""NRIConfig: validation, JSON round trip, and the command-line flags derived from it."""

import argparse

import pytest

from nri_tf.config import (ConfigError, NRIConfig, add_config_arguments, build_config,
                           config_overrides, reference_prior)


def parse(*argv):
    parser = argparse.ArgumentParser()
    add_config_arguments(parser)
    return parser.parse_args(list(argv))


def test_defaults_are_the_papers():
    config = NRIConfig()
    assert (config.encoder_hidden, config.decoder_hidden, config.batch_size) == (256, 256, 128)
    assert (config.lr, config.lr_decay, config.gamma, config.epochs) == (5e-4, 200, 0.5, 500)
    assert (config.temp, config.var, config.prediction_steps, config.edge_types) == (0.5, 5e-5, 10, 2)


def test_reference_flag_names_parse():
    args = parse("--epochs", "3", "--batch-size", "16", "--lr", "0.001", "--lr-decay", "5",
                 "--gamma", "0.1", "--encoder-hidden", "32", "--decoder-hidden", "16",
                 "--temp", "0.3", "--encoder", "cnn", "--decoder", "rnn", "--no-factor",
                 "--encoder-dropout", "0.1", "--decoder-dropout", "0.2", "--edge-types", "4",
                 "--prediction-steps", "5", "--skip-first", "--var", "1e-4", "--hard",
                 "--prior", "--dynamic-graph", "--seed", "7")
    config = build_config({}, config_overrides(args), {"dims": 4, "frames": 49})
    assert config.factor is False and config.skip_first and config.hard and config.dynamic_graph
    assert config.encoder == "cnn" and config.decoder == "rnn" and config.edge_types == 4
    assert config.prior == pytest.approx([0.91, 0.03, 0.03, 0.03])
    assert (config.epochs, config.batch_size, config.seed) == (3, 16, 7)


def test_precedence_defaults_preset_flags():
    config = build_config({"encoder_hidden": 64, "lr": 1e-3}, config_overrides(parse("--lr", "2e-3")),
                          {"dims": 3, "frames": 20})
    assert (config.encoder_hidden, config.lr, config.dims, config.frames) == (64, 2e-3, 3, 20)
    assert config.decoder_hidden == 256  # untouched: the dataclass default


def test_unknown_flag_value_is_rejected():
    with pytest.raises(SystemExit):
        parse("--encoder", "transformer")


@pytest.mark.parametrize("changes, message", [
    ({"edge_types": 1, "skip_first": True}, "edge_types"),
    ({"encoder_dropout": 1.0}, "encoder_dropout"),
    ({"temp": 0.0}, "temp"),
    ({"encoder": "cnn", "frames": 10}, "at least 14 frames"),
    ({"prior": [0.5, 0.5, 0.0]}, "prior has 3 entries"),
    ({"prior": [0.9, 0.2]}, "sum to 1"),
    ({"batch_size": 0}, "batch_size"),
])
def test_invalid_settings_name_the_setting(changes, message):
    with pytest.raises(ConfigError, match=message):
        NRIConfig(**changes).validate()


def test_json_round_trip_and_unknown_keys(tmp_path):
    config = NRIConfig(edge_types=4, skip_first=True, prior=reference_prior(4)).validate()
    path = str(tmp_path / "config.json")
    config.save(path)
    assert NRIConfig.load(path) == config
    with pytest.raises(ConfigError, match="unknown config keys: bogus"):
        NRIConfig.from_dict({**config.to_dict(), "bogus": 1})


def test_presets_build_valid_configs_and_paper_is_the_dataclass():
    from nri_tf.config import DEFAULT_PRESET, PRESETS

    for name, preset in PRESETS.items():
        config = build_config(preset.config, {}, {"dims": 4, "frames": 49})
        assert config.validate() is config, name
        assert preset.data["num_train"] > 0 and preset.data["simulation"] == "springs"
    assert build_config(PRESETS["paper"].config, {}, {"dims": 4, "frames": 49}) == NRIConfig()
    assert PRESETS["paper"].data["num_train"] == 50000
    assert DEFAULT_PRESET in PRESETS


def test_preset_values_sit_under_flags():
    from nri_tf.config import PRESETS

    fast = PRESETS["fast"].config
    config = build_config(fast, config_overrides(parse("--batch-size", "64")), {"dims": 4, "frames": 49})
    assert config.batch_size == 64 and config.encoder_hidden == fast["encoder_hidden"]
