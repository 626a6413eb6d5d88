"""tf.data input pipelines over the native dataset of `data_pipelines.storage`.

  `make_dataset`   read (sharded by file across input pipelines), shuffle (seeded), batch,
                   parse, normalise, prefetch: (trajectories [batch, nodes, frames, dims],
                   edges [batch, nodes * (nodes - 1)]), or with candidate edges
                   (trajectories, edges [batch, nodes * degree], candidates)
  `first_frames`   the same batches with the trajectories cut to their first frames

Candidate edges (`data_pipelines.candidate_selection.CandidateSpec`): the complete graph
over densely labelled data keeps the fast path (a batch of records parsed at once);
everything else is parsed and given its candidates record by record, then batched:
  complete on data with edge lists: (trajectories, labels [batch, nodes * (nodes - 1)]),
    the stored pairs' labels spread over the complete graph;
  knn, radius, given: (trajectories, labels [batch, nodes * degree], {"senders": [batch,
    nodes, degree] int32, "mask": [batch, nodes, degree] float32 (radius, given),
    "interactions": [batch] int32}), the layout of `nri_tf.graph.CandidateEdges`.
"""

from __future__ import annotations

import tensorflow as tf

from data_pipelines import candidate_selection
from data_pipelines.candidate_selection import CandidateSpec
from data_pipelines.normalisation import Normaliser
from data_pipelines.storage.reader import (decode_edge_list_record, decode_records, read_metadata,
                                           shard_paths)

# Records held by the shuffle buffer at most; splits up to this size are shuffled uniformly
# (the reference shuffles the whole training set every epoch), larger ones approximately.
MAX_SHUFFLE_BUFFER = 200_000
# Shard files read at once when shuffling.
READ_CYCLE_LENGTH = 4


def make_dataset(data_dir: str, split: str, batch_size: int, *, shuffle: bool | None = None,
                 seed: int = 0, repeat: bool = False, drop_remainder: bool = False,
                 input_context: tf.distribute.InputContext | None = None, normalise: bool = True,
                 normaliser: Normaliser | None = None, cache: bool = False,
                 candidates: CandidateSpec | None = None) -> tf.data.Dataset:
    """A batched tf.data pipeline over one split of a native dataset.

    Args:
      data_dir: the dataset directory (`data_pipelines.storage`).
      split: "train", "valid" or "test".
      batch_size: systems per batch this pipeline yields. With an ``input_context`` pass the
        per-replica size, ``input_context.get_per_replica_batch_size(global_batch_size)``.
      shuffle: reshuffle the records every epoch (default: only for "train"). Without
        shuffling the records come in stored order.
      seed: the shuffle seed; a given seed gives the same order for a given epoch.
      repeat: repeat indefinitely (epochs reshuffled, still reproducibly).
      drop_remainder: drop a last, smaller batch (the batch dim is then static).
      input_context: from `tf.distribute.Strategy.distribute_datasets_from_function`: this
        pipeline reads every ``num_input_pipelines``-th shard file starting at
        ``input_pipeline_id`` (by record if there are fewer files than pipelines).
      normalise: scale with the training split's statistics (`Normaliser`); else raw units.
      normaliser: scale with these statistics instead of the dataset's own (e.g. a trained
        run's, to evaluate it on other data as its SavedModel would see it).
      cache: keep the records in memory after the first epoch (for sets that fit).
      candidates: the candidate edges to yield (module notes); None: the complete graph.
    Returns:
      A dataset of known cardinality (batches per pass) unless it repeats, of (trajectories [batch, nodes, frames, dims] float32,
      edges [batch, nodes * (nodes - 1)] int32 labels, receiver-major), or with candidates
      other than complete the triples of the module notes.
    Raises:
      DatasetError for a missing or invalid dataset, split or shard (see
      `data_pipelines.storage.reader.shard_paths`); CandidateSpecError (a UserError) for
      candidates that do not fit the data; ValueError for a non-positive ``batch_size``.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be a positive integer, got {batch_size}")
    metadata = read_metadata(data_dir)
    spec = (candidates or CandidateSpec()).check(metadata)
    per_record = metadata.has_edge_lists or spec.method != "complete"
    files = shard_paths(data_dir, split)
    records = [shard.records for shard in metadata.shards[split]]
    shuffle = split == "train" if shuffle is None else shuffle

    record_shard = None
    if input_context is not None and input_context.num_input_pipelines > 1:
        pipelines, pipeline = input_context.num_input_pipelines, input_context.input_pipeline_id
        if len(files) >= pipelines:
            files, records = files[pipeline::pipelines], records[pipeline::pipelines]
        else:
            record_shard = (pipelines, pipeline)

    if shuffle and len(files) > 1:
        dataset = tf.data.Dataset.from_tensor_slices(files).shuffle(
            len(files), seed=seed, reshuffle_each_iteration=True)
        dataset = dataset.interleave(tf.data.TFRecordDataset, cycle_length=min(len(files), READ_CYCLE_LENGTH),
                                     num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    else:
        dataset = tf.data.TFRecordDataset(files)
    if record_shard is not None:
        dataset = dataset.shard(*record_shard)
    if cache:
        dataset = dataset.cache()
    if shuffle:
        dataset = dataset.shuffle(min(sum(records), MAX_SHUFFLE_BUFFER), seed=seed,
                                  reshuffle_each_iteration=True)
    if repeat:
        dataset = dataset.repeat()
    if normalise and normaliser is None:
        normaliser = Normaliser.from_metadata(metadata)
    elif not normalise:
        normaliser = None
    if normaliser is not None and normaliser.dims != metadata.dims:
        raise ValueError(f"the normaliser has {normaliser.dims} dims, {data_dir} has {metadata.dims}")
    if per_record:
        dataset = dataset.map(_system_parser(metadata, metadata.frames[split], spec, normaliser),
                              num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    dataset = dataset.batch(batch_size, drop_remainder=drop_remainder)
    if not repeat and record_shard is None:
        # A known length lets Keras count the steps of an epoch instead of running into
        # the end of the data (and warning that it "ran out of data"). tf.data's
        # auto-sharding for multi-worker training adjusts it.
        total = sum(records)
        batches = total // batch_size if drop_remainder else -(-total // batch_size)
        dataset = dataset.apply(tf.data.experimental.assert_cardinality(batches))

    shape = [batch_size if drop_remainder else None, metadata.nodes, metadata.frames[split], metadata.dims]

    def parse(serialized):
        trajectories, edge_labels = decode_records(serialized, metadata.nodes, metadata.frames[split],
                                                   metadata.dims)
        if normaliser is not None:
            trajectories = normaliser.normalise(trajectories)
        trajectories = tf.ensure_shape(trajectories, shape)
        edge_labels = tf.ensure_shape(edge_labels, [shape[0], metadata.edges])
        return trajectories, edge_labels

    if not per_record:
        dataset = dataset.map(parse, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    dataset = dataset.prefetch(tf.data.AUTOTUNE)
    if input_context is not None:
        options = tf.data.Options()
        options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.OFF
        dataset = dataset.with_options(options)
    return dataset


def _system_parser(metadata, frames: int, spec: CandidateSpec, normaliser: Normaliser | None):
    """serialized record -> one system's (trajectories [nodes, frames, dims], labels[, candidates])
    (the module notes), normalised by ``normaliser`` after the candidates are chosen in raw units."""
    nodes, dims = metadata.nodes, metadata.dims
    degree = candidate_selection.dataset_candidate_degree(spec, metadata)

    def parse(serialized):
        if metadata.has_edge_lists:
            trajectories, pairs, labels = decode_edge_list_record(serialized, nodes, frames, dims)
            stored = {"pairs": pairs, "labels": labels}
        else:
            trajectories, dense = decode_records(serialized[None], nodes, frames, dims)
            trajectories, stored = trajectories[0], {"dense_labels": dense[0]}
        scaled = normaliser.normalise(trajectories) if normaliser is not None else trajectories
        scaled = tf.ensure_shape(scaled, [nodes, frames, dims])
        if spec.method == "complete":
            return scaled, tf.ensure_shape(candidate_selection.edge_list_to_dense(
                stored["pairs"], stored["labels"], nodes), [nodes * (nodes - 1)])
        labels, candidates = candidate_selection.candidate_features(spec, trajectories, nodes, degree,
                                                                     **stored)
        candidates = {name: tf.ensure_shape(value, [nodes, degree] if name != "interactions" else [])
                      for name, value in candidates.items()}
        return scaled, tf.ensure_shape(labels, [nodes * degree]), candidates

    return parse


def first_frames(dataset: tf.data.Dataset, frames: int) -> tf.data.Dataset:
    """The batches of ``dataset`` with the trajectories cut to their first ``frames`` frames.

    Args:
      dataset: yields (trajectories [batch, nodes, T, dims], edge_labels [batch, edges]),
        that followed by the batch's candidates, or trajectories alone.
      frames: frames to keep (<= T).
    Returns:
      the same structure with trajectories [batch, nodes, frames, dims].
    """
    if isinstance(dataset.element_spec, tuple):
        return dataset.map(lambda trajectories, *rest: (trajectories[:, :, :frames], *rest))
    return dataset.map(lambda trajectories: trajectories[:, :, :frames])
