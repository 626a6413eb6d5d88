"""The NRI model: encoder -> edge-type sample -> decoder, trained as a VAE (paper sec. 3).

`NRI(config)` is a `keras.Model`: ``model.compile(optimizer=...)`` then ``model.fit(data)``
where ``data`` yields ``(trajectories, edge_labels)`` or ``trajectories``, each optionally
followed by the batch's candidate edges:
  trajectories [batch, nodes, frames, dims] float32, normalised;
  edge_labels [batch, edges] int32 true edge types (only scored, never trained on, unless
  the graph source is "true");
  candidates {"senders": [batch, nodes, degree] int32, optional "mask": [batch, nodes,
  degree], optional "interactions": [batch] true interactions per system}
  (`data_pipelines.datasets`, `nri_tf.graph.CandidateEdges`): the model then reasons over
  those edges only, edges = nodes * degree; without it over the complete graph,
  edges = nodes * (nodes - 1). The weights are the same either way.

The graph the decoder runs on comes from ``graph_source`` (`GRAPH_SOURCES`):
  learned  the encoder infers it (NRI; the default)
  full     every edge has the last edge type (NRI (full graph), paper appendix D.1.1)
  true     the labelled edge types (NRI (true graph))
  none     no graph: a predictor that ignores edge weights (the LSTM baselines)
With a fixed graph (full, true, none) there is no encoder and no KL term: the same
training and validation steps train the decoder alone, so the baselines' numbers compare
directly with NRI's.

Training step (reference train.py): logits = encoder(x); z = relaxed one-hot sample with
temperature ``temp`` (straight-through one-hot if ``hard``); the decoder predicts frames
1..T-1 with ground truth every ``prediction_steps`` frames (MLP decoder) or after a burn-in
of T - ``prediction_steps`` frames (RNN decoder); loss = Gaussian NLL + KL to the uniform
(or ``prior``) edge-type distribution. Validation (`test_step`) samples hard one-hot edge
types and, as the reference's validation does (so ``val_nll`` compares with its
``nll_val``), scores one-step predictions of the MLP decoder (ground truth fed at every
frame) and the RNN decoder's training schedule (burn-in, then ``prediction_steps`` frames
open loop).

Metrics: ``loss``, ``nll``, ``kl``, ``mse`` and, when labels are given, ``edge_accuracy``
(best permutation of exchangeable edge types over the epoch; none for the simulation
decoder, whose edge types mean what the labels mean; on candidate edges, over the
candidates) and, with candidates that count the true interactions, ``candidate_recall``
(the share of true interactions among the candidates). A fixed graph: ``loss`` (= ``nll``),
``nll``, ``mse``.
"""

from __future__ import annotations

import keras
import numpy as np
import tensorflow as tf

from nri_tf import graph, losses, metrics, sampling
from nri_tf.builders import decoder_from_config, encoder_from_config
from nri_tf.config import NRIConfig
from nri_tf.decoders import MarkovianDecoder, StepDecoder
from nri_tf.encoders import check_trajectories

GRAPH_SOURCES = ("learned", "full", "true", "none")


def unpack_batch(data):
    """(trajectories, edge_labels or None, candidates dict or None) of a dataset batch:
    trajectories, (trajectories, edge_labels), (trajectories, candidates) or
    (trajectories, edge_labels, candidates)."""
    if not isinstance(data, (tuple, list)):
        return data, None, None
    rest = list(data[1:])
    candidates = rest.pop() if rest and isinstance(rest[-1], dict) else None
    return data[0], (rest[0] if rest else None), candidates


@keras.saving.register_keras_serializable(package="nri_tf")
class NRI(keras.Model):
    """Neural Relational Inference model built from an `NRIConfig`.

    Args:
      config: an `NRIConfig` (or its ``to_dict()``); validated here.
      graph_source: where the decoder's graph comes from, one of `GRAPH_SOURCES`.
      decoder: a `StepDecoder` to train instead of ``decoder_from_config(config)`` (the
        LSTM baselines' `LSTMPredictor`).
    """

    def __init__(self, config: NRIConfig | dict, graph_source: str = "learned",
                 decoder: StepDecoder | None = None, **kwargs):
        super().__init__(**kwargs)
        if isinstance(config, dict):
            config = NRIConfig.from_dict(config)
        if graph_source not in GRAPH_SOURCES:
            raise ValueError(f"graph_source must be one of {', '.join(GRAPH_SOURCES)}, "
                             f"got {graph_source!r}")
        self.nri_config = config.validate()
        self.graph_source = graph_source
        self.learned = graph_source == "learned"
        self._custom_decoder = decoder is not None
        self.encoder = encoder_from_config(config) if self.learned else None
        self.decoder = decoder if decoder is not None else decoder_from_config(config)
        self.loss_tracker = keras.metrics.Mean(name="loss")
        self.nll_tracker = keras.metrics.Mean(name="nll")
        self.mse_tracker = keras.metrics.Mean(name="mse")
        self._trackers = [self.loss_tracker, self.nll_tracker, self.mse_tracker]
        if self.learned:
            self.sampling_seed = keras.random.SeedGenerator(config.seed, name="sampling_seed")
            self._log_prior = np.log(np.asarray(config.prior, np.float32)) if config.prior else None
            self.kl_tracker = keras.metrics.Mean(name="kl")
            self._trackers.insert(2, self.kl_tracker)
            # The simulation decoder gives every edge type a fixed physical meaning.
            self.edge_accuracy = metrics.EdgeAccuracy(config.edge_types, config.skip_first,
                                                      exchangeable=config.decoder != "sim",
                                                      name="edge_accuracy")
        self.candidate_recall = (metrics.CandidateRecall(name="candidate_recall")
                                 if self.learned and config.candidate_edges != "complete" else None)
        # Training's weight on the KL term as a function of the optimizer's iteration count
        # (``config.kl_warmup``; set with the optimizer, `trainers.loop.build_model`), or None
        # for the paper's full weight throughout.
        self.kl_weight = None

    # --- Keras plumbing -------------------------------------------------------------

    # Nodes of the dummy system a model with candidate edges is built on (`build_for_nodes`).
    CANDIDATE_BUILD_NODES = 8

    def build_for_nodes(self, num_nodes: int) -> None:
        """Creates all weights by calling the model on a zero batch of ``num_nodes`` nodes (at most
        `CANDIDATE_BUILD_NODES` with candidate edges: the weights do not depend on the node
        count, and the complete graph of a large system would not fit in memory)."""
        config = self.nri_config
        if config.candidate_edges != "complete":
            num_nodes = min(num_nodes, self.CANDIDATE_BUILD_NODES)
        self(tf.zeros([1, num_nodes, config.frames, config.dims]))

    def build(self, input_shape):
        """Creates all weights; they do not depend on the node count or (CNN) frame count."""
        if self.learned:
            self.encoder.build(input_shape)
        self.decoder.build(input_shape)

    def compile(self, *args, jit_compile="auto", **kwargs):
        """`keras.Model.compile`; ``jit_compile="auto"`` picks XLA where it measured faster.

        On a CPU-only machine without a distribution strategy, Keras' "auto" never uses
        XLA; here it does for the MLP encoder with the MLP or RNN decoder in float32, where
        XLA was faster or level on both 2-core machines measured (benchmarks/train_step.py
        --pairs all at paper sizes, samples/s without / with XLA; AMD EPYC: MLP/MLP 105-119 /
        100-125, MLP/RNN 62.8 / 65.5; Intel Xeon with AMX: MLP/MLP 199.8 / 204.1, MLP/RNN
        87.5 / 94.3). Not for the CNN encoder, where the machines disagree (CNN/MLP 60.5 /
        56.4 and 75.1 / 83.4, CNN/RNN 25.0 / 15.6 and 57.7 / 56.5), nor with
        ``precision="bfloat16"``, where XLA is slower on both (MLP/MLP 200.3 / 111.7 and
        254.8 / 175.0). Elsewhere "auto" is left to Keras. True/False are honoured as given.
        """
        if jit_compile == "auto" and self._xla_measured_faster():
            jit_compile = True
        super().compile(*args, jit_compile=jit_compile, **kwargs)

    def compile_from_config(self, config):
        """Re-compiles a loaded model with its saved compile settings (Keras skips custom compiles)."""
        self.compile(**keras.saving.deserialize_keras_object(config))
        if self.built:
            self.optimizer.build(self.trainable_variables)

    def _xla_measured_faster(self) -> bool:
        cpu_only = not [d for d in tf.config.list_physical_devices() if d.device_type != "CPU"]
        distributed = tf.distribute.has_strategy()
        config = self.nri_config
        return (cpu_only and not distributed and self.learned and config.encoder == "mlp"
                and config.decoder in ("mlp", "rnn") and config.precision == "float32")

    def _maybe_symbolic_build(self, iterator=None, data_batch=None):
        """Skips Keras' symbolic build when model and optimizer are already built.

        Under a tf.distribute strategy Keras 3 first all-reduces a distributed input batch
        to build the model symbolically; `MultiWorkerMirroredStrategy` cannot reduce the
        (trajectories, edges) tuple. The trainer builds model and optimizer explicitly, and
        then the symbolic build has nothing left to do.
        """
        if self.built and (self.optimizer is None or self.optimizer.built):
            return
        super()._maybe_symbolic_build(iterator=iterator, data_batch=data_batch)

    @property
    def metrics(self):
        return (self._trackers + ([self.edge_accuracy] if self.learned else [])
                + ([self.candidate_recall] if self.candidate_recall is not None else []))

    def get_config(self):
        config = {"name": self.name, "trainable": self.trainable, "config": self.nri_config.to_dict(),
                  "graph_source": self.graph_source}
        if self._custom_decoder:
            config["decoder"] = keras.saving.serialize_keras_object(self.decoder)
        return config

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        nri_config = NRIConfig.from_dict(config.pop("config"))
        if "decoder" in config:
            config["decoder"] = keras.saving.deserialize_keras_object(config["decoder"])
        return cls(nri_config, **config)

    # --- Forward passes -------------------------------------------------------------

    def _check_input(self, trajectories, what="trajectories", min_frames=2):
        check_trajectories(trajectories, self.nri_config.dims, min_frames=min_frames, what=what)

    def call(self, trajectories, edge_labels=None, training=False,
             prediction_steps: int | None = None, candidates=None):
        """Encodes the trajectories, samples edge types and reconstructs frames 1..T-1.

        Args:
          trajectories: [batch, nodes, frames, dims]; the encoder reads the first
            ``config.frames`` of them, the decoder reconstructs them all.
          edge_labels: [batch, edges] int true edge types; read only by the "true" graph
            source.
          training: relaxed (or straight-through if ``config.hard``) samples and dropout /
            batch statistics; otherwise hard one-hot samples from the categorical.
          prediction_steps: M of the decoder's rollout (see the decoders); default
            ``config.prediction_steps``; 1 gives one-step predictions.
          candidates: the batch's candidate edges (a dataset's dict or
            `nri_tf.graph.CandidateEdges`), or None for the complete graph.
        Returns:
          dict(predictions=[batch, nodes, frames - 1, dims]) and, for the learned graph,
          logits=[batch, edges, edge_types] and edge_probs=softmax of the logits.
        """
        self._check_input(trajectories)
        config = self.nri_config
        edges = _candidate_edges(candidates)
        steps = config.prediction_steps if prediction_steps is None else prediction_steps
        if not self.learned:
            edge_weights = self.fixed_edge_weights(trajectories, edge_labels, edges)
            return {"predictions": self.decoder(trajectories, edge_weights, prediction_steps=steps,
                                                training=training, edges=edges)}
        logits = self.encoder(trajectories[:, :, :config.frames], training=training, edges=edges)
        seed = self.sampling_seed.next()
        if training:
            edge_samples = sampling.sample_edges(logits, config.temp, config.hard, seed)
        else:
            edge_samples = sampling.straight_through_one_hot(logits, config.temp, seed)
        if config.symmetric:
            edge_samples = graph.share_between_directions(edge_samples, edges)
        predictions = self.decoder(trajectories, edge_samples, prediction_steps=steps,
                                   training=training, edges=edges)
        return {"logits": logits, "edge_probs": tf.nn.softmax(logits, axis=-1),
                "predictions": predictions}

    def fixed_edge_weights(self, trajectories, edge_labels=None, edges=None):
        """The one-hot edge weights [batch, edges, edge_types] of a fixed graph source.

        Args:
          trajectories: [batch, nodes, frames, dims] (only its batch and node counts).
          edge_labels: [batch, edges] int true edge types ("true" only).
          edges: `nri_tf.graph.CandidateEdges`, or None for the complete graph.
        Returns:
          "full": every edge the last edge type; "true": the labels; "none": None.
        """
        if self.graph_source == "none":
            return None
        edge_types = self.nri_config.edge_types
        if self.graph_source == "true":
            if edge_labels is None:
                raise ValueError("the true-graph model needs the edge labels")
            return tf.one_hot(tf.cast(edge_labels, tf.int32), edge_types, dtype=trajectories.dtype)
        num_nodes = tf.shape(trajectories)[1]
        per_node = num_nodes - 1 if edges is None else tf.shape(edges.senders)[2]
        last_type = tf.fill([tf.shape(trajectories)[0], num_nodes * per_node], edge_types - 1)
        return tf.one_hot(last_type, edge_types, dtype=trajectories.dtype)

    def encode(self, trajectories, candidates=None, training: bool = False):
        """Edge logits [batch, edges, edge_types] of [batch, nodes, frames, dims] on the
        complete graph or on ``candidates`` (see `call`); ``training``: dropout / batch
        statistics as in training."""
        self._check_input(trajectories, min_frames=1)
        return self.encoder(trajectories, training=training, edges=_candidate_edges(candidates))

    def predict_future(self, context, steps: int, dynamic_graph: bool = False, edge_labels=None,
                       candidates=None, edge_types=None, recorded=None):
        """Predicts the ``steps`` frames after ``context``.

        The encoder infers the graph (argmax one-hot) from the last ``config.frames`` frames
        of the context (a fixed graph source gives it instead); the decoder starts from the
        context's last frame (the RNN decoder first runs over the whole context to warm up
        its hidden state) and feeds back its own predictions (`StepDecoder.rollout`).

        Args:
          context: [batch, nodes, frames_ctx, dims]; the MLP encoder needs
            frames_ctx >= config.frames.
          steps: frames to predict (>= 1).
          dynamic_graph: re-infer the graph before every predicted frame from the last
            ``config.frames`` frames seen so far, context and predictions (paper sec. 5.2;
            ``recorded`` gives the reference's window instead). Learned graph only.
          edge_labels: [batch, edges] int true edge types, for the "true" graph source.
          candidates: the candidate edges (a dataset batch's dict), or None for the complete
            graph.
          edge_types: [batch, edges] int, a learned model's graph given instead of inferred
            (e.g. refined against the decoder: `nri_tf.refinement`); not with dynamic_graph.
          recorded: with dynamic_graph, [batch, nodes, frames_ctx + max(steps - 2, 0) (or
            more), dims] the recorded system from the context's first frame on: the window
            slides over these frames instead of over the predictions, ending one frame
            before the decoder's input frame as in the reference code's test (an oracle:
            the graph of prediction s >= 3 is inferred from recorded frames that include
            the targets of predictions 1..s-2; predictions 1 and 2 use the context's).
        Returns:
          [batch, nodes, steps, dims].
        """
        self._check_input(context, what="context", min_frames=1)
        if edge_types is not None and (dynamic_graph or not self.learned):
            raise ValueError("edge_types replace a learned model's static graph; this call has "
                             + ("dynamic_graph" if dynamic_graph else f"the {self.graph_source!r} graph"))
        window = self.nri_config.frames
        frames = context.shape[2]
        if self.learned and self.nri_config.encoder == "mlp" and frames is not None and frames < window:
            raise ValueError(f"the MLP encoder reads {window} frames but the context has only "
                             f"{frames}; pass at least {window} context frames")
        if dynamic_graph and not self.learned:
            raise ValueError(f"dynamic_graph re-infers a learned graph; this model's graph is "
                             f"{self.graph_source!r}")
        if recorded is not None:
            if not dynamic_graph:
                raise ValueError("recorded frames are the dynamic graph's window; pass dynamic_graph=True")
            self._check_input(recorded, what="recorded", min_frames=1)
            beyond = max(int(steps) - 2, 0)
            if frames is not None and recorded.shape[2] < frames + beyond:
                raise ValueError(f"recorded has {recorded.shape[2]} frames; the window of the last of "
                                 f"{steps} predictions needs the {frames} context frames and "
                                 f"{beyond} more")
            recorded = tf.convert_to_tensor(recorded, dtype=self.compute_dtype)
        if int(steps) < 1:
            raise ValueError(f"steps must be >= 1, got {steps}")
        context = tf.convert_to_tensor(context, dtype=self.compute_dtype)
        if isinstance(candidates, graph.CandidateEdges):
            candidates = {"senders": candidates.senders,
                          **({} if candidates.mask is None else {"mask": candidates.mask})}
        return self._predict_future(context, int(steps), bool(dynamic_graph), edge_labels, candidates,
                                    edge_types, recorded)

    def _infer_edges(self, history, edges=None):
        """Argmax one-hot edge types [batch, edges, edge_types] from the last
        ``config.frames`` frames of ``history`` [batch, nodes, frames, dims]."""
        return sampling.argmax_one_hot(self.encoder(history[:, :, -self.nri_config.frames:],
                                                    training=False, edges=edges))

    @tf.function
    def _predict_future(self, context, steps, dynamic_graph, edge_labels, candidates, edge_types=None,
                        recorded=None):
        # The candidates travel as a dict: tf.function traces nests of tensors, not objects.
        edges = _candidate_edges(candidates)
        if edge_types is not None:
            edge_weights = tf.one_hot(tf.cast(edge_types, tf.int32), self.nri_config.edge_types,
                                      dtype=context.dtype)
        elif self.learned:
            edge_weights = self._infer_edges(context, edges)
        else:
            edge_weights = self.fixed_edge_weights(context, edge_labels, edges)
        state = self.decoder.burn_in(context, edge_weights, edges=edges)
        infer = None
        if dynamic_graph and recorded is None:
            infer = lambda history: self._infer_edges(history, edges)
        elif dynamic_graph:
            # The reference's window: it ends one frame before the decoder's input frame (the
            # history's last), and no earlier than the context does.
            context_frames = tf.shape(context)[2]
            infer = lambda history: self._infer_edges(
                recorded[:, :, :tf.maximum(tf.shape(history)[2] - 1, context_frames)], edges)
        predictions, _ = self.decoder.rollout(state, edge_weights, steps, infer_edge_weights=infer,
                                              history=context, edges=edges)
        return predictions

    # --- Training and evaluation ----------------------------------------------------

    def _loss_terms(self, trajectories, outputs, edges=None):
        """(nll, kl) of one batch, kl None for a fixed graph; see `nri_tf.losses`."""
        nll = losses.nll_gaussian(outputs["predictions"], trajectories[:, :, 1:], self.nri_config.var)
        if not self.learned:
            return nll, None
        if self._log_prior is None:
            kl = losses.kl_categorical_uniform(outputs["edge_probs"], edges=edges)
        else:
            kl = losses.kl_categorical(outputs["edge_probs"], self._log_prior, edges=edges)
        return nll, kl

    @staticmethod
    def _total_loss(nll, kl):
        return nll if kl is None else nll + kl

    def _update_metrics(self, trajectories, edge_labels, outputs, nll, kl, candidates=None):
        batch = tf.shape(trajectories)[0]
        target = tf.cast(trajectories[:, :, 1:], outputs["predictions"].dtype)
        mse = tf.reduce_mean(tf.square(outputs["predictions"] - target))
        values = {"loss": self._total_loss(nll, kl), "nll": nll, "kl": kl, "mse": mse}
        for tracker in self._trackers:
            tracker.update_state(values[tracker.name], sample_weight=batch)
        logs = {tracker.name: tracker.result() for tracker in self._trackers}
        if self.learned and edge_labels is not None:
            mask = graph.edge_mask(_candidate_edges(candidates))
            self.edge_accuracy.update_state(outputs["logits"], edge_labels, mask=mask)
            logs["edge_accuracy"] = self.edge_accuracy.result()
            if self.candidate_recall is not None and candidates is not None \
                    and "interactions" in candidates:
                self.candidate_recall.update_state(edge_labels, candidates["interactions"], mask)
                logs["candidate_recall"] = self.candidate_recall.result()
        if isinstance(tf.distribute.get_strategy(), tf.distribute.MultiWorkerMirroredStrategy):
            # Keras 3 reduces each log over workers with `axis=0`, which fails on scalars.
            logs = {name: tf.reshape(value, [1]) for name, value in logs.items()}
        return logs

    def train_step(self, data):
        trajectories, edge_labels, candidates = unpack_batch(data)
        with tf.GradientTape() as tape:
            outputs = self(trajectories, edge_labels, training=True, candidates=candidates)
            nll, kl = self._loss_terms(trajectories, outputs, _candidate_edges(candidates))
            # Gradients are summed over replicas: scale each replica's mean loss down.
            weighted_kl = kl if kl is None or self.kl_weight is None else \
                kl * tf.cast(self.kl_weight(self.optimizer.iterations), kl.dtype)
            loss = self._total_loss(nll, weighted_kl) / tf.distribute.get_strategy().num_replicas_in_sync
            loss = self.optimizer.scale_loss(loss)
        gradients = tape.gradient(loss, self.trainable_variables)
        self.optimizer.apply(gradients, self.trainable_variables)
        return self._update_metrics(trajectories, edge_labels, outputs, nll, kl, candidates)

    @property
    def test_prediction_steps(self) -> int:
        """The decoder's M at test time (val_nll, the test nll): 1 for Markovian decoders
        (one-step predictions), the training's ``prediction_steps`` for the RNN decoder."""
        return 1 if isinstance(self.decoder, MarkovianDecoder) else self.nri_config.prediction_steps

    def nll_on_graph(self, trajectories, edge_types, candidates=None, training: bool = False) -> tf.Tensor:
        """The decoder's Gaussian nll of each system on a given graph, as val_nll scores it
        (``training``: as the training nll does: ground truth fed every ``prediction_steps``
        frames, dropout on).

        Args:
          trajectories: [batch, nodes, frames, dims].
          edge_types: [batch, edges] int, the model's type of every edge.
          candidates: the batch's candidate edges, or None for the complete graph.
          training: score as training does (above).
        Returns:
          [batch]: squared errors / (2 var) of the predictions of frames 1..T-1, summed over
          the system's nodes, frames and dims (divided by the node count: val_nll's per node).
        """
        weights = tf.one_hot(tf.cast(edge_types, tf.int32), self.nri_config.edge_types, dtype=trajectories.dtype)
        steps = self.nri_config.prediction_steps if training else self.test_prediction_steps
        predictions = self.decoder(trajectories, weights, prediction_steps=steps, training=training,
                                   edges=_candidate_edges(candidates))
        errors = tf.square(tf.cast(predictions, tf.float32) - tf.cast(trajectories[:, :, 1:], tf.float32))
        return tf.reduce_sum(errors, axis=[1, 2, 3]) / (2.0 * self.nri_config.var)

    def test_step(self, data):
        trajectories, edge_labels, candidates = unpack_batch(data)
        outputs = self(trajectories, edge_labels, training=False, prediction_steps=self.test_prediction_steps,
                       candidates=candidates)
        nll, kl = self._loss_terms(trajectories, outputs, _candidate_edges(candidates))
        return self._update_metrics(trajectories, edge_labels, outputs, nll, kl, candidates)


def _candidate_edges(candidates) -> graph.CandidateEdges | None:
    """`nri_tf.graph.CandidateEdges` from a batch's candidates dict (or as given; None stays None)."""
    if candidates is None or isinstance(candidates, graph.CandidateEdges):
        return candidates
    return graph.CandidateEdges.from_batch(candidates)
