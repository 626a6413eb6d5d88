"""Differentiable springs and charged-particle simulators used as NRI decoders.

The "NRI (sim.)" baseline of the paper (appendix D.1.1): the learned decoder is replaced by
the ground-truth integrator, so the encoder is trained by back-propagating through the
equations of motion. States are normalised [batch, nodes, ..., 4] frames (x, y, vx, vy);
each step un-normalises them with the training statistics, integrates one frame interval
and normalises again (the reference's ``SimulationDecoder``).

Building blocks:
  simulator_settings   the `SimulationDecoder` arguments of a springs / charged dataset
                       (its physical constants and normalisation statistics)
  bounded_gradient     each system's gradient bounded at a multiple of the batch's median
  soft_clip            a smooth stand-in for clipping force components (softplus based)
  pair_forces          per-node forces of pairwise laws on [batch, nodes, ..., 2] positions
  compiled_with_gradient   a function compiled with XLA forwards and backwards
  SimulationDecoder    `MarkovianDecoder` integrating one frame per step with leapfrog

Integration per frame interval (``frame_interval`` = 100 data steps of 0.001), in
``steps_per_frame`` leapfrog steps of dt = frame_interval / steps_per_frame, exactly as
the data was generated (`data_pipelines.simulations.particles`):

  v += dt * F(r);  r += dt * v;  reflect off the walls at +-box_size.

With ``steps_per_frame`` = 100 this reproduces the simulated frames up to float error; the
paper uses 1 step for springs (close enough, and 100x cheaper) and 100 for charged.

Edge weights [batch, edges, edge_types] pick each edge's interaction: ``type_values[k]`` is
the spring-type value (spring constant / interaction_strength) or the charge product
q_i q_j of edge type k, so edge types here are *not* exchangeable: type k means what the
dataset's label k means.
"""

from __future__ import annotations

import keras
import tensorflow as tf

from data_pipelines.normalisation import Normaliser
from data_pipelines.simulations import get_simulation
from data_pipelines.simulations.charged import CHARGE_PRODUCT_VALUES
from data_pipelines.simulations.springs import SPRING_TYPE_VALUES
from nri_tf import graph
from nri_tf.decoders import MarkovianDecoder

SIMULATIONS = ("springs", "charged")
# The paper's leapfrog steps per frame of the decoder (appendix D.1.1).
PAPER_STEPS_PER_FRAME = {"springs": 1, "charged": 100}
CLIP_MODES = ("hard", "soft", "none")
# Force clipping as the reference decoders do it: none for springs (their forces stay far
# below the bound), the paper's soft clipping for charged (hard clipping has zero gradients).
DEFAULT_CLIP = {"springs": "none", "charged": "soft"}
DISTANCE_EPSILON = 1e-10   # the reference's _EPS added to |r_i - r_j|^3
# Charged particles' gradients through a frame's 100 leapfrog steps explode at close
# encounters (chaos): per system, the norm of the gradient of the squared error with respect
# to the edge logits had median 7, 99th percentile 4e11 and maximum 1e17 (charged5, 2000
# training systems, random logits, 10 open-loop frames), and NRI (sim.)'s encoder
# overflowed to NaN in its 9th batch. So the charged decoder bounds each system's gradient
# with respect to its edge weights at this many times the batch's median
# (`bounded_gradient`); springs need none.
DEFAULT_GRADIENT_BOUND = {"springs": 0.0, "charged": 10.0}


def simulator_settings(metadata, steps_per_frame: int | None = None,
                       clip: str | None = None) -> dict:
    """The keyword arguments of `SimulationDecoder` for a simulated dataset.

    Args:
      metadata: a `data_pipelines.storage.metadata.DatasetMetadata` of a springs or charged dataset.
      steps_per_frame: leapfrog steps per frame; default `PAPER_STEPS_PER_FRAME`.
      clip: force clipping, one of `CLIP_MODES`; default `DEFAULT_CLIP`.
    Returns:
      a JSON-serialisable dict (saved in the run's config.json).
    Raises:
      ValueError: for other data (there is no simulator to differentiate).
    """
    if metadata.source not in SIMULATIONS:
        raise ValueError(f"the simulation decoder needs springs or charged data, got "
                         f"{metadata.source!r} data")
    simulation = get_simulation(metadata.source)
    constants = simulation.parameters
    sample_every = metadata.parameters.get("sample_every", simulation.default_sample_every)
    if metadata.source == "springs":
        type_values = SPRING_TYPE_VALUES[metadata.edge_types]
    else:  # label 0 = unlike charges (attract), label 1 = like charges (repel)
        type_values = CHARGE_PRODUCT_VALUES[[0, 2]]
    bound = DEFAULT_GRADIENT_BOUND[metadata.source]
    # Only where bounded: a springs run made before the bound is the same run as today's.
    bounded = {"gradient_bound": bound} if bound else {}
    return {
        "simulation": metadata.source,
        "type_values": [float(v) for v in type_values],
        "interaction_strength": float(constants["interaction_strength"]),
        "frame_interval": float(constants["dt"] * sample_every),
        "steps_per_frame": int(steps_per_frame or PAPER_STEPS_PER_FRAME[metadata.source]),
        "box_size": float(constants["box_size"]),
        "max_force": float(constants["max_force"]),
        "clip": clip or DEFAULT_CLIP[metadata.source],
        "normalisation_min": [float(v) for v in metadata.normalisation.min],
        "normalisation_max": [float(v) for v in metadata.normalisation.max],
        **bounded,
    }


def bounded_gradient(edge_weights: tf.Tensor, factor: float) -> tf.Tensor:
    """``edge_weights`` [batch, ...] unchanged; backwards, each system's gradient scaled down
    so that its largest component is at most ``factor`` times the batch's median of that
    largest component, and a system whose gradient is not finite (overflow in a chaotic
    rollout) contributes none. Systems are independent in the decoder, so one system's
    exploding gradient stays its own."""

    @tf.custom_gradient
    def identity(weights):
        def gradient(upstream):
            axes = tf.range(1, tf.rank(upstream))
            largest = tf.reduce_max(tf.abs(upstream), axis=axes)                   # [batch]
            finite = tf.math.is_finite(largest)
            ordered = tf.sort(tf.boolean_mask(largest, finite))
            middle = tf.size(ordered) // 2
            bound = factor * tf.reduce_max(ordered[middle:middle + 1])   # -inf: no finite system
            bound = tf.where(bound > 0, bound, float("inf"))              # a zero median bounds nothing
            scale = tf.where(finite, tf.where(largest > bound, bound / largest, 1.0), 0.0)
            scale = tf.reshape(scale, tf.concat([tf.shape(largest), tf.ones_like(axes)], 0))
            return tf.where(scale > 0, upstream * scale, tf.zeros_like(upstream))

        return tf.identity(weights), gradient

    return identity(edge_weights)


def soft_clip(x: tf.Tensor, bound: float) -> tf.Tensor:
    """x - softplus(x - bound) + softplus(-x - bound): ~x inside, ~+-bound outside, smooth."""
    return x - tf.nn.softplus(x - bound) + tf.nn.softplus(-x - bound)


def _expand_to(values: tf.Tensor, like: tf.Tensor) -> tf.Tensor:
    """[batch, edges] -> [batch, edges, 1, ..., 1] with the rank of ``like``."""
    return tf.reshape(values, tf.concat([tf.shape(values), tf.ones([like.shape.rank - 2], tf.int32)], 0))


def pair_forces(positions: tf.Tensor, strengths: tf.Tensor, law: str, edges=None) -> tf.Tensor:
    """Force on every node from its pairwise interactions, summed over senders.

    Args:
      positions: [batch, nodes, ..., 2].
      strengths: [batch, edges] per directed edge (receiver i, sender j): the spring
        constant k_ij for "springs", C q_i q_j for "charged".
      law: "springs": F_i = -sum_j k_ij (r_i - r_j);
        "charged": F_i = sum_j C q_i q_j (r_i - r_j) / |r_i - r_j|^3.
      edges: `nri_tf.graph.CandidateEdges` of ``strengths``, or None for the complete graph.
    Returns:
      [batch, nodes, ..., 2] forces.
    """
    offsets = (graph.broadcast_receiver_nodes_to_edges(positions, edges)
               - graph.broadcast_sender_nodes_to_edges(positions, edges))     # [b, e, ..., 2]
    strengths = _expand_to(tf.cast(strengths, positions.dtype), offsets)
    if law == "springs":
        per_edge = -strengths * offsets
    elif law == "charged":
        distance_cubed = tf.reduce_sum(tf.square(offsets), axis=-1, keepdims=True) ** 1.5
        per_edge = strengths * offsets / (distance_cubed + DISTANCE_EPSILON)
    else:
        raise ValueError(f"unknown force law {law!r}; expected one of {', '.join(SIMULATIONS)}")
    return graph.edge_to_node(per_edge, edges=edges)


def reflect_at_walls(positions: tf.Tensor, velocities: tf.Tensor, box_size: float):
    """Elastic walls at +-box_size (the reference ``_clamp``): (positions, velocities)."""
    over = positions > box_size
    positions = tf.where(over, 2 * box_size - positions, positions)
    velocities = tf.where(over, -tf.abs(velocities), velocities)
    under = positions < -box_size
    positions = tf.where(under, -2 * box_size - positions, positions)
    velocities = tf.where(under, tf.abs(velocities), velocities)
    return positions, velocities


def compiled_with_gradient(function):
    """``function(*tensors) -> tuple of tensors`` compiled with XLA, forwards and backwards.

    The leapfrog loop is hundreds of tiny element-wise steps, which XLA fuses into a kernel
    each (charged5, 100 steps a frame: NRI (sim.) trains 3-5x faster). A compiled function's
    own gradient would pass the loop's saved steps across the XLA boundary, which TensorFlow
    cannot do; so the backward pass is a second compiled function that runs the loop again
    and differentiates it inside XLA (the forward pass computed twice, its steps kept only
    inside the backward one)."""
    forward = tf.function(function, jit_compile=True)

    @tf.function(jit_compile=True)
    def backward(inputs, output_gradients):
        with tf.GradientTape() as tape:
            tape.watch(inputs)
            outputs = function(*inputs)
        return tape.gradient(outputs, inputs, output_gradients=list(output_gradients))

    @tf.custom_gradient
    def compiled(*inputs):
        # Stopped: a tape watching the inputs would ask for the forward pass's saved steps.
        outputs = forward(*[tf.stop_gradient(tensor) for tensor in inputs])
        return outputs, lambda *upstream: backward(list(inputs), list(upstream))

    return compiled


@keras.saving.register_keras_serializable(package="nri_tf")
class SimulationDecoder(MarkovianDecoder):
    """The ground-truth springs / charged integrator as a (weightless) NRI decoder.

    Args:
      edge_types: K of the edge weights.
      simulation: "springs" or "charged" (the force law).
      type_values: [K] interaction value of each edge type (see the module docstring).
      interaction_strength: springs: k = strength * type value; charged: C.
      frame_interval: simulated time between two frames.
      steps_per_frame: leapfrog steps per frame.
      box_size: elastic walls at +-box_size.
      max_force: clip bound of each force component.
      clip: "hard" (the data's clipping; zero gradient beyond the bound), "soft"
        (`soft_clip`) or "none".
      normalisation_min, normalisation_max: [4] the dataset's normalisation statistics.
      gradient_bound: in every predicted frame, each system's gradient with respect to its
        edge weights at most this many times the batch's median (`bounded_gradient`); 0:
        unbounded.
    State for `step`: the current normalised frame [batch, nodes, 4].
    """

    dims = 4

    def __init__(self, edge_types: int, simulation: str, type_values, interaction_strength: float,
                 frame_interval: float, steps_per_frame: int, box_size: float, max_force: float,
                 clip: str, normalisation_min, normalisation_max, gradient_bound: float = 0.0, **kwargs):
        super().__init__(**kwargs)
        if simulation not in SIMULATIONS:
            raise ValueError(f"simulation must be one of {', '.join(SIMULATIONS)}, got {simulation!r}")
        if clip not in CLIP_MODES:
            raise ValueError(f"clip must be one of {', '.join(CLIP_MODES)}, got {clip!r}")
        if len(type_values) != edge_types:
            raise ValueError(f"{len(type_values)} type values for {edge_types} edge types")
        if int(steps_per_frame) < 1:
            raise ValueError(f"steps_per_frame must be >= 1, got {steps_per_frame}")
        if not float(gradient_bound) >= 0:
            raise ValueError(f"gradient_bound must be >= 0, got {gradient_bound}")
        if len(normalisation_min) != self.dims or len(normalisation_max) != self.dims:
            raise ValueError(f"the simulation decoder needs {self.dims} normalisation values per "
                             f"statistic (x, y, vx, vy)")
        self.edge_types = int(edge_types)
        self.simulation = simulation
        self.type_values = [float(v) for v in type_values]
        self.interaction_strength = float(interaction_strength)
        self.frame_interval = float(frame_interval)
        self.steps_per_frame = int(steps_per_frame)
        self.box_size = float(box_size)
        self.max_force = float(max_force)
        self.clip = clip
        self.gradient_bound = float(gradient_bound)
        self.normalisation_min = [float(v) for v in normalisation_min]
        self.normalisation_max = [float(v) for v in normalisation_max]
        self._normaliser = Normaliser(self.normalisation_min, self.normalisation_max)
        # What training integrates with: compiled where the loop has steps to fuse
        # (benchmarks/sim_decoder.py, training samples/s against the plain loop: charged5 at
        # 100 steps a frame 3.3x and 5.0x in two runs beside other jobs, springs5 at 1 step 0.93x).
        self.integrate_in_training = (compiled_with_gradient(self.integrate) if self.steps_per_frame > 1
                                      else self.integrate)

    def _clip(self, forces):
        if self.clip == "hard":
            return tf.clip_by_value(forces, -self.max_force, self.max_force)
        if self.clip == "soft":
            return soft_clip(forces, self.max_force)
        return forces

    def _predict(self, inputs, edge_weights, training=False, edges=None):
        """One frame interval on normalised [batch, nodes, ..., 4] -> the same shape."""
        raw = self._normaliser.denormalise(inputs)
        if self.gradient_bound:
            edge_weights = bounded_gradient(edge_weights, self.gradient_bound)
        values = tf.constant(self.type_values, inputs.dtype)
        strengths = self.interaction_strength * tf.tensordot(
            tf.cast(edge_weights, inputs.dtype), values, [[2], [0]])          # [batch, edges]
        # Training on the complete graph integrates with `integrate_in_training` (compiled;
        # candidate edges are tensors of their own); evaluation and exports run the plain loop.
        if training and edges is None:
            positions, velocities = self.integrate_in_training(raw[..., :2], raw[..., 2:], strengths)
        else:
            positions, velocities = self.integrate(raw[..., :2], raw[..., 2:], strengths, edges)
        return self._normaliser.normalise(tf.concat([positions, velocities], axis=-1))

    def integrate(self, positions, velocities, strengths, edges=None):
        """``steps_per_frame`` leapfrog steps: (positions, velocities) [batch, nodes, ..., 2]
        in raw units after one frame interval, under per-edge ``strengths`` [batch, edges]."""
        dt = self.frame_interval / self.steps_per_frame

        def leapfrog_step(step, positions, velocities):
            forces = self._clip(pair_forces(positions, strengths, self.simulation, edges))
            velocities = velocities + dt * forces
            positions = positions + dt * velocities
            return (step + 1,) + reflect_at_walls(positions, velocities, self.box_size)

        _, positions, velocities = tf.while_loop(
            lambda step, *_: step < self.steps_per_frame, leapfrog_step,
            (tf.constant(0), positions, velocities), maximum_iterations=self.steps_per_frame)
        return positions, velocities

    def get_config(self):
        return {**super().get_config(), "edge_types": self.edge_types,
                "simulation": self.simulation, "type_values": self.type_values,
                "interaction_strength": self.interaction_strength,
                "frame_interval": self.frame_interval, "steps_per_frame": self.steps_per_frame,
                "box_size": self.box_size, "max_force": self.max_force, "clip": self.clip,
                "gradient_bound": self.gradient_bound, "normalisation_min": self.normalisation_min,
                "normalisation_max": self.normalisation_max}
