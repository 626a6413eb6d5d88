"""One dataclass of NRI hyperparameters: the single source of truth for settings.

The training CLI (`python -m nri_tf.train`) builds its flags from the fields below
(`nri_tf.flags`; the flag name is the field name with dashes, matching the reference
implementation's train.py where a concept exists there), a run directory saves it as
``config.json``, and the export reads it back. ``dims`` (and, for the simulation decoder,
``simulator``) describe the data and are filled in from the dataset metadata, never typed
by hand; ``frames`` defaults to the training systems' length
(`nri_tf.presets.config_for_dataset`).

Defaults are the paper's (Kipf et al. 2018, appendix C/D; ``../shared/docs/SPEC.md``)
unless a field's help says otherwise. A leaf module: the dataclass, its validation and
its dict/JSON round trip; it imports nothing of the project but the error type and the
candidate-edge methods (`data_pipelines.candidates`, numpy only).
"""

from __future__ import annotations

import dataclasses
import json
import math
from typing import Any

from data_pipelines.candidates import CANDIDATE_METHODS
from data_pipelines.errors import UserError

ENCODERS = ("mlp", "cnn")
DECODERS = ("mlp", "rnn", "sim")
PRECISIONS = ("float32", "bfloat16")
MAX_SEED = 2 ** 32 - 1        # numpy's seeds are 32-bit
RNN_MESSAGE_DIVISORS = ("nodes", "dims")
CNN_MIN_FRAMES = 14
# The most frames one served `predict` request may ask for, unless the export's --max-steps
# says otherwise: the paper scores 20; every step costs the server time and memory.
SERVING_MAX_STEPS = 1000
# The largest |value| a served request may have once scaled by the training statistics
# (the training data spans [-1, 1]): beyond it the network's float32 arithmetic is noise.
SERVING_MAX_SCALED = 1e6


# The reference implementation's sparsity prior for 4 edge types with type 0 = no edge;
# `--prior` given without values uses its first entry and spreads the rest evenly
# (`nri_tf.presets.reference_prior`).
REFERENCE_PRIOR_NO_EDGE = 0.91
# `--change-scale` without values measures the first this many training systems.
CHANGE_SCALE_SYSTEMS = 1000


# Options added after runs existed, with the fields that belong to them (`NRIConfig.identity`).
OPTION_FIELDS = {"candidate_edges": ("complete", ("candidate_edges", "candidate_k", "candidate_radius")),
                 "relative_positions": (False, ("relative_positions", "position_dims")),
                 "gru_own_hidden": (False, ("gru_own_hidden",)),
                 "rnn_message_divisor": ("nodes", ("rnn_message_divisor",)),
                 "triangles": (False, ("triangles",)),
                 "inverse_square": (False, ("inverse_square",)),
                 "change_scale": ([], ("change_scale",)),
                 "gru_reads_change": (False, ("gru_reads_change",)),
                 "kl_warmup": (0, ("kl_warmup",))}


# Settings that only some decoders take: (those decoders, what the setting is). A preset's rule
# or an experiment's flags leave them out of a model with another decoder
# (`decoder_settings_of_others`); a user's own is refused there (`NRIConfig.validate`).
DECODER_SETTINGS = {
    "relative_positions": (("mlp", "sim"), "of messages that read positions"),
    "inverse_square": (("mlp",), "of the mlp decoder's messages"),
    "change_scale": (("mlp", "rnn"), "scaling a learned decoder's output"),
    "gru_own_hidden": (("rnn",), "of the rnn decoder's GRU"),
    "rnn_message_divisor": (("rnn",), "of the rnn decoder's messages"),
    "gru_reads_change": (("rnn",), "of the rnn decoder's GRU"),
}


def decoder_settings_of_others(decoder: str) -> tuple:
    """The `DECODER_SETTINGS` that ``decoder`` does not take."""
    return tuple(name for name, (decoders, _) in DECODER_SETTINGS.items() if decoder not in decoders)


def _field(default: Any, help: str, **extra: Any) -> Any:
    """A dataclass field whose ``help`` text becomes the CLI flag's help.

    ``extra`` metadata: ``cli`` (False: not a flag), ``choices``, ``default_help`` (the
    value shown when the flag is not given), and for list fields ``empty_help`` / ``empty_short``
    (what the flag given without values means, in full for its help and in a word or two
    where a preset's rule asks for it)."""
    metadata = {"help": help, **extra}
    if isinstance(default, (list, dict)):
        return dataclasses.field(default_factory=lambda: type(default)(default), metadata=metadata)
    return dataclasses.field(default=default, metadata=metadata)


class ConfigError(UserError):
    """A setting is invalid; the message names the setting and what is allowed."""


@dataclasses.dataclass
class NRIConfig:
    """Hyperparameters of an NRI model and its training run.

    Data fields (set from the dataset metadata by `nri_tf.presets.config_for_dataset`):
      dims: features per node per frame (4 for springs/charged, 3 for Kuramoto).
      frames: frames the encoder sees, the first ones of each training system (49 in the
        paper; 17 of 25 for SportVU); the decoder reconstructs every training frame.
      simulator: ``decoder="sim"`` only: the `nri_tf.physics.SimulationDecoder` settings
        of the dataset (`nri_tf.physics.simulator_settings`).
      position_dims: how many leading features are positions (2 for x, y, vx, vy; 0 for
        Kuramoto); ``relative_positions`` needs them.
    """

    # --- data (filled from dataset metadata) ---
    dims: int = _field(4, "features per node and frame (from the dataset)", cli=False)
    frames: int = _field(49, "frames the encoder sees, the first of each training system",
                         default_help="all frames of the training systems")
    simulator: dict = _field({}, "settings of the simulation decoder (from the dataset)", cli=False)
    position_dims: int = _field(0, "leading features that are positions (from the dataset's "
                                "feature names x, y, z)", cli=False)

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
    relative_positions: bool = _field(
        False, "translation-invariant model (beyond the paper): positions (the data's leading x, "
        "y, z features) reach the encoder and the MLP decoder only as sender-minus-receiver "
        "differences along edges, so where a system lies does not matter (e.g. a model trained "
        "on small boxes applied to larger ones; data simulated with walls keeps absolute "
        "positions whatever the preset says)")
    inverse_square: bool = _field(
        False, "mlp decoder (beyond the paper): the messages also read each pair's position "
        "difference d as the softened inverse-square vector 0.04 d / (|d|^2 + 0.1^2)^(3/2) "
        "(normalised units), the form of Coulomb and gravitational forces (charged particles), "
        "which a ReLU network on d itself forms poorly")
    triangles: bool = _field(
        False, "joint inference across edges (beyond the paper): before its logits, each edge of "
        "the encoder also reads the two-edge paths that close a triangle with it, averaged over "
        "the third node, so the types of a triangle's edges are inferred together (charged "
        "particles: a far pair's sign follows from two near pairs'); complete graph only")
    gru_own_hidden: bool = _field(
        False, "rnn decoder (beyond the reference code, as the paper's equation): the GRU also "
        "reads each node's own previous hidden state, not only the messages from its "
        "neighbours, so a node with no incoming edge keeps its memory")
    rnn_message_divisor: str = _field(
        "nodes", "rnn decoder: what divides each node's summed incoming messages: nodes (N, "
        "SPEC.md's average over nodes) or dims (the feature count D, as the reference code's "
        "`inputs.size(2)` does); with many nodes and a sparse graph (motion capture: N = 31, "
        "D = 6) dims keeps more of the messages", choices=RNN_MESSAGE_DIVISORS)
    change_scale: list = _field(
        [], "mlp and rnn decoders (beyond the paper): each feature's predicted change multiplied "
        "by this factor, one per feature, so the output layer works at the scale of the data's "
        "frame-to-frame changes rather than of the features (motion capture: joints move 0.0004 "
        "to 0.017 of the scaled range a frame, an untrained output layer 0.1-0.2)",
        default_help="none",
        empty_help="each feature's root-mean-square one-frame change in the scaled training data "
                   f"(its first {CHANGE_SCALE_SYSTEMS} systems at most)",
        empty_short="measured")
    gru_reads_change: bool = _field(
        False, "rnn decoder (beyond the paper): the GRU also reads each node's last "
        "frame-to-frame change divided by --change-scale, which it needs (motion capture: the "
        "next change follows from the last two, which a GRU reading the frames alone forms "
        "poorly)")
    temp: float = _field(0.5, "Gumbel-softmax temperature tau")
    hard: bool = _field(False, "straight-through one-hot samples in training")
    prior: list = _field([], "sparsity prior over edge types, e.g. 0.91 0.03 0.03 0.03",
                         default_help="uniform",
                         empty_help=f"the reference's sparsity prior [{REFERENCE_PRIOR_NO_EDGE}, rest "
                                    "spread evenly]",
                         empty_short="the reference's")
    var: float = _field(5e-5, "fixed output variance of the Gaussian likelihood")
    prediction_steps: int = _field(10, "MLP decoder: ground truth fed every M steps; RNN: steps predicted after burn-in")
    dynamic_graph: bool = _field(False, "RNN decoder at test time: re-infer the graph on a sliding window")
    candidate_edges: str = _field(
        "complete", "the edges the model reasons over, per system: complete (every ordered pair, "
        "N*(N-1)), knn (each node receives from its --candidate-k nearest nodes on the first "
        "frame), radius (nodes within --candidate-radius on the first frame, at most "
        "--candidate-k per node, the nearest), given (the edge lists stored with the data)",
        choices=CANDIDATE_METHODS)
    candidate_k: int = _field(16, "knn: neighbours per node; radius: most candidates per node "
                              "(clipped to N - 1)")
    candidate_radius: float = _field(1.5, "radius candidates: distance on the first frame, in the "
                                     "data's raw position units")

    # --- training ---
    epochs: int = _field(500, "training epochs")
    batch_size: int = _field(128, "global batch size (split across replicas)")
    lr: float = _field(5e-4, "Adam learning rate")
    lr_decay: int = _field(200, "epochs between learning-rate decays")
    gamma: float = _field(0.5, "learning-rate decay factor")
    kl_warmup: int = _field(
        0, "epochs over which training's weight on the KL term rises linearly from 0 to 1 "
        "(beyond the paper: KL annealing, Bowman et al. 2016, against a decoder that learns "
        "to predict without the edges while the encoder's graphs are still noise, so the "
        "posterior settles on the prior; 0: the paper's full KL from the start); the logged "
        "loss stays nll + kl")
    seed: int = _field(42, "random seed (model init, shuffling, sampling)")

    def validate(self) -> "NRIConfig":
        """Checks every setting; raises ConfigError naming the first bad one."""
        if self.encoder not in ENCODERS:
            raise ConfigError(f"encoder must be one of {ENCODERS}, got {self.encoder!r}")
        if self.decoder not in DECODERS:
            raise ConfigError(f"decoder must be one of {DECODERS}, got {self.decoder!r}")
        defaults = NRIConfig()
        for name, (decoders, what) in DECODER_SETTINGS.items():
            if getattr(self, name) != getattr(defaults, name) and self.decoder not in decoders:
                raise ConfigError(f"--{name.replace('_', '-')} is a setting {what}; the {self.decoder} "
                                  f"decoder has none")
        min_types = 2 if self.skip_first else 1
        if self.edge_types < min_types:
            raise ConfigError(f"edge_types must be >= {min_types}, got {self.edge_types}")
        for name in ("dims", "frames", "encoder_hidden", "decoder_hidden", "prediction_steps",
                     "epochs", "batch_size", "lr_decay", "candidate_k"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name} must be a positive integer, got {getattr(self, name)}")
        if self.kl_warmup < 0:
            raise ConfigError(f"kl_warmup must be >= 0 epochs, got {self.kl_warmup}")
        if not 0 <= self.seed <= MAX_SEED:
            raise ConfigError(f"seed must be in [0, {MAX_SEED}], got {self.seed}")
        for name in ("encoder_dropout", "decoder_dropout"):
            if not 0.0 <= getattr(self, name) < 1.0:
                raise ConfigError(f"{name} must be in [0, 1), got {getattr(self, name)}")
        for name in ("temp", "var", "lr", "gamma", "candidate_radius"):
            if not getattr(self, name) > 0:
                raise ConfigError(f"{name} must be positive, got {getattr(self, name)}")
        if self.candidate_edges not in CANDIDATE_METHODS:
            raise ConfigError(f"candidate_edges must be one of {CANDIDATE_METHODS}, "
                              f"got {self.candidate_edges!r}")
        if self.relative_positions:
            if not 0 < self.position_dims < self.dims:
                raise ConfigError(f"--relative-positions needs position features (x, y, z) and "
                                  f"others besides them; this data has {self.position_dims} of "
                                  f"its {self.dims} features named as positions")
        if self.inverse_square:
            if self.position_dims < 1:
                raise ConfigError("--inverse-square needs position features (x, y, z); this data "
                                  "has none named as positions")
        if self.triangles and self.candidate_edges != "complete":
            raise ConfigError(f"--triangles reasons over the complete graph; these are "
                              f"{self.candidate_edges} candidate edges")
        if self.gru_reads_change and not self.change_scale:
            raise ConfigError("--gru-reads-change divides the change by --change-scale: give "
                              "--change-scale too (alone it measures the data)")
        if self.change_scale:
            if len(self.change_scale) != self.dims:
                raise ConfigError(f"--change-scale has {len(self.change_scale)} values but the data "
                                  f"has {self.dims} features")
            if not all(math.isfinite(v) and v >= 0 for v in self.change_scale):
                raise ConfigError(f"--change-scale values must be finite and >= 0, got {self.change_scale}")
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

    def identity(self) -> dict:
        """The settings that tell two runs apart: `to_dict` without the fields of options
        that are off (`OPTION_FIELDS`), so a run made before an option existed (its
        config.json lacks the option's fields) is the same run as today's with it off."""
        values = self.to_dict()
        for option, (off, fields) in OPTION_FIELDS.items():
            if values[option] == off:
                values = {k: v for k, v in values.items() if k not in fields}
        return values

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

