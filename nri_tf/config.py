"""One dataclass of NRI hyperparameters: the single source of truth for settings.

The training CLI (`python -m nri_tf.train`) builds its flags from the fields below (the
flag name is the field name with dashes, matching the reference implementation's
train.py where a concept exists there), a run directory saves it as ``config.json``, and
the export reads it back. ``dims`` (and, for the simulation decoder, ``simulator``) describe
the data and are filled in from the dataset metadata, never typed by hand; ``frames``
defaults to the training systems' length (`config_for_dataset`).

Defaults are the paper's (Kipf et al. 2018, appendix C/D; ``../shared/docs/SPEC.md``)
unless a field's help says otherwise.
"""

from __future__ import annotations

import dataclasses
import json
from typing import Any

ENCODERS = ("mlp", "cnn")
DECODERS = ("mlp", "rnn", "sim")
PRECISIONS = ("float32", "bfloat16")
CNN_MIN_FRAMES = 14
# The most frames one served `predict` request may ask for, unless the export's --max-steps
# says otherwise: the paper scores 20; every step costs the server time and memory.
SERVING_MAX_STEPS = 1000
# The largest |value| a served request may have once scaled by the training statistics
# (the training data spans [-1, 1]): beyond it the network's float32 arithmetic is noise.
SERVING_MAX_SCALED = 1e6


def _field(default: Any, help: str, **extra: Any) -> Any:
    """A dataclass field whose ``help`` text becomes the CLI flag's help."""
    metadata = {"help": help, **extra}
    if isinstance(default, (list, dict)):
        return dataclasses.field(default_factory=lambda: type(default)(default), metadata=metadata)
    return dataclasses.field(default=default, metadata=metadata)


class ConfigError(ValueError):
    """A setting is invalid; the message names the setting and what is allowed."""


@dataclasses.dataclass
class NRIConfig:
    """Hyperparameters of an NRI model and its training run.

    Data fields (set from the dataset metadata by `config_for_dataset`):
      dims: features per node per frame (4 for springs/charged, 3 for Kuramoto).
      frames: frames the encoder sees, the first ones of each training system (49 in the
        paper; 17 of 25 for SportVU); the decoder reconstructs every training frame.
      simulator: ``decoder="sim"`` only: the `nri_tf.physics.SimulationDecoder` settings
        of the dataset (`nri_tf.physics.simulator_settings`).
    """

    # --- data (filled from dataset metadata) ---
    dims: int = _field(4, "features per node and frame (from the dataset)", cli=False)
    frames: int = _field(49, "frames the encoder sees, the first of each training system",
                         default_help="all frames of the training systems")
    simulator: dict = _field({}, "settings of the simulation decoder (from the dataset)", cli=False)

    # --- model ---
    encoder: str = _field("mlp", "encoder architecture", choices=ENCODERS)
    decoder: str = _field("mlp", "decoder architecture (sim: the ground-truth springs/charged "
                          "simulator, the paper's NRI (sim.))", choices=DECODERS)
    edge_types: int = _field(2, "number of edge types K")
    encoder_hidden: int = _field(256, "hidden units of encoder MLPs / convolutions")
    decoder_hidden: int = _field(256, "hidden units of decoder MLPs / GRU")
    encoder_dropout: float = _field(0.0, "dropout rate in the encoder")
    decoder_dropout: float = _field(0.0, "dropout rate in the decoder")
    precision: str = _field("float32", "float32, or bfloat16 for the decoder's hidden layers (message "
                            "and output MLPs; weights, residual, loss and sampling stay float32): "
                            "faster where the CPU multiplies bfloat16 natively (AVX512-BF16, AMX)",
                            choices=PRECISIONS)
    factor: bool = _field(True, "factor-graph encoder (edge->node->edge)")
    skip_first: bool = _field(False, "edge type 0 is 'no edge': it carries no messages")
    symmetric: bool = _field(False, "undirected latent graph (beyond the paper): the two directions "
                             "of a node pair share their logits (averaged) and their sampled edge type")
    temp: float = _field(0.5, "Gumbel-softmax temperature tau")
    hard: bool = _field(False, "straight-through one-hot samples in training")
    prior: list = _field([], "sparsity prior over edge types, e.g. 0.91 0.03 0.03 0.03",
                         default_help="uniform")
    var: float = _field(5e-5, "fixed output variance of the Gaussian likelihood")
    prediction_steps: int = _field(10, "MLP decoder: ground truth fed every M steps; RNN: steps predicted after burn-in")
    dynamic_graph: bool = _field(False, "RNN decoder at test time: re-infer the graph on a sliding window")

    # --- training ---
    epochs: int = _field(500, "training epochs")
    batch_size: int = _field(128, "global batch size (split across replicas)")
    lr: float = _field(5e-4, "Adam learning rate")
    lr_decay: int = _field(200, "epochs between learning-rate decays")
    gamma: float = _field(0.5, "learning-rate decay factor")
    seed: int = _field(42, "random seed (model init, shuffling, sampling)")

    def validate(self) -> "NRIConfig":
        """Checks every setting; raises ConfigError naming the first bad one."""
        if self.encoder not in ENCODERS:
            raise ConfigError(f"encoder must be one of {ENCODERS}, got {self.encoder!r}")
        if self.decoder not in DECODERS:
            raise ConfigError(f"decoder must be one of {DECODERS}, got {self.decoder!r}")
        min_types = 2 if self.skip_first else 1
        if self.edge_types < min_types:
            raise ConfigError(f"edge_types must be >= {min_types}, got {self.edge_types}")
        for name in ("dims", "frames", "encoder_hidden", "decoder_hidden", "prediction_steps",
                     "epochs", "batch_size", "lr_decay"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name} must be a positive integer, got {getattr(self, name)}")
        for name in ("encoder_dropout", "decoder_dropout"):
            if not 0.0 <= getattr(self, name) < 1.0:
                raise ConfigError(f"{name} must be in [0, 1), got {getattr(self, name)}")
        for name in ("temp", "var", "lr", "gamma"):
            if not getattr(self, name) > 0:
                raise ConfigError(f"{name} must be positive, got {getattr(self, name)}")
        if self.precision not in PRECISIONS:
            raise ConfigError(f"precision must be one of {PRECISIONS}, got {self.precision!r}")
        if self.decoder == "sim" and not self.simulator:
            raise ConfigError("the sim decoder needs the dataset's simulator settings "
                              "(nri_tf.physics.simulator_settings)")
        if self.decoder == "sim" and self.dims != 4:
            raise ConfigError(f"the sim decoder simulates 2-D particles (4 dims), the data has {self.dims}")
        if self.encoder == "cnn" and self.frames < CNN_MIN_FRAMES:
            raise ConfigError(f"the CNN encoder needs at least {CNN_MIN_FRAMES} frames, got {self.frames}")
        if self.prior:
            if len(self.prior) != self.edge_types:
                raise ConfigError(f"prior has {len(self.prior)} entries but edge_types is {self.edge_types}")
            if any(p <= 0 for p in self.prior) or abs(sum(self.prior) - 1.0) > 1e-6:
                raise ConfigError(f"prior must be positive and sum to 1, got {self.prior}")
        return self

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: dict) -> "NRIConfig":
        """Builds a config from a dict (e.g. config.json); unknown keys are an error."""
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - names)
        if unknown:
            raise ConfigError(f"unknown config keys: {', '.join(unknown)}")
        return cls(**values).validate()

    def save(self, path: str) -> None:
        with open(path, "w") as handle:
            json.dump(self.to_dict(), handle, indent=2, sort_keys=True)

    @classmethod
    def load(cls, path: str) -> "NRIConfig":
        with open(path) as handle:
            return cls.from_dict(json.load(handle))


# ---------------------------------------------------------------------------------------
# Command-line flags, derived from the dataclass fields.

# The reference implementation's sparsity prior for 4 edge types with type 0 = no edge;
# `--prior` given without values uses its first entry and spreads the rest evenly.
REFERENCE_PRIOR_NO_EDGE = 0.91


def reference_prior(edge_types: int) -> list:
    """[0.91, 0.09/(K-1), ...]: the reference's sparsity prior generalised to K types."""
    rest = (1.0 - REFERENCE_PRIOR_NO_EDGE) / (edge_types - 1)
    return [REFERENCE_PRIOR_NO_EDGE] + [rest] * (edge_types - 1)


def add_config_arguments(parser) -> None:
    """Adds one flag per NRIConfig field (``--field-name``) to an argparse parser.

    Flags default to "not given" so that presets and the data can supply defaults
    underneath them; `config_overrides` collects the ones the user did give. Each flag's
    help shows the value a run uses without it (`effective_default_help`). Boolean fields
    get both forms (``--skip-first`` / ``--no-skip-first``).
    """
    import argparse

    group = parser.add_argument_group(
        "model and training hyperparameters (NRIConfig; a flag wins over the data's settings, "
        "which win over the preset's)")
    for field in dataclasses.fields(NRIConfig):
        meta = field.metadata
        if not meta.get("cli", True):
            continue
        flag = "--" + field.name.replace("_", "-")
        help_text = f"{meta['help']} (default: {effective_default_help(field)})"
        if field.type in ("bool", bool):
            group.add_argument(flag, dest=field.name, action=argparse.BooleanOptionalAction,
                               default=argparse.SUPPRESS, help=help_text)
        elif field.name == "prior":
            group.add_argument(flag, dest="prior", nargs="*", type=float, default=argparse.SUPPRESS,
                               help=help_text + "; without values: the reference's sparsity prior "
                               f"[{REFERENCE_PRIOR_NO_EDGE}, rest spread evenly]")
        else:
            kind = {"int": int, "float": float, "str": str}.get(str(field.type), type(field.default))
            group.add_argument(flag, dest=field.name, type=kind, choices=meta.get("choices"),
                               default=argparse.SUPPRESS, help=help_text)


def effective_default_help(field: dataclasses.Field) -> str:
    """What a run uses when the flag is not given, for ``--help``: the default preset's
    value, the data's rule where the data decides (`data_settings`), and the other
    presets' values where they differ."""
    def shown(value):
        return "on" if value is True else "off" if value is False else str(value)

    def value_in(preset: "Preset") -> str:
        value = preset.config.get(field.name, _default_of(field))
        by_source = {source: settings[field.name] for source, settings in preset.by_source.items()
                     if field.name in settings}
        if by_source:
            rules = ", ".join(f"{source} {shown(v)}" for source, v in sorted(by_source.items()))
            return f"from the data: {rules}, other data {shown(value)}"
        return field.metadata.get("default_help", shown(value))

    text = value_in(PRESETS[DEFAULT_PRESET])
    if field.name in DATA_DECIDED:
        text = f"{DATA_DECIDED[field.name]}, else {text}"
    others = [f"--preset {name}: {value_in(preset)}" for name, preset in sorted(PRESETS.items())
              if name != DEFAULT_PRESET and value_in(preset) != value_in(PRESETS[DEFAULT_PRESET])]
    return "; ".join([text] + others)


def config_overrides(args) -> dict:
    """The NRIConfig fields set on the command line, as a dict."""
    names = {f.name for f in dataclasses.fields(NRIConfig)}
    return {k: v for k, v in vars(args).items() if k in names}


def _default_of(field: dataclasses.Field) -> Any:
    if field.default_factory is not dataclasses.MISSING:
        return field.default_factory()
    return field.default


# Fields the data decides whenever it can, under any preset (`data_settings`).
DATA_DECIDED = {"edge_types": "the edge types of a simulated dataset's labels"}


def data_settings(metadata, by_source: dict | None = None) -> dict:
    """NRIConfig values that follow from the data unless a flag says otherwise.

    Args:
      metadata: the dataset's `data_pipelines.storage.DatasetMetadata`.
      by_source: source name -> NRIConfig values for data of that source (a preset's
        `Preset.by_source`, e.g. ``skip_first`` where the simulator's edge type 0 means
        "no interaction").
    Returns:
      ``edge_types`` of data with a true graph (the number of label types, e.g. 3 for
      3-type springs) and the ``by_source`` values of ``metadata.source``.
    """
    from data_pipelines.storage import has_edge_labels   # numpy only

    settings = dict((by_source or {}).get(metadata.source, {}))
    if has_edge_labels(metadata):
        settings["edge_types"] = metadata.edge_types
    return settings


def build_config(preset: dict, overrides: dict, data_fields: dict, data_defaults: dict | None = None) -> NRIConfig:
    """Dataclass defaults <- preset <- the data's defaults <- the dataset's fields <-
    command-line overrides.

    ``data_defaults`` (`data_settings`) are the settings the data suggests;
    ``data_fields`` (from `config_for_dataset`) always set ``dims`` (and ``simulator``);
    their ``frames`` (the training systems' length) is the default and the upper bound of
    the encoder's frames. An empty ``prior`` given on the command line means the
    reference's sparsity prior.
    """
    values = {**preset, **(data_defaults or {}), **data_fields, **overrides}
    values.update({k: v for k, v in data_fields.items() if k != "frames"})
    if values["frames"] > data_fields["frames"]:
        raise ConfigError(f"frames {values['frames']} is more than the {data_fields['frames']} "
                          "frames of the training systems")
    if "prior" in overrides and not overrides["prior"]:
        values["prior"] = reference_prior(values.get("edge_types", NRIConfig.edge_types))
    return NRIConfig(**values).validate()


def config_for_dataset(preset: dict, overrides: dict, metadata, by_source: dict | None = None) -> NRIConfig:
    """`build_config` with the data fields and `data_settings` of a dataset.

    Args:
      preset, overrides: NRIConfig values, the later winning.
      metadata: the dataset's `data_pipelines.storage.DatasetMetadata`.
      by_source: the preset's per-source settings (`Preset.by_source`).
    Raises:
      ConfigError: for bad settings, or the sim decoder on data it cannot simulate.
    """
    data_defaults = data_settings(metadata, by_source)
    data_fields = {"dims": metadata.dims, "frames": metadata.frames["train"]}
    if {**preset, **data_defaults, **overrides}.get("decoder") == "sim":
        from nri_tf.physics import simulator_settings  # imports TensorFlow

        try:
            data_fields["simulator"] = simulator_settings(metadata)
        except ValueError as error:
            raise ConfigError(str(error)) from None
    return build_config(preset, overrides, data_fields, data_defaults)


def setting_origins(preset: dict, overrides: dict, metadata, by_source: dict | None = None) -> dict:
    """Where each NRIConfig value of `config_for_dataset` comes from: field -> "flag",
    "data" (the dataset, or the preset's rule for its source), "preset" or "default"."""
    data = {**data_settings(metadata, by_source), "dims": None, "frames": None, "simulator": None}
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


# ---------------------------------------------------------------------------------------
# Presets: named bundles of settings, applied under the command-line flags.

@dataclasses.dataclass(frozen=True)
class Preset:
    """A named starting point for `python -m nri_tf.train`.

    config: NRIConfig values that differ from the dataclass (paper) defaults.
    data: the built-in dataset used when no ``--data`` is given (simulation, nodes and
      split sizes, as accepted by `data_pipelines.generate.generate_dataset`).
    by_source: dataset source -> NRIConfig values for data of that source, applied over
      ``config`` (`data_settings`); a flag still wins.
    """
    help: str
    config: dict
    data: dict
    by_source: dict = dataclasses.field(default_factory=dict)


def _no_edge_where_the_simulator_has_one() -> dict:
    """source -> {"skip_first": type 0 means no interaction} for every simulation:
    springs and Kuramoto True, charged particles (every pair interacts) False."""
    from data_pipelines.simulations import SIMULATION_NAMES, get_simulation   # numpy only

    return {name: {"skip_first": get_simulation(name).type_zero_is_no_interaction}
            for name in SIMULATION_NAMES}


PAPER_DATA = {"simulation": "springs", "num_nodes": 5, "num_train": 50000, "num_valid": 10000,
              "num_test": 10000, "seed": 42}

PRESETS = {
    "fast": Preset(
        help="the default: springs5 to >= 95%% edge accuracy in about 10 minutes on 2 CPU cores "
             "(hidden 64, batch 32, lr 1e-3 halved every 10 epochs, 10k systems; type 0 = no "
             "edge where the simulator has a no-interaction type: springs, Kuramoto)",
        config={"encoder_hidden": 64, "decoder_hidden": 64, "batch_size": 32, "lr": 1e-3,
                "lr_decay": 10, "gamma": 0.5, "epochs": 30},
        data={"simulation": "springs", "num_nodes": 5, "num_train": 10000, "num_valid": 1000,
              "num_test": 1000, "seed": 42},
        by_source=_no_edge_where_the_simulator_has_one()),
    "paper": Preset(
        help="the paper's setting: hidden 256, batch 128, 500 epochs, 50k springs5 systems "
             "(days on a 2-core CPU); CNN encoder for charged and Kuramoto, type 0 = no edge "
             "for Kuramoto (appendix D.1)",
        config={},
        data=PAPER_DATA,
        by_source={"charged": {"encoder": "cnn"}, "kuramoto": {"encoder": "cnn", "skip_first": True}}),
}
DEFAULT_PRESET = "fast"
