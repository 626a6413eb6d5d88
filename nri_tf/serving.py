"""The servable form of a trained NRI model: a `tf.Module` with TF Serving signatures.

Signature names, input and output names are a stable interface (docs/serving.md):

  serving_default, infer_graph   the encoder
    inputs:  trajectories  [batch, nodes, frames, dims] float32, raw (physical) units
    outputs: edge_probs    [batch, edges, edge_types] float32, softmax of the edge logits
             edge_types    [batch, edges] int32, the most likely type of each edge
             receivers     receiver node of each edge: [edges] int32 on the complete
                           graph, [batch, edges] for a model trained on candidate edges
             senders       sender node of each edge, the same shape as receivers
  predict                        the predictor (encoder infers the graph, decoder rolls out)
    inputs:  trajectories  [batch, nodes, frames, dims] float32, raw units (the context)
             steps         [] int32 scalar, frames to predict (1..max_steps, fixed at export)
    outputs: predictions   [batch, nodes, steps, dims] float32, raw units
  infer_graph_on_candidates      the encoder on the caller's candidate edges
    inputs:  trajectories  as infer_graph
             senders       [batch, nodes, degree] int32: slot s of receiver i is the edge
                           (i, senders[b, i, s]); -1 marks an empty slot (padding)
    outputs: as infer_graph with edges = nodes * degree (receivers, senders [batch, edges]);
             an empty slot has sender -1, edge type -1 and probabilities 0
  predict_on_candidates          the predictor on the caller's candidate edges
    inputs:  trajectories, senders (as above), steps; outputs: as predict

On the complete graph edges = nodes * (nodes - 1) in the receiver-major order of
`nri_tf.graph`. A model trained on knn or radius candidates (`NRIConfig.candidate_edges`)
chooses them in `infer_graph` and `predict` by the same rule, from the first frame the
encoder reads; one trained on the data's own edge lists ("given") has no rule, so its
serving_default is infer_graph_on_candidates and it offers no infer_graph / predict. The
*_on_candidates signatures exist for every model but one with ``triangles`` (its encoder
reasons over the complete graph only): the weights do not depend on the edges, so a model trained
on small complete graphs can be applied to large systems' candidates. The node count may
differ per request and from the training data (the model is node-count agnostic). Frames:
the MLP encoder reads exactly ``config.frames`` frames (`infer_graph`) and `predict` infers
the graph from the last ``config.frames`` frames of a context at least that long; the CNN
encoder reads any number of frames >= `CNN_MIN_FRAMES` (`predict`: the last
``config.frames`` of them at most), as `NRI.predict_future` does. The MLP decoder rolls
out from the context's last frame; the RNN decoder first runs over the whole context.
The graph is inferred once per request (static graph).

Inside the graph, requests are validated before anything else runs (`tf.debugging.Assert`,
so TF Serving answers INVALID_ARGUMENT with the message) and scaled with the training
split's statistics (`data_pipelines.normalisation.Normaliser`); predictions are scaled back.
Values that, scaled, lie beyond `SERVING_MAX_SCALED` (a million times the training
data's range) are refused, and so is an answer that is not finite (NaN or Inf edge
probabilities or predictions): the server never returns NaN as if it were a result.
Candidate senders must name other nodes of the system (0..nodes-1, not the receiver),
each at most once per receiver. The inputs are declared with unknown shape so that the
in-graph checks, not a bare placeholder shape mismatch, name a wrong rank.

Building blocks:
  `ServingModule`        the tf.Module: encoder and decoder, the tf.functions, assets
  `ServingModule.signatures`   {signature name: concrete function} for `tf.saved_model.save`
"""

from __future__ import annotations

import tensorflow as tf

from data_pipelines.candidate_selection import POSITION_FEATURES, CandidateSpec, select_senders
from nri_tf import graph, sampling
from nri_tf.config import CNN_MIN_FRAMES, SERVING_MAX_SCALED, SERVING_MAX_STEPS, NRIConfig

# Signature, input and output names: the documented serving interface.
SIGNATURE_DEFAULT = "serving_default"
SIGNATURE_INFER_GRAPH = "infer_graph"
SIGNATURE_PREDICT = "predict"
SIGNATURE_INFER_GRAPH_ON_CANDIDATES = "infer_graph_on_candidates"
SIGNATURE_PREDICT_ON_CANDIDATES = "predict_on_candidates"
INPUT_TRAJECTORIES = "trajectories"
INPUT_STEPS = "steps"
INPUT_SENDERS = "senders"
OUTPUT_EDGE_PROBS = "edge_probs"
OUTPUT_EDGE_TYPES = "edge_types"
OUTPUT_RECEIVERS = "receivers"
OUTPUT_SENDERS = "senders"
OUTPUT_PREDICTIONS = "predictions"

# Shapes are left unknown (even the rank) so that the in-graph checks see every request.
_TRAJECTORIES_SPEC = tf.TensorSpec(shape=None, dtype=tf.float32, name=INPUT_TRAJECTORIES)
_STEPS_SPEC = tf.TensorSpec(shape=None, dtype=tf.int32, name=INPUT_STEPS)
_SENDERS_SPEC = tf.TensorSpec(shape=None, dtype=tf.int32, name=INPUT_SENDERS)


class ServingModule(tf.Module):
    """A trained `NRI` model wrapped for TF Serving: raw units in, raw units out.

    Args:
      model: a built `nri_tf.model.NRI` with the weights to serve. Its encoder and
        decoder are tracked (saving this module saves their variables); its optimizer,
        metrics and sampling seed are not part of the servable.
      normaliser: the training dataset's `data_pipelines.normalisation.Normaliser` ([dims]
        min/max); its statistics become constants of the graph.
      assets: {attribute name: file path} saved with the model as `tf.saved_model.Asset`s
        (copied into the SavedModel's ``assets/`` folder), e.g. the run's config.json.
      max_steps: the most frames one `predict` request may ask for (a constant of the graph).
    """

    def __init__(self, model, normaliser, assets: dict[str, str] | None = None,
                 max_steps: int = SERVING_MAX_STEPS):
        super().__init__(name="nri_serving")
        config: NRIConfig = model.nri_config
        if normaliser.dims != config.dims:
            raise ValueError(f"the normalisation statistics have {normaliser.dims} dims but the "
                             f"model was trained on dims={config.dims}")
        self.encoder = model.encoder
        self.decoder = model.decoder
        self._config = config
        self._normaliser = normaliser
        self._max_steps = int(max_steps)
        for attribute, path in (assets or {}).items():
            setattr(self, attribute, tf.saved_model.Asset(path))

    # --- the serving functions -------------------------------------------------------

    @tf.function(input_signature=[_TRAJECTORIES_SPEC])
    def infer_graph(self, trajectories):
        """Edge-type probabilities of raw trajectories, on the complete graph or on the
        candidates the training's rule chooses.

        Args:
          trajectories: [batch, nodes, frames, dims] float32, raw units.
        Returns:
          {"edge_probs": [batch, edges, edge_types] float32, "edge_types": [batch, edges]
           int32, "receivers", "senders": [edges] int32 (complete graph) or [batch, edges]
           (candidates)}.
        """
        x = self._checked_trajectories(trajectories, for_prediction=False)
        return self._graph_outputs(x, self._chosen_candidates(x))

    @tf.function(input_signature=[_TRAJECTORIES_SPEC, _SENDERS_SPEC])
    def infer_graph_on_candidates(self, trajectories, senders):
        """Edge-type probabilities of raw trajectories on the caller's candidate edges.

        Args:
          trajectories: [batch, nodes, frames, dims] float32, raw units.
          senders: [batch, nodes, degree] int32, -1 for an empty slot.
        Returns:
          as `infer_graph`, edges = nodes * degree, receivers and senders [batch, edges].
        """
        x = self._checked_trajectories(trajectories, for_prediction=False)
        return self._graph_outputs(x, self._checked_candidates(senders, x))

    @tf.function(input_signature=[_TRAJECTORIES_SPEC, _STEPS_SPEC])
    def predict(self, trajectories, steps):
        """Future frames after raw context trajectories (static graph inferred once).

        Args:
          trajectories: [batch, nodes, frames, dims] float32, raw units: the context.
          steps: [] int32, frames to predict (1..max_steps).
        Returns:
          {"predictions": [batch, nodes, steps, dims] float32, raw units}.
        """
        x = self._checked_trajectories(trajectories, for_prediction=True)
        return self._predictions(x, self._checked_steps(steps), self._chosen_candidates(self._window(x)))

    @tf.function(input_signature=[_TRAJECTORIES_SPEC, _SENDERS_SPEC, _STEPS_SPEC])
    def predict_on_candidates(self, trajectories, senders, steps):
        """`predict` on the caller's candidate edges ([batch, nodes, degree] int32, -1 for
        an empty slot)."""
        x = self._checked_trajectories(trajectories, for_prediction=True)
        edges = self._checked_candidates(senders, x)
        return self._predictions(x, self._checked_steps(steps), edges)

    def signatures(self) -> dict:
        """{signature name: concrete function}: serving_default = infer_graph (or
        infer_graph_on_candidates for "given" candidates), predict where the model chooses its
        own candidates, and the *_on_candidates signatures but with ``triangles`` (see the
        module docstring)."""
        signatures = {}
        if self._config.candidate_edges != "given":
            infer_graph = self.infer_graph.get_concrete_function()
            signatures.update({SIGNATURE_DEFAULT: infer_graph, SIGNATURE_INFER_GRAPH: infer_graph,
                               SIGNATURE_PREDICT: self.predict.get_concrete_function()})
        if self._config.triangles:
            return signatures
        on_candidates = self.infer_graph_on_candidates.get_concrete_function()
        signatures.setdefault(SIGNATURE_DEFAULT, on_candidates)
        signatures.update({SIGNATURE_INFER_GRAPH_ON_CANDIDATES: on_candidates,
                           SIGNATURE_PREDICT_ON_CANDIDATES: self.predict_on_candidates.get_concrete_function()})
        return signatures

    def _graph_outputs(self, x, edges):
        """The encoder's answer on [batch, nodes, frames, dims] raw trajectories and
        ``edges`` (`CandidateEdges`, or None for the complete graph)."""
        logits = self.encoder(self._normalised(x), training=False, edges=edges)
        # exp(logits - logsumexp), not tf.nn.softmax: oneDNN's softmax costs ~80 us on a
        # batch-1 request (profiled), the plain ops ~15 us.
        probs = tf.exp(logits - tf.reduce_logsumexp(logits, axis=-1, keepdims=True))
        edge_types = tf.argmax(logits, axis=-1, output_type=tf.int32)
        if edges is None:
            receivers, senders = graph.edge_indices(tf.shape(x)[1])
        else:
            shape = tf.shape(edges.senders)
            senders = tf.reshape(edges.senders, [shape[0], -1])                      # [batch, edges]
            receivers = tf.broadcast_to(tf.range(shape[1])[None, :, None], shape)
            receivers = tf.reshape(receivers, [shape[0], -1])
            real = graph.edge_mask(edges)
            if real is not None:
                probs *= real[..., None]
                edge_types = tf.where(real > 0, edge_types, -1)
                senders = tf.where(real > 0, senders, -1)
        return {OUTPUT_EDGE_PROBS: _checked_finite(probs, "edge probabilities"),
                OUTPUT_EDGE_TYPES: edge_types,
                OUTPUT_RECEIVERS: receivers,
                OUTPUT_SENDERS: senders}

    def _predictions(self, x, steps, edges):
        """The graph inferred from the window of context ``x`` (raw units), then ``steps``
        frames rolled out on it: {"predictions": [batch, nodes, steps, dims]}."""
        context = self._normalised(x)
        window = self._window(context)
        edge_weights = sampling.argmax_one_hot(self.encoder(window, training=False, edges=edges))
        state = self.decoder.burn_in(context, edge_weights, edges=edges)
        predictions, _ = self.decoder.rollout(state, edge_weights, steps, edges=edges)
        predictions = self._normaliser.denormalise(predictions)
        return {OUTPUT_PREDICTIONS: _checked_finite(predictions, "predictions")}

    def _window(self, context):
        """The frames of a context [batch, nodes, frames, dims] the encoder reads: the last
        config.frames (static for the MLP encoder)."""
        window = context[:, :, -self._config.frames:]
        if self._config.encoder == "mlp":
            window = tf.ensure_shape(window, [None, None, self._config.frames, self._config.dims])
        return window

    def _chosen_candidates(self, window):
        """The training's candidate edges of raw trajectories [batch, nodes, frames, dims]:
        None (complete graph), or knn / radius chosen on the first frame's positions as the
        training data pipeline does (`data_pipelines.candidate_selection.select_senders`)."""
        config = self._config
        if config.candidate_edges == "complete":
            return None
        if config.candidate_edges == "given":
            raise ValueError("a model trained on the data's own edge lists (candidate_edges='given') "
                             "has no rule to choose candidates: call infer_graph_on_candidates / "
                             "predict_on_candidates with the senders")
        spec = CandidateSpec(config.candidate_edges, config.candidate_k, config.candidate_radius)
        positions = window[:, :, 0, :len(POSITION_FEATURES)]                        # [batch, nodes, 2]
        num_nodes = tf.shape(window)[1]
        degree = tf.minimum(spec.k, num_nodes - 1)

        def one_system(system_positions):
            senders, mask = select_senders(spec, system_positions, num_nodes, degree)
            return senders, tf.ones_like(senders, tf.float32) if mask is None else mask

        senders, mask = tf.map_fn(one_system, positions, fn_output_signature=(
            tf.TensorSpec([None, None], tf.int32), tf.TensorSpec([None, None], tf.float32)))
        return graph.CandidateEdges(senders, mask if spec.method == "radius" else None)

    # --- helpers (traced into the functions above) ------------------------------------

    def _checked_trajectories(self, trajectories, for_prediction: bool):
        """Validates a request's trajectories in the graph; returns them with static rank 4.

        Checks: rank 4; dims == config.dims, nodes >= 2 and the frame count (MLP encoder:
        exactly config.frames, or at least that many to predict from; CNN encoder: at least
        `CNN_MIN_FRAMES`); every value finite. Only the first failing kind is reported: each
        check passes vacuously when an earlier one fails (a rank-3 request reports its
        rank, not a missing dim), so the message does not depend on the order in which
        the runtime happens to run the assertions.

        Grappler assumes that assertions hold: a `tf.ensure_shape` here would let it infer
        rank 4 for the *input*, fold the rank check away and fail later with an opaque
        slicing error. The static shape is therefore set by a `tf.reshape`, whose output
        shape tells nothing about its input.

        Args:
          trajectories: float32 tensor of unknown shape.
          for_prediction: a `predict` context (the MLP encoder then reads its last
            config.frames frames) rather than an `infer_graph` input.
        Returns:
          the same values, [batch, nodes, frames, dims] with static dims (and frames for
          the MLP encoder's `infer_graph`).
        """
        config = self._config
        rank = tf.rank(trajectories)
        rank_ok = tf.equal(rank, 4)
        # [batch, nodes, frames, dims] of a rank-4 tensor; zeros stand in for missing axes.
        shape = tf.concat([tf.shape(trajectories), tf.zeros([4], tf.int32)], axis=0)
        batch, nodes, frames, dims = shape[0], shape[1], shape[2], shape[3]
        if config.encoder == "mlp" and not for_prediction:
            frames_ok = tf.equal(frames, config.frames)
            frames_problem = (f"the MLP encoder reads exactly {config.frames} frames "
                              f"(config.frames); slice the trajectories to {config.frames} frames; got frames =")
        elif config.encoder == "mlp":
            frames_ok = tf.greater_equal(frames, config.frames)
            frames_problem = (f"the MLP encoder infers the graph from the last {config.frames} frames "
                              f"(config.frames): pass at least {config.frames} context frames; got frames =")
        else:
            frames_ok = tf.greater_equal(frames, CNN_MIN_FRAMES)
            frames_problem = f"the CNN encoder needs at least {CNN_MIN_FRAMES} frames; got frames ="
        dims_ok, nodes_ok = tf.equal(dims, config.dims), tf.greater_equal(nodes, 2)
        shape_ok = tf.reduce_all(tf.stack([rank_ok, dims_ok, nodes_ok, frames_ok]))
        wrong_rank = tf.logical_not(rank_ok)
        checks = [
            tf.debugging.Assert(
                rank_ok, ["trajectories must be [batch, nodes, frames, dims] (rank 4); got rank", rank]),
            tf.debugging.Assert(
                tf.logical_or(wrong_rank, dims_ok),
                [f"trajectories must have dims={config.dims} features per frame (config.dims); got dims =", dims]),
            tf.debugging.Assert(
                tf.logical_or(wrong_rank, nodes_ok),
                ["trajectories need at least 2 nodes to have edges; got nodes =", nodes]),
            tf.debugging.Assert(tf.logical_or(wrong_rank, frames_ok), [frames_problem, frames]),
            tf.debugging.Assert(
                tf.logical_or(tf.logical_not(shape_ok), tf.reduce_all(tf.math.is_finite(trajectories))),
                ["trajectories contain NaN or Inf values"]),
        ]
        with tf.control_dependencies(checks):
            static_frames = config.frames if config.encoder == "mlp" and not for_prediction else frames
            return tf.reshape(trajectories, tf.stack([batch, nodes, static_frames, config.dims]))

    def _checked_candidates(self, senders, trajectories):
        """Validates a request's candidate senders against its trajectories [batch, nodes,
        frames, dims] in the graph; returns `CandidateEdges` (an empty slot, -1, becomes a
        padding slot: the receiver itself with mask 0).

        Checks: rank 3; batch and nodes as the trajectories'; at least one slot; every
        sender in -1..nodes-1 and not the receiver; no sender twice for one receiver. As
        in `_checked_trajectories`, later checks pass vacuously when the shape is wrong.
        """
        shape = tf.concat([tf.shape(senders), tf.zeros([3], tf.int32)], axis=0)
        batch, nodes, degree = shape[0], shape[1], shape[2]
        want_batch, want_nodes = tf.shape(trajectories)[0], tf.shape(trajectories)[1]
        rank = tf.rank(senders)
        shape_ok = tf.reduce_all(tf.stack([tf.equal(rank, 3), tf.equal(batch, want_batch),
                                           tf.equal(nodes, want_nodes), degree >= 1]))
        # The value checks read a [batch, nodes, degree] tensor, empty when the shape is wrong
        # (an op on a wrongly shaped input would fail with its own, opaque message).
        safe = tf.cond(shape_ok, lambda: tf.reshape(senders, tf.stack([batch, nodes, degree])),
                       lambda: tf.zeros([0, 0, 1], tf.int32))
        receivers = tf.range(tf.shape(safe)[1])[None, :, None]
        ordered = tf.sort(safe, axis=-1)
        repeated = tf.logical_and(ordered[..., 1:] == ordered[..., :-1], ordered[..., 1:] >= 0)
        checks = [
            tf.debugging.Assert(shape_ok, [
                "senders must be [batch, nodes, degree] (rank 3, degree >= 1) with the batch and nodes of the "
                "trajectories; got shape", tf.shape(senders), "for trajectories of shape",
                tf.shape(trajectories)]),
            tf.debugging.Assert(tf.reduce_all((safe >= -1) & (safe < nodes)), [
                "senders must be node indices 0..nodes-1, or -1 for an empty slot; got values from",
                tf.reduce_min(safe), "to", tf.reduce_max(safe), "with nodes =", nodes]),
            tf.debugging.Assert(tf.reduce_all(tf.not_equal(safe, receivers)), [
                "senders must not name the receiver itself (no self-edges; -1 marks an empty slot)"]),
            tf.debugging.Assert(tf.logical_not(tf.reduce_any(repeated)), [
                "senders must name each node at most once per receiver (duplicate candidate edges)"]),
        ]
        with tf.control_dependencies(checks):
            safe = tf.identity(safe)
        real = safe >= 0
        return graph.CandidateEdges(tf.where(real, safe, tf.broadcast_to(receivers, tf.shape(safe))),
                                    tf.cast(real, tf.float32))

    def _normalised(self, x):
        """[batch, nodes, frames, dims] raw -> scaled, refusing values whose scaled
        magnitude exceeds `SERVING_MAX_SCALED` (or overflows float32)."""
        scaled = self._normaliser.normalise(x)
        check = tf.debugging.Assert(
            tf.reduce_all(tf.abs(scaled) <= SERVING_MAX_SCALED),
            [f"trajectories are out of range: scaled by the training statistics (training data "
             f"in [-1, 1]) they reach beyond {SERVING_MAX_SCALED:g}"])
        with tf.control_dependencies([check]):
            return tf.identity(scaled)

    def _checked_steps(self, steps):
        """Validates ``steps`` (an int32 scalar in 1..max_steps) in the graph; returns it
        as a scalar.

        As in `_checked_trajectories`, the value check passes vacuously for a non-scalar.
        """
        rank = tf.rank(steps)
        scalar = tf.equal(rank, 0)
        not_scalar = tf.logical_not(scalar)
        checks = [
            tf.debugging.Assert(scalar, ["steps must be a scalar (one step count per request); got rank", rank]),
            tf.debugging.Assert(tf.logical_or(not_scalar, tf.reduce_min(steps) >= 1),
                                ["steps must be >= 1; got steps =", steps]),
            tf.debugging.Assert(tf.logical_or(not_scalar, tf.reduce_max(steps) <= self._max_steps),
                                [f"steps must be <= {self._max_steps} (fixed at export by --max-steps); "
                                 "got steps =", steps]),
        ]
        with tf.control_dependencies(checks):
            return tf.reshape(steps, [])


def _checked_finite(values, what: str):
    """``values`` once asserted (in the graph) to be all finite; else an error naming ``what``."""
    check = tf.debugging.Assert(
        tf.reduce_all(tf.math.is_finite(values)),
        [f"the {what} of the model are not finite for this request (inputs far outside the "
         "training data?)"])
    with tf.control_dependencies([check]):
        return tf.identity(values)
