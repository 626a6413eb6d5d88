"""Presets and the data's say: how a run's `NRIConfig` is put together.

Dataclass defaults <- preset <- the data's settings <- the dataset's fields <- flags
(`build_config`). Presets are named bundles of settings applied under the command-line
flags; `data_settings` are the values that follow from a dataset (its edge types, the
preset's per-source rules); `config_for_dataset` fills in ``dims``, ``frames``,
``position_dims`` and the simulation decoder's settings from the dataset metadata.

Building blocks:
  `Preset`, `PRESETS`, `DEFAULT_PRESET`, `PAPER_DATA`   the named starting points
  `config_for_dataset`, `build_config`, `data_settings`  the config of a run on a dataset
  `setting_origins`, `describe_config`   where each value comes from, for the run's log
  `reference_prior`    the reference's sparsity prior for K edge types
  `measured_change_scale`   the training data's frame-to-frame change per feature
                            (`NRIConfig.change_scale` asked for without values)
"""

from __future__ import annotations

import dataclasses

from data_pipelines.contract import has_edge_labels, position_dims
from data_pipelines.simulations import ALL_SIMULATION_NAMES, get_simulation
from data_pipelines.normalisation import Normaliser, change_rms
from nri_tf.config import (CHANGE_SCALE_SYSTEMS, REFERENCE_PRIOR_NO_EDGE, ConfigError, NRIConfig,
                           decoder_settings_of_others)


def reference_prior(edge_types: int) -> list:
    """[0.91, 0.09/(K-1), ...]: the reference's sparsity prior generalised to K types."""
    rest = (1.0 - REFERENCE_PRIOR_NO_EDGE) / (edge_types - 1)
    return [REFERENCE_PRIOR_NO_EDGE] + [rest] * (edge_types - 1)


# Fields the data decides whenever it can, under any preset (`data_settings`).
DATA_DECIDED = {"edge_types": "the edge types of a simulated dataset's labels",
                "candidate_edges": "given for data stored with candidate edge lists",
                "batch_size": "on large systems at most the largest power of two whose candidate "
                              "edges x hidden units fit what N = 1000 with k = 16, batch 8 and "
                              "hidden 64 hold (7.1 GB)"}

# What one training batch may hold unless --batch-size says otherwise: systems x nodes x
# candidate slots per node x hidden units, at most that of N = 1000 with k = 16 candidates,
# batch 8 and hidden 64, which trains in 7.1 GB (README "Large systems",
# benchmarks/large_systems.py). A preset's batch size fits the paper's 5-10 nodes; on large
# systems it would not fit the memory (N = 1000, k = 16 at batch 32: about 28 GB).
BATCH_EDGE_UNITS = 8 * 1000 * 16 * 64


def largest_batch(nodes: int, degree: int, hidden: int) -> int:
    """The largest power of two of systems, at least 1, whose nodes x ``degree`` candidate
    slots x ``hidden`` units fit `BATCH_EDGE_UNITS` (options out of range, such as k = 0,
    are the config's checks to refuse: counted as 1 here)."""
    per_system = max(1, nodes * degree * hidden)
    batch = 1
    while 2 * batch * per_system <= BATCH_EDGE_UNITS:
        batch *= 2
    return batch


def source_rule(by_source: dict | None, source: str, nodes: int | None) -> dict:
    """A preset's settings for data of ``source`` with ``nodes`` nodes (`Preset.by_source`):
    the source's rule (key "kuramoto") under the rule for that size, if any (key "kuramoto5")."""
    by_source = by_source or {}
    return {**by_source.get(source, {}), **by_source.get(f"{source}{nodes}", {})}


def data_settings(metadata, by_source: dict | None = None, preset: dict | None = None,
                  overrides: dict | None = None) -> dict:
    """NRIConfig values that follow from the data unless a flag says otherwise.

    Args:
      metadata: the dataset's `data_pipelines.storage.metadata.DatasetMetadata`.
      by_source: source name (or source and node count, "springs10") -> NRIConfig values
        for that data (a preset's `Preset.by_source`, e.g. ``skip_first`` where the
        simulator's edge type 0 means "no interaction"; `source_rule`).
      preset, overrides: the preset's values and the command-line flags the data's settings
        sit between (`build_config`), for the batch size below (the user's stays).
    Returns:
      ``edge_types`` of data with a true graph (the number of label types, e.g. 3 for
      3-type springs), ``candidate_edges`` "given" for data stored with edge lists (large
      systems: its edges and their labels are all it has) and the ``by_source`` values of
      ``metadata.source``, less ``relative_positions`` for data simulated with walls (where
      a node is matters there, and the translation-invariant model cannot see it) and less
      the settings of decoders other than the run's (charged particles' inverse-square
      messages on a run with ``--decoder rnn`` or ``sim``: `DECODER_SETTINGS`), and a
      smaller ``batch_size`` where the one chosen would hold more candidate edges than
      `BATCH_EDGE_UNITS` allows (`fitting_batch_size`; large systems).
    """
    settings = source_rule(by_source, metadata.source, metadata.nodes)
    if metadata.parameters.get("walls"):
        settings.pop("relative_positions", None)
    decoder = {**(preset or {}), **settings, **(overrides or {})}.get("decoder", NRIConfig.decoder)
    for name in decoder_settings_of_others(decoder):
        settings.pop(name, None)
    if has_edge_labels(metadata):
        settings["edge_types"] = metadata.edge_types
    if getattr(metadata, "edge_lists", None):
        settings["candidate_edges"] = "given"
    if "batch_size" not in (overrides or {}):
        chosen = {**(preset or {}), **settings, **(overrides or {})}
        batch = fitting_batch_size(metadata, chosen)
        if batch < chosen.get("batch_size", NRIConfig.batch_size):
            settings["batch_size"] = batch
    return settings


def fitting_batch_size(metadata, values: dict) -> int:
    """The batch size of the NRIConfig values ``values`` (over the dataclass defaults), cut
    to `largest_batch` of this data's systems and candidate edges (large systems)."""
    # Imported here: candidate_selection imports TensorFlow, which `--help` must not wait for.
    from data_pipelines.candidate_selection import CandidateSpec, dataset_candidate_degree

    values = {**dataclasses.asdict(NRIConfig()), **values}
    spec = CandidateSpec(values["candidate_edges"], values["candidate_k"], values["candidate_radius"])
    if spec.method == "given" and not metadata.has_edge_lists:
        return values["batch_size"]            # `CandidateSpec.check` refuses it, in one line
    degree = dataset_candidate_degree(spec, metadata)
    hidden = max(values["encoder_hidden"], values["decoder_hidden"])
    return min(values["batch_size"], largest_batch(metadata.nodes, degree, hidden))


def build_config(preset: dict, overrides: dict, data_fields: dict, data_defaults: dict | None = None) -> NRIConfig:
    """Dataclass defaults <- preset <- the data's defaults <- the dataset's fields <-
    command-line overrides.

    ``data_defaults`` (`data_settings`) are the settings the data suggests;
    ``data_fields`` (from `config_for_dataset`) always set ``dims``, ``position_dims`` (and
    ``simulator``, and ``change_scale`` when measured);
    their ``frames`` (the training systems' length) is the default and the upper bound of
    the encoder's frames. An empty ``prior`` given on the command line or by the data's
    rule means the reference's sparsity prior for the run's edge types.
    """
    values = {**preset, **(data_defaults or {}), **data_fields, **overrides}
    values.update({k: v for k, v in data_fields.items() if k != "frames"})
    if values["frames"] > data_fields["frames"]:
        raise ConfigError(f"frames {values['frames']} is more than the {data_fields['frames']} "
                          "frames of the training systems")
    asked = {**(data_defaults or {}), **overrides}
    if "prior" in asked and not asked["prior"]:
        values["prior"] = reference_prior(values.get("edge_types", NRIConfig.edge_types))
    return NRIConfig(**values).validate()


def config_for_dataset(preset: dict, overrides: dict, metadata, by_source: dict | None = None,
                       data_dir: str | None = None) -> NRIConfig:
    """`build_config` with the data fields and `data_settings` of a dataset.

    Args:
      preset, overrides: NRIConfig values, the later winning.
      metadata: the dataset's `data_pipelines.storage.metadata.DatasetMetadata`.
      by_source: the preset's per-source settings (`Preset.by_source`).
      data_dir: the dataset's directory, read when a flag or the data's rule asks for a
        measured `NRIConfig.change_scale` (an empty list): `measured_change_scale`.
    Raises:
      ConfigError: for bad settings, the sim decoder on data it cannot simulate, or a
        measured change scale without ``data_dir``.
      DatasetError: the training split cannot be read for that measurement.
    """
    data_defaults = data_settings(metadata, by_source, preset, overrides)
    data_fields = {"dims": metadata.dims, "frames": metadata.frames["train"],
                   "position_dims": position_dims(metadata)}
    asked = {**preset, **data_defaults, **overrides}
    if asked.get("change_scale") == []:
        if data_dir is None:
            raise ConfigError("--change-scale without values measures the training data; "
                              "give the values, or the dataset's directory")
        data_fields["change_scale"] = measured_change_scale(data_dir, metadata)
    if asked.get("decoder") == "sim":
        # Imported here: physics imports TensorFlow, which `--help` must not wait for.
        from nri_tf.physics import simulator_settings

        try:
            data_fields["simulator"] = simulator_settings(metadata)
        except ValueError as error:
            raise ConfigError(str(error)) from None
    return build_config(preset, overrides, data_fields, data_defaults)


# metadata fingerprint -> `measured_change_scale` of that data: an experiment builds its
# config once per model, and the measurement reads the training split.
_MEASURED_CHANGE_SCALES: dict = {}


def measured_change_scale(data_dir: str, metadata) -> list:
    """Each feature's RMS one-frame change over the first `CHANGE_SCALE_SYSTEMS` training
    systems, in the units the model sees (`data_pipelines.normalisation.change_rms`);
    measured once per dataset (by its metadata fingerprint) and process."""
    # Imported here: reading records imports TensorFlow, which `--help` must not wait for.
    from data_pipelines.storage.reader import iter_split, metadata_fingerprint

    key = metadata_fingerprint(metadata)
    if key not in _MEASURED_CHANGE_SCALES:
        batches = (trajectories for trajectories, _ in iter_split(data_dir, "train", metadata))
        _MEASURED_CHANGE_SCALES[key] = change_rms(batches, Normaliser.from_metadata(metadata),
                                                  CHANGE_SCALE_SYSTEMS)
    return list(_MEASURED_CHANGE_SCALES[key])


def setting_origins(preset: dict, overrides: dict, metadata, by_source: dict | None = None) -> dict:
    """Where each NRIConfig value of `config_for_dataset` comes from: field -> "flag",
    "data" (the dataset, or the preset's rule for its source), "preset" or "default"."""
    data = {**data_settings(metadata, by_source, preset, overrides), "dims": None, "frames": None, "simulator": None,
            "position_dims": None}
    origins = {}
    for field in dataclasses.fields(NRIConfig):
        name = field.name
        origins[name] = ("flag" if name in overrides else "data" if name in data
                         else "preset" if name in preset else "default")
    return origins


def describe_config(config: NRIConfig, origins: dict) -> str:
    """Every CLI setting of ``config`` on a few lines, marked where it is not the
    dataclass (paper) default: ``skip_first=True [data]``, ``lr=0.001 [preset]``."""
    items = []
    for field in dataclasses.fields(NRIConfig):
        if not field.metadata.get("cli", True):
            continue
        origin = origins.get(field.name, "default")
        items.append(f"{field.name}={getattr(config, field.name)!r}"
                     + ("" if origin == "default" else f" [{origin}]"))
    lines, line = [], ""
    for item in items:
        if line and len(line) + len(item) > 96:
            lines.append(line.rstrip(", "))
            line = ""
        line += item + ", "
    return "\n".join("  " + text for text in lines + [line.rstrip(", ")])


@dataclasses.dataclass(frozen=True)
class Preset:
    """A named starting point for `python -m nri_tf.train`.

    config: NRIConfig values that differ from the dataclass (paper) defaults.
    data: the built-in dataset used when no ``--data`` is given (simulation, nodes and
      split sizes, as accepted by `data_pipelines.generation.generate_dataset`).
    by_source: dataset source (e.g. "springs"), or source and node count (e.g.
      "springs10", over the source's) -> NRIConfig values for that data, applied over
      ``config`` (`data_settings`, `source_rule`); a flag still wins.
    """
    help: str
    config: dict
    data: dict
    by_source: dict = dataclasses.field(default_factory=dict)


def _what_the_simulator_says() -> dict:
    """source -> what every simulation's physics allows: {"skip_first": type 0 means no
    interaction (springs and Kuramoto; not charged particles, where every pair attracts or
    repels), "symmetric": a pair interacts the same both ways (all of them)}."""
    return {name: {"skip_first": get_simulation(name).type_zero_is_no_interaction,
                   "symmetric": get_simulation(name).undirected_interactions}
            for name in ALL_SIMULATION_NAMES}


# Motion capture as the paper trains it (section 5.2, appendix D.2): MLP encoder, RNN decoder
# (the dynamics are not Markovian), 4 edge types with type 0 = no edge and the sparsity
# prior, hard samples in training (gradients through the concrete relaxation), the graph
# re-inferred before every predicted frame at test time ...
MOCAP_MODEL = {"decoder": "rnn", "edge_types": 4, "skip_first": True, "prior": [],   # [] as `--prior`
               "hard": True, "dynamic_graph": True}
# ... for 200 epochs of batch 8 (the training split is 93 segments of 49 frames) at the
# paper's learning rate, which it found the graph to need.
MOCAP_SCHEDULE = {"epochs": 200, "batch_size": 8, "lr": 5e-4, "lr_decay": 200}
# The fast preset's decoder on motion capture (beyond the paper): output at the data's
# measured frame-to-frame change, the GRU reading its own hidden state and the last change.
MOCAP_DECODER = {"change_scale": [], "gru_own_hidden": True, "gru_reads_change": True}


def _fast_rules() -> dict:
    """The fast preset's settings per data source (and size), each measured at the fast
    sizes, seed 42, on the 2-core Xeon (the table in README "Train"):

    - every simulation: type 0 = no edge where the simulator has a no-interaction type, and
      an undirected graph (`NRIConfig.symmetric`), every simulator's pairs interacting the
      same both ways: validation accuracy at equal epochs against the directed graph,
      charged5 67.3 against 60.3% after 10 epochs (CNN encoder), springs10 +1 to +2 points
      (epochs 8-27), open-space local springs +3 to +4 (epochs 3-8), Kuramoto5 88.5% test
      after 30 epochs against 84.8 (and 86.7 after 60 directed), springs5 level (96.0 against 96.1% test after 30 epochs);
    - charged: the CNN encoder (after 10 epochs with the undirected graph 67.3% against 63.9
      for the MLP; directed 60.3 and 60.4) and the inverse-square messages (charged5, 2-core
      EPYC: 69.8% test after 30 epochs against 68.7, the same data and seed; validation 68.6
      after 6 epochs, where a run without had 67.9 after 10);
    - Kuramoto: the CNN encoder (the paper's choice for it; 78.5% after 10 epochs against
      55.6 for the MLP in issue 14's report), and for 5 oscillators three times as long (90
      epochs, lr halved every 30; undirected, seeds 42 / 43: 91.1 / 91.8% test against 90.2 /
      90.3 after 60 epochs halved every 20, and test MSE after 1 / 10 / 20 steps within 2x of
      the paper's, 1.45x / 1.91x / 1.89x against 1.5x / 2.0x / 2.1x; 50 and 55 minutes beside
      other runs, inside the 5-node budget of an hour);
    - local springs: the translation-invariant model (`NRIConfig.relative_positions`: on
      2000 open-space systems of N = 100, 4-7 points more at equal epochs, and a model
      trained on N = 100 keeps its accuracy on N = 1000, README "Large systems");
    - springs four times as long (120 epochs, lr halved every 40): 10 springs 93.0% test
      against 84.6 after 30 (38 s an epoch alone), 5 springs (undirected) 97.9% test against
      96.0, MSE after 1 / 10 / 20 steps 7.0e-7 / 7.6e-5 / 3.1e-4 against 1.7e-6 / 1.8e-4 /
      6.9e-4 (8 s an epoch alone, so about 17 minutes);
    - 10 charged particles: the translation-invariant model as well (57.3% test after 30
      epochs against 50.7, chance, with absolute positions, which let the latent types split
      the pairs by distance instead of by charge; 2-core EPYC; charged5 level with it);
      with the inverse-square messages as well 63.5% test after 30 epochs (validation 62.6
      after 9) against 57.3 without;
    - motion capture: the paper's model and schedule, with the decoder's output at the
      measured change scale, its GRU reading its own hidden state and the last change
      (`MOCAP_DECODER`; 2-core Xeon, 200 epochs, test MSE after 1 / 10 / 20 frames: NRI
      (learned) 2.66e-5 / 2.44e-4 / 5.19e-4 against 5.51e-5 / 6.27e-4 / 1.98e-3, NRI (full
      graph) 2.83e-5 / 1.82e-4 / 3.46e-4 against 4.99e-5 / 2.93e-4 / 4.90e-4).
    """
    rules = _what_the_simulator_says()
    rules["charged"] = {**rules["charged"], "encoder": "cnn", "inverse_square": True}
    rules["kuramoto"] = {**rules["kuramoto"], "encoder": "cnn"}
    rules["springs"] = {**rules["springs"], "epochs": 120, "lr_decay": 40}
    rules["local-springs"] = {**rules["local-springs"], "relative_positions": True}
    rules["kuramoto5"] = {"epochs": 90, "lr_decay": 30}
    rules["charged10"] = {"relative_positions": True}
    return {**rules, "cmu": {**MOCAP_MODEL, **MOCAP_SCHEDULE, **MOCAP_DECODER}}


PAPER_DATA = {"simulation": "springs", "num_nodes": 5, "num_train": 50000, "num_valid": 10000,
              "num_test": 10000, "seed": 42}


PRESETS = {
    "fast": Preset(
        help="the default: springs5 past 95%% edge accuracy in about 5 minutes on 2 CPU cores "
             "and to 98%% in about 17 (hidden 64, batch 32, lr 1e-3 halved every 10 epochs, 30 "
             "epochs, 10k systems; type 0 = no edge where the simulator has a no-interaction "
             "type: springs, Kuramoto; charged: CNN encoder, undirected graph, inverse-square "
             "messages; Kuramoto: CNN encoder (5 oscillators: 90 epochs, lr halved every 30); "
             "springs: 120 epochs, lr halved every 40; local springs in open space and 10 "
             "charged particles: relative positions; motion capture: the paper's model and "
             "schedule at hidden 64, the decoder's output at the measured change scale, its GRU "
             "reading its own hidden state and the last change)",
        config={"encoder_hidden": 64, "decoder_hidden": 64, "batch_size": 32, "lr": 1e-3,
                "lr_decay": 10, "gamma": 0.5, "epochs": 30},
        data={"simulation": "springs", "num_nodes": 5, "num_train": 10000, "num_valid": 1000,
              "num_test": 1000, "seed": 42},
        by_source=_fast_rules()),
    "paper": Preset(
        help="the paper's setting: hidden 256, batch 128, 500 epochs, 50k springs5 systems "
             "(days on a 2-core CPU); CNN encoder for charged and Kuramoto, type 0 = no edge "
             "for Kuramoto (appendix D.1); motion capture: RNN decoder, 4 types, sparsity "
             "prior, batch 8, 200 epochs (D.2)",
        config={},
        data=PAPER_DATA,
        by_source={"charged": {"encoder": "cnn"}, "kuramoto": {"encoder": "cnn", "skip_first": True},
                   "cmu": {**MOCAP_MODEL, **MOCAP_SCHEDULE}}),
}


DEFAULT_PRESET = "fast"

