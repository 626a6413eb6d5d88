"""NRIConfig: validation, JSON round trip, and the command-line flags derived from it."""

import argparse
import dataclasses

import numpy as np
import pytest

from nri_tf.config import DECODER_SETTINGS, DECODERS, ConfigError, NRIConfig
from nri_tf.flags import add_config_arguments, config_overrides
from nri_tf.presets import build_config, reference_prior


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
    ({"seed": -1}, "seed must be in \\[0, 4294967295\\], got -1"),     # numpy's own error was a traceback
    ({"seed": 2 ** 32}, "seed"),
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
    from nri_tf.presets import DEFAULT_PRESET, PRESETS

    for name, preset in PRESETS.items():
        config = build_config(preset.config, {}, {"dims": 4, "frames": 49})
        assert config.validate() is config, name
        assert preset.data["num_train"] > 0 and preset.data["simulation"] == "springs"
    assert build_config(PRESETS["paper"].config, {}, {"dims": 4, "frames": 49}) == NRIConfig()
    assert PRESETS["paper"].data["num_train"] == 50000
    assert DEFAULT_PRESET in PRESETS


def test_preset_values_sit_under_flags():
    from nri_tf.presets import PRESETS

    fast = PRESETS["fast"].config
    config = build_config(fast, config_overrides(parse("--batch-size", "64")), {"dims": 4, "frames": 49})
    assert config.batch_size == 64 and config.encoder_hidden == fast["encoder_hidden"]


def metadata_of(source: str, edge_types: int = 2, labelled: bool = True, nodes: int = 5, **parameters):
    """A DatasetMetadata of ``source`` data (only what the settings read is realistic);
    ``parameters`` go into its simulation parameters (e.g. walls)."""
    from data_pipelines.normalisation import Normalisation
    from data_pipelines.storage.metadata import DatasetMetadata

    return DatasetMetadata(
        source=source, parameters={**parameters, **({} if labelled else {"edge_labels": "none"})},
        nodes=nodes, dims=4,
        feature_names=["x", "y", "vx", "vy"], edge_types=edge_types,
        frames={"train": 49}, splits={"train": 1},
        normalisation=Normalisation("minmax", [[0, 1], [2, 3]], [0.0] * 4, [1.0] * 4), shards={})


def preset_config(preset: str, source: str, *argv, **metadata):
    from nri_tf.presets import PRESETS, config_for_dataset

    chosen = PRESETS[preset]
    return config_for_dataset(chosen.config, config_overrides(parse(*argv)), metadata_of(source, **metadata),
                              chosen.by_source)


def test_every_boolean_flag_has_both_forms():
    booleans = [f.name for f in dataclasses.fields(NRIConfig) if f.type in ("bool", bool)]
    assert set(booleans) == {"factor", "skip_first", "symmetric", "relative_positions", "inverse_square",
                             "gru_own_hidden", "gru_reads_change", "triangles", "hard", "dynamic_graph"}
    for name in booleans:
        flag = name.replace("_", "-")
        assert config_overrides(parse(f"--{flag}")) == {name: True}
        assert config_overrides(parse(f"--no-{flag}")) == {name: False}
    assert config_overrides(parse()) == {}


def test_skip_first_follows_the_simulator_unless_a_flag_says_otherwise():
    # Charged particles all interact (attract or repel): no "no edge" type to hard-code.
    assert not preset_config("fast", "charged").skip_first
    assert preset_config("fast", "springs").skip_first
    assert preset_config("fast", "kuramoto").skip_first
    assert preset_config("fast", "kuramoto").encoder == "cnn"            # measured: 78.5 against 55.6%
    assert preset_config("fast", "kuramoto", "--encoder", "mlp").encoder == "mlp"
    assert preset_config("fast", "charged").encoder == "cnn"              # measured: 67.3 against 63.9%


def test_simulated_data_gets_an_undirected_graph_unless_a_flag_or_the_paper_says_otherwise():
    for source in ("springs", "charged", "kuramoto", "local-springs"):    # k_ij = k_ji in all of them
        assert preset_config("fast", source).symmetric, source
        assert not preset_config("paper", source).symmetric, source      # the paper's model is directed
    assert not preset_config("fast", "charged", "--no-symmetric").symmetric
    assert not preset_config("fast", "sportvu", labelled=False).symmetric  # no rule for real data
    assert not preset_config("fast", "sportvu", labelled=False).skip_first      # no rule: the flag's job
    assert preset_config("fast", "charged", "--skip-first").skip_first
    assert not preset_config("fast", "springs", "--no-skip-first").skip_first
    assert preset_config("fast", "sportvu", "--skip-first", "--edge-types", "4", labelled=False).skip_first


def test_rules_set_the_schedule_by_source_and_size():
    """A rule for a source and size ("kuramoto5") sits over the source's ("kuramoto")."""
    for nodes in (5, 10, 20):                                  # springs5 97.9% test against 96.0
        springs = preset_config("fast", "springs", nodes=nodes)
        assert (springs.epochs, springs.lr_decay, springs.skip_first) == (120, 40, True)
    assert preset_config("fast", "springs", "--epochs", "5", nodes=10).epochs == 5
    assert preset_config("paper", "springs", nodes=10).epochs == 500
    assert preset_config("fast", "local-springs").epochs == 30       # another source
    five = preset_config("fast", "kuramoto")                             # 91.1% test against 90.2
    assert (five.epochs, five.lr_decay, five.encoder) == (90, 30, "cnn")
    assert preset_config("fast", "kuramoto", nodes=10).epochs == 30
    ten_charged = preset_config("fast", "charged", nodes=10)             # 57.3% test against 50.7
    assert ten_charged.relative_positions and not preset_config("fast", "charged").relative_positions
    assert not preset_config("fast", "charged", "--no-relative-positions", nodes=10).relative_positions
    assert not preset_config("paper", "charged", nodes=10).relative_positions
    assert ten_charged.inverse_square and preset_config("fast", "charged").inverse_square   # 69.8 against 68.7
    assert not preset_config("fast", "charged", "--no-inverse-square", nodes=10).inverse_square
    assert not preset_config("paper", "charged", nodes=10).inverse_square
    assert not preset_config("paper", "charged").inverse_square


def test_a_rules_decoder_settings_reach_only_the_decoders_that_have_them():
    """Charged particles' inverse-square messages are the mlp decoder's: a run with another
    decoder gets the rest of the rule, not an error about a setting nobody typed."""
    for decoder in ("rnn", "sim"):
        config = preset_config("fast", "charged", "--decoder", decoder, nodes=10)
        assert (config.decoder, config.inverse_square) == (decoder, False)
        assert (config.encoder, config.symmetric) == ("cnn", True)
        # Relative positions: the sim decoder's too, not the rnn decoder's (it reads hidden states).
        assert config.relative_positions == (decoder == "sim")
    # Motion capture's rule is the rnn decoder's: with the mlp decoder, only its change scale stays.
    mlp = preset_config("fast", "cmu", "--decoder", "mlp", "--change-scale", "1", "1", "1", "1", labelled=False)
    assert (mlp.gru_own_hidden, mlp.gru_reads_change, mlp.change_scale) == (False, False, [1, 1, 1, 1])
    # The user's own flag is not dropped: it is refused, naming it.
    with pytest.raises(ConfigError, match="--inverse-square is a setting of the mlp decoder"):
        preset_config("fast", "charged", "--decoder", "rnn", "--inverse-square")


@pytest.mark.parametrize("preset", ["fast", "paper"])
def test_motion_capture_gets_the_papers_model_and_schedule(preset):
    from nri_tf.presets import PRESETS

    # Given factors: a measured change scale (the fast rule's) reads the data, which this has not.
    config = preset_config(preset, "cmu", "--change-scale", "1", "1", "1", "1", labelled=False)
    assert (config.encoder, config.decoder, config.edge_types, config.skip_first) == ("mlp", "rnn", 4, True)
    assert config.prior == pytest.approx([0.91, 0.03, 0.03, 0.03]) and config.hard and config.dynamic_graph
    assert (config.epochs, config.batch_size, config.lr, config.lr_decay) == (200, 8, 5e-4, 200)
    assert config.encoder_hidden == PRESETS[preset].config.get("encoder_hidden", 256)
    flagged = preset_config(preset, "cmu", "--edge-types", "2", "--no-skip-first", "--epochs", "3",
                            "--change-scale", "1", "1", "1", "1", labelled=False)
    assert (flagged.edge_types, flagged.skip_first, flagged.epochs) == (2, False, 3)
    assert flagged.prior == pytest.approx([0.91, 0.09])             # the reference's prior for K = 2
    # Beyond the paper, the fast preset's decoder: a measured change scale, the GRU reading
    # its own hidden state and the last change; the paper preset keeps the reference's GRU.
    fast = preset == "fast"
    assert (config.gru_own_hidden, config.gru_reads_change) == (fast, fast)
    assert PRESETS[preset].by_source["cmu"].get("change_scale") == ([] if fast else None)
    if fast:
        with pytest.raises(ConfigError, match="measures the training data"):
            preset_config(preset, "cmu", labelled=False)


def test_change_scale_without_values_is_measured_on_the_training_data(tiny_data):
    from data_pipelines.normalisation import Normaliser
    from data_pipelines.storage.reader import read_metadata, read_split
    from nri_tf.presets import PRESETS, config_for_dataset

    metadata, fast = read_metadata(tiny_data), PRESETS["fast"]
    scaled = Normaliser.from_metadata(metadata).normalise(read_split(tiny_data, "train")[0].astype(np.float64))
    expected = np.sqrt((np.diff(scaled, axis=2) ** 2).mean(axis=(0, 1, 2)))     # all 256 systems
    config = config_for_dataset(fast.config, config_overrides(parse("--change-scale")), metadata,
                                fast.by_source, tiny_data)
    np.testing.assert_allclose(config.change_scale, expected, rtol=1e-5)
    assert 0 < min(config.change_scale) and max(config.change_scale) < 0.5      # a frame moves little
    given = config_overrides(parse("--change-scale", "1", "2", "3", "4"))
    assert config_for_dataset(fast.config, given, metadata, fast.by_source).change_scale == [1, 2, 3, 4]
    with pytest.raises(ConfigError, match="measures the training data"):
        config_for_dataset(fast.config, config_overrides(parse("--change-scale")), metadata, fast.by_source)
    with pytest.raises(ConfigError, match="the sim decoder has none"):
        NRIConfig(decoder="sim", simulator={"kind": "springs"}, change_scale=[1.0] * 4).validate()


def test_paper_preset_follows_the_papers_appendix_per_simulation():
    springs, charged, kuramoto = (preset_config("paper", source) for source in ("springs", "charged", "kuramoto"))
    assert not springs.skip_first and springs.encoder == "mlp"
    assert not charged.skip_first and charged.encoder == "cnn"
    assert kuramoto.skip_first and kuramoto.encoder == "cnn"


def test_edge_types_come_from_labelled_data():
    assert preset_config("fast", "springs", edge_types=3).edge_types == 3
    assert preset_config("fast", "springs", "--edge-types", "4", edge_types=3).edge_types == 4
    # Real data's labels are placeholders (edge_types 1): the config's default stays.
    assert preset_config("fast", "sportvu", edge_types=1, labelled=False).edge_types == 2


def test_start_up_description_marks_where_each_setting_comes_from():
    from nri_tf.presets import PRESETS, describe_config, setting_origins

    fast = PRESETS["fast"]
    overrides = config_overrides(parse("--batch-size", "16"))
    config = preset_config("fast", "charged", "--batch-size", "16")
    text = describe_config(config, setting_origins(fast.config, overrides, metadata_of("charged"), fast.by_source))
    assert "batch_size=16 [flag]" in text and "lr=0.001 [preset]" in text
    assert "skip_first=False [data]" in text and "edge_types=2 [data]" in text
    assert "temp=0.5" in text and "temp=0.5 [" not in text                   # the paper's default
    assert "dims=" not in text and all(len(line) <= 100 for line in text.splitlines())


def test_help_shows_the_values_a_run_uses():
    import re

    parser = argparse.ArgumentParser()
    add_config_arguments(parser)
    text = re.sub(r"\s+", " ", parser.format_help())
    assert "--encoder-hidden ENCODER_HIDDEN hidden units of encoder MLPs / convolutions (default: 64; " \
           "--preset paper: 256)" in text
    assert ("--epochs EPOCHS training epochs (default: from the data: cmu 200, kuramoto5 90, springs 120, other data 30; "
            "--preset paper: from the data: cmu 200, other data 500)") in text
    assert "--skip-first, --no-skip-first" in text
    assert ("(default: from the data: charged off, cmu on, kuramoto on, local-springs on, springs on, other "
            "data off; --preset paper: from the data: cmu on, kuramoto on, other data off)") in text
    assert "(default: from the data: cmu the reference's, other data none)" in text
    assert "(default: the edge types of a simulated dataset's labels, else from the data: cmu 4, other data 2)" in text
    assert "--temp TEMP Gumbel-softmax temperature tau (default: 0.5)" in text


def test_position_dims_are_the_leading_x_y_z_features():
    from types import SimpleNamespace

    from data_pipelines.contract import position_dims

    def named(*names):
        return SimpleNamespace(feature_names=list(names))

    assert position_dims(named("x", "y", "vx", "vy")) == 2
    assert position_dims(named("x", "y", "z", "vx", "vy", "vz")) == 3
    assert position_dims(named("dphi_dt", "sin_phi", "omega")) == 0             # Kuramoto
    assert position_dims(named("vx", "x")) == 0                                  # leading only
    assert preset_config("fast", "springs").position_dims == 2
    assert preset_config("fast", "springs", "--relative-positions").relative_positions


def test_local_springs_in_open_space_get_the_translation_invariant_model():
    assert preset_config("fast", "local-springs", walls=False).relative_positions
    assert not preset_config("fast", "local-springs", walls=True).relative_positions   # walls matter
    assert not preset_config("fast", "local-springs", "--no-relative-positions", walls=False).relative_positions
    assert not preset_config("fast", "springs").relative_positions
    assert not preset_config("paper", "local-springs", walls=False).relative_positions


def test_batches_of_large_systems_fit_the_memory_unless_a_flag_says_otherwise():
    from nri_tf.presets import PRESETS, describe_config, setting_origins

    knn = ("--candidate-edges", "knn", "--candidate-k", "16")
    # N = 1000 with k = 16 at hidden 64: 8 systems (7.1 GB measured); 32 would need about 28 GB.
    assert preset_config("fast", "local-springs", *knn, nodes=1000).batch_size == 8
    assert preset_config("fast", "local-springs", *knn, "--encoder-hidden", "128", nodes=1000).batch_size == 4
    assert preset_config("paper", "local-springs", *knn, nodes=1000).batch_size == 2          # hidden 256
    assert preset_config("fast", "local-springs", *knn, "--batch-size", "32", nodes=1000).batch_size == 32
    assert preset_config("fast", "springs", nodes=100).batch_size == 8          # the complete graph: 9900 edges
    # The paper's sizes keep the presets' batches.
    assert preset_config("fast", "springs", nodes=10).batch_size == 32
    assert preset_config("paper", "springs", nodes=10).batch_size == 128
    fast = PRESETS["fast"]
    overrides = config_overrides(parse(*knn))
    text = describe_config(preset_config("fast", "local-springs", *knn, nodes=1000),
                           setting_origins(fast.config, overrides, metadata_of("local-springs", nodes=1000),
                                           fast.by_source))
    assert "batch_size=8 [data]" in text
    # Stored edge lists count their largest in-degree; evaluate cuts a run's batch the same way.
    from nri_tf.presets import fitting_batch_size

    stored = dataclasses.replace(metadata_of("local-springs", nodes=1000), edge_lists={"max_degree": 20})
    run = {"batch_size": 32, "encoder_hidden": 64, "decoder_hidden": 64, "candidate_edges": "given"}
    assert fitting_batch_size(stored, run) == 4
    assert fitting_batch_size(metadata_of("local-springs", nodes=100), {**run, "candidate_edges": "knn"}) == 32
    assert fitting_batch_size(metadata_of("springs", nodes=1000), {**run, "candidate_edges": "complete"}) == 1


@pytest.mark.parametrize("name", sorted(DECODER_SETTINGS))
def test_a_decoder_setting_is_taken_by_its_decoders_and_refused_by_the_others(name):
    given = {name: {"rnn_message_divisor": "dims", "change_scale": [1.0] * 4}.get(name, True)}
    if name == "gru_reads_change":
        given["change_scale"] = [1.0] * 4                   # it reads the change scale
    for decoder in DECODERS:
        config = NRIConfig(decoder=decoder, simulator={"kind": "springs"}, position_dims=2, **given)
        if all(decoder in DECODER_SETTINGS[key][0] for key in given):
            config.validate()
        else:
            with pytest.raises(ConfigError, match=f"is a setting .*; the {decoder} decoder has none"):
                config.validate()
