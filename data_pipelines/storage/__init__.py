"""The on-disk NRI dataset: TFRecord shards plus ``metadata.json``; the reference .npy layout.

Native layout (``format_version`` 1) of a dataset directory::

    metadata.json                     `metadata.DatasetMetadata`: source and parameters, shapes,
                                      split sizes, shard list (records, bytes, SHA-256), training-
                                      split normalisation statistics
    train-00000-of-00013.tfrecord     one `tf.train.Example` per system with two bytes features:
    ...                                 "trajectories": float32 little-endian [nodes, frames, dims],
    valid-00000-of-00003.tfrecord                       raw (unnormalised) units
    test-00000-of-00003.tfrecord        "edges": int32 little-endian [edges] edge-type labels,
                                                 edges = nodes * (nodes - 1) in the receiver-major
                                                 order of `data_pipelines.contract`

Datasets of large systems (``format_version`` 2, metadata ``edge_lists``: how the pairs were
chosen and ``max_degree``) store edge lists instead: "edges" holds int32 labels of the listed
pairs only and a third bytes feature "edge_index" the pairs, int32 [edges, 2] (receiver,
sender), receiver-major; a pair not listed is type 0. Readers yield them as
`reader.LabelledEdges`.

Modules, one job each:
  `metadata`    the metadata schema and its validation
  `staging`     atomic output directories (a dataset appears complete or not at all)
  `writer`      `DatasetWriter`, `write_dataset`
  `reader`      `read_metadata`, `shard_paths`, `iter_split`, `check_split`, `read_split`,
                `decode_records` (the one parser, shared with tf.data)
  `reference`   the reference implementation's .npy layout: import, export, direct writing
"""
