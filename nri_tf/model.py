"""The NRI model: encoder -> edge-type sample -> decoder, trained as a VAE (paper sec. 3).

`NRI(config)` is a `keras.Model`: ``model.compile(optimizer=...)`` then ``model.fit(data)``
where ``data`` yields ``(trajectories, edges)`` or ``trajectories``:
  trajectories [batch, nodes, frames, dims] float32, normalised;
  edges [batch, edges] int32 true edge types (only scored, never trained on).

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
decoder, whose edge types mean what the labels mean).
"""

from __future__ import annotations

import keras
import numpy as np
import tensorflow as tf

from nri_tf import graph, losses, metrics, sampling
from nri_tf.builders import decoder_from_config, encoder_from_config
from nri_tf.config import NRIConfig
from nri_tf.decoders import MarkovianDecoder
from nri_tf.encoders import check_trajectories


@keras.saving.register_keras_serializable(package="nri_tf")
class NRI(keras.Model):
    """Neural Relational Inference model built from an `NRIConfig`.

    Args:
      config: an `NRIConfig` (or its ``to_dict()``); validated here.
    """

    def __init__(self, config: NRIConfig | dict, **kwargs):
        super().__init__(**kwargs)
        if isinstance(config, dict):
            config = NRIConfig.from_dict(config)
        self.nri_config = config.validate()
        self.encoder = encoder_from_config(config)
        self.decoder = decoder_from_config(config)
        self.sampling_seed = keras.random.SeedGenerator(config.seed, name="sampling_seed")
        self._log_prior = np.log(np.asarray(config.prior, np.float32)) if config.prior else None
        self.loss_tracker = keras.metrics.Mean(name="loss")
        self.nll_tracker = keras.metrics.Mean(name="nll")
        self.kl_tracker = keras.metrics.Mean(name="kl")
        self.mse_tracker = keras.metrics.Mean(name="mse")
        # The simulation decoder gives every edge type a fixed physical meaning.
        self.edge_accuracy = metrics.EdgeAccuracy(config.edge_types, config.skip_first,
                                                  exchangeable=config.decoder != "sim",
                                                  name="edge_accuracy")

    # --- Keras plumbing -------------------------------------------------------------

    def build(self, input_shape):
        """Creates all weights; they do not depend on the node count or (CNN) frame count."""
        self.encoder.build(input_shape)
        self.decoder.build(input_shape)

    def compile(self, *args, jit_compile="auto", **kwargs):
        """`keras.Model.compile`; ``jit_compile="auto"`` picks XLA where it measured faster.

        On a CPU-only machine without a distribution strategy, Keras' "auto" never uses
        XLA; here it does for the MLP encoder + MLP decoder and not for the others
        (benchmarks/train_step.py on a 2-core AMD EPYC, samples/s without / with XLA: MLP/MLP
        at the default preset's sizes 790 / 1040-1180, at paper sizes 105-119 / 100-125;
        CNN/MLP 60.5 / 56.4; MLP/RNN 62.8 / 65.5; CNN/RNN 25.0 / 15.6). Elsewhere "auto" is
        left to Keras. True/False are honoured as given.
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
        return cpu_only and not distributed and config.encoder == "mlp" and config.decoder == "mlp"

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
        return [self.loss_tracker, self.nll_tracker, self.kl_tracker, self.mse_tracker,
                self.edge_accuracy]

    def get_config(self):
        return {"name": self.name, "trainable": self.trainable, "config": self.nri_config.to_dict()}

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        nri_config = config.pop("config")
        return cls(NRIConfig.from_dict(nri_config), **config)

    # --- Forward passes -------------------------------------------------------------

    def _check_input(self, trajectories, what="trajectories", min_frames=2):
        check_trajectories(trajectories, self.nri_config.dims, min_frames=min_frames, what=what)

    def call(self, trajectories, training=False, prediction_steps: int | None = None):
        """Encodes the trajectories, samples edge types and reconstructs frames 1..T-1.

        Args:
          trajectories: [batch, nodes, frames, dims]; the encoder reads the first
            ``config.frames`` of them, the decoder reconstructs them all.
          training: relaxed (or straight-through if ``config.hard``) samples and dropout /
            batch statistics; otherwise hard one-hot samples from the categorical.
          prediction_steps: M of the decoder's rollout (see the decoders); default
            ``config.prediction_steps``; 1 gives one-step predictions.
        Returns:
          dict(logits=[batch, edges, edge_types], edge_probs=softmax of the logits,
               predictions=[batch, nodes, frames - 1, dims]).
        """
        self._check_input(trajectories)
        config = self.nri_config
        logits = self.encoder(trajectories[:, :, :config.frames], training=training)
        seed = self.sampling_seed.next()
        if training:
            edges = sampling.sample_edges(logits, config.temp, config.hard, seed)
        else:
            edges = sampling.straight_through_one_hot(logits, config.temp, seed)
        if config.symmetric:
            edges = graph.share_between_directions(edges)
        steps = config.prediction_steps if prediction_steps is None else prediction_steps
        predictions = self.decoder(trajectories, edges, prediction_steps=steps, training=training)
        return {"logits": logits, "edge_probs": tf.nn.softmax(logits, axis=-1),
                "predictions": predictions}

    def encode(self, trajectories):
        """Edge logits [batch, edges, edge_types] of [batch, nodes, frames, dims] (eval mode)."""
        self._check_input(trajectories, min_frames=1)
        return self.encoder(trajectories, training=False)

    def predict_future(self, context, steps: int, dynamic_graph: bool = False):
        """Predicts the ``steps`` frames after ``context``.

        The encoder infers the graph (argmax one-hot) from the last ``config.frames`` frames
        of the context; the decoder starts from the context's last frame (the RNN decoder
        first runs over the whole context to warm up its hidden state) and feeds back its
        own predictions.

        Args:
          context: [batch, nodes, frames_ctx, dims]; the MLP encoder needs
            frames_ctx >= config.frames.
          steps: frames to predict (>= 1).
          dynamic_graph: re-infer the graph before every predicted frame from the last
            ``config.frames`` frames seen so far, context and predictions (paper sec. 5.2;
            the reference slides the window over ground-truth frames instead).
        Returns:
          [batch, nodes, steps, dims].
        """
        self._check_input(context, what="context", min_frames=1)
        window = self.nri_config.frames
        frames = context.shape[2]
        if self.nri_config.encoder == "mlp" and frames is not None and frames < window:
            raise ValueError(f"the MLP encoder reads {window} frames but the context has only "
                             f"{frames}; pass at least {window} context frames")
        if int(steps) < 1:
            raise ValueError(f"steps must be >= 1, got {steps}")
        context = tf.convert_to_tensor(context, dtype=self.compute_dtype)
        return self._predict_future(context, int(steps), bool(dynamic_graph))

    def _infer_edges(self, frames):
        """Argmax one-hot edge types [batch, edges, edge_types] from the last `frames` frames."""
        return sampling.argmax_one_hot(self.encoder(frames[:, :, -self.nri_config.frames:],
                                                    training=False))

    @tf.function
    def _predict_future(self, context, steps, dynamic_graph):
        edges = self._infer_edges(context)
        state = self.decoder.burn_in(context, edges)
        if not dynamic_graph:
            predictions, _ = self.decoder.rollout(state, edges, steps)
            return predictions
        history, predictions = context, []
        for step in range(steps):
            if step > 0:
                edges = self._infer_edges(history)
            prediction, state = self.decoder.step(state, edges)
            predictions.append(prediction)
            history = tf.concat([history, prediction[:, :, None]], axis=2)
        return tf.stack(predictions, axis=2)

    # --- Training and evaluation ----------------------------------------------------

    @staticmethod
    def _unpack(data):
        if isinstance(data, (tuple, list)):
            return data[0], (data[1] if len(data) > 1 else None)
        return data, None

    def _loss_terms(self, trajectories, outputs):
        """(nll, kl) of one batch; see `nri_tf.losses`."""
        nll = losses.nll_gaussian(outputs["predictions"], trajectories[:, :, 1:], self.nri_config.var)
        if self._log_prior is None:
            kl = losses.kl_categorical_uniform(outputs["edge_probs"])
        else:
            kl = losses.kl_categorical(outputs["edge_probs"], self._log_prior)
        return nll, kl

    def _update_metrics(self, trajectories, labels, outputs, nll, kl):
        batch = tf.shape(trajectories)[0]
        target = tf.cast(trajectories[:, :, 1:], outputs["predictions"].dtype)
        mse = tf.reduce_mean(tf.square(outputs["predictions"] - target))
        for tracker, value in ((self.loss_tracker, nll + kl), (self.nll_tracker, nll),
                               (self.kl_tracker, kl), (self.mse_tracker, mse)):
            tracker.update_state(value, sample_weight=batch)
        logs = {m.name: m.result() for m in self.metrics[:4]}
        if labels is not None:
            self.edge_accuracy.update_state(outputs["logits"], labels)
            logs["edge_accuracy"] = self.edge_accuracy.result()
        if isinstance(tf.distribute.get_strategy(), tf.distribute.MultiWorkerMirroredStrategy):
            # Keras 3 reduces each log over workers with `axis=0`, which fails on scalars.
            logs = {name: tf.reshape(value, [1]) for name, value in logs.items()}
        return logs

    def train_step(self, data):
        trajectories, labels = self._unpack(data)
        with tf.GradientTape() as tape:
            outputs = self(trajectories, training=True)
            nll, kl = self._loss_terms(trajectories, outputs)
            # Gradients are summed over replicas: scale each replica's mean loss down.
            loss = (nll + kl) / tf.distribute.get_strategy().num_replicas_in_sync
            loss = self.optimizer.scale_loss(loss)
        gradients = tape.gradient(loss, self.trainable_variables)
        self.optimizer.apply(gradients, self.trainable_variables)
        return self._update_metrics(trajectories, labels, outputs, nll, kl)

    def test_step(self, data):
        trajectories, labels = self._unpack(data)
        markovian = isinstance(self.decoder, MarkovianDecoder)
        steps = 1 if markovian else self.nri_config.prediction_steps
        outputs = self(trajectories, training=False, prediction_steps=steps)
        nll, kl = self._loss_terms(trajectories, outputs)
        return self._update_metrics(trajectories, labels, outputs, nll, kl)
