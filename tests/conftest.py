"""Shared fixtures: small springs data sets, node-permutation helpers, helpers that
damage a dataset the way a bad disk or a careless edit would (valid CRCs, same sizes), and
`main_here`, which runs a command-line entry point in the test process.

Springs systems come from `data_pipelines.simulations` (reference simulator settings,
5 nodes, 49 frames), normalised like the reference: positions and velocities each min-max
scaled to [-1, 1] with the training split's statistics. Sizes are kept small so the whole
suite runs in a few minutes on 2 CPU cores.
"""

from __future__ import annotations

import contextlib
import glob
import io
import os
import socket
import subprocess

import numpy as np
import pytest

from data_pipelines import contract


def _one_share_of_the_cores_per_worker() -> None:
    """Under pytest-xdist, each worker's TensorFlow computes on its share of the cores
    (``TF_NUM_INTRAOP_THREADS``, read when TensorFlow starts; inherited by the processes a
    test starts): on 2 cores, two workers of TensorFlow's default threads ran test-file
    groups 5-14% slower than two of one thread (paired runs; the machine's own noise is about
    10%). A run in one process (``-n 0``) keeps every core; a value already in the
    environment wins."""
    workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "0"))
    if workers:
        share = max(1, len(os.sched_getaffinity(0)) // workers)
        os.environ.setdefault("TF_NUM_INTRAOP_THREADS", str(share))


_one_share_of_the_cores_per_worker()

SPRINGS_NODES = 5
SPRINGS_SIM_STEPS = 5000          # 49 frames at the reference's sampling rate


def main_here(main, *args, env_extra=None) -> subprocess.CompletedProcess:
    """``main(ARGS)`` of an entry point in this process, with the exit status, stdout and
    stderr a ``python -m`` process would give: no interpreter and TensorFlow start-up. Tests
    about the process boundary itself (exit codes seen by a shell, start-up) run a process.
    """
    stdout, stderr = io.StringIO(), io.StringIO()
    with pytest.MonkeyPatch.context() as patch:
        for name, value in (env_extra or {}).items():
            patch.setenv(name, value)
        with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
            try:
                status = main([str(arg) for arg in args])
            except SystemExit as exit:
                status = exit.code
    return subprocess.CompletedProcess(args, status, stdout.getvalue(), stderr.getvalue())


def last_line(text: str) -> str:
    """The last non-blank line of a command's output (a one-line error, a summary's last)."""
    return [line for line in text.strip().splitlines() if line.strip()][-1]


def event_tags(directory) -> dict:
    """{tag: [(step, value, or None where the event holds no tensor)]} of the TensorBoard
    event files in ``directory``."""
    import tensorflow as tf

    tags = {}
    for path in glob.glob(os.path.join(str(directory), "events.out.tfevents.*")):
        for event in tf.compat.v1.train.summary_iterator(path):
            for value in event.summary.value:
                number = tf.make_ndarray(value.tensor) if value.HasField("tensor") else None
                tags.setdefault(value.tag, []).append((event.step, number))
    return tags


def free_port() -> int:
    """A TCP port on the loopback interface that nothing listens on now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def normalise_springs(trajectories: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """Min-max scales positions (dims 0-1) and velocities (dims 2-3) to [-1, 1] by ``reference``."""
    out = np.empty_like(trajectories, dtype=np.float32)
    for part in (slice(0, 2), slice(2, 4)):
        low, high = reference[..., part].min(), reference[..., part].max()
        out[..., part] = 2.0 * (trajectories[..., part] - low) / (high - low) - 1.0
    return out


def simulate_springs(train: int, held_out: int, seed: int = 0) -> dict:
    """{"x_train", "y_train", "x_test", "y_test"}: normalised [sims, 5, 49, 4], labels [sims, 20]."""
    from data_pipelines.simulations import get_simulation

    result = get_simulation("springs").sample(train + held_out, SPRINGS_NODES,
                                              num_steps=SPRINGS_SIM_STEPS, seed=seed)
    raw = np.asarray(result.trajectories, dtype=np.float32)
    labels = contract.edge_labels_from_matrix(np.asarray(result.edges)).astype(np.int32)
    x = normalise_springs(raw, raw[:train])
    return {"x_train": x[:train], "y_train": labels[:train],
            "x_test": x[train:], "y_test": labels[train:]}


# A tiny `python -m nri_tf.train` run (hidden 8, 3 epochs), trained once per session and
# shared by the train, evaluate, resume and export tests.
TINY_MODEL = ["--encoder-hidden", "8", "--decoder-hidden", "8", "--batch-size", "16", "--verbose", "0"]
TINY_EPOCHS = 3


def simulated_dataset(tmp_path_factory, name: str, **settings) -> str:
    """A native dataset simulated into a fresh temporary folder (``settings``: those of
    `data_pipelines.generation.generate_dataset`); returns its path."""
    from data_pipelines.generation import generate_dataset

    path = str(tmp_path_factory.mktemp("data") / name)
    generate_dataset(path, progress=False, **settings)
    return path


@pytest.fixture(scope="session")
def local_springs_data(tmp_path_factory):
    """A local-springs dataset of 40 nodes stored with edge lists: 32/8/8 systems."""
    return simulated_dataset(tmp_path_factory, "local40", simulation="local-springs", num_nodes=40,
                             num_train=32, num_valid=8, num_test=8, length=1000,
                             length_test=3000, seed=1)


@pytest.fixture(scope="session")
def tiny_data(tmp_path_factory):
    """A springs5 dataset: 256/64/64 systems, 9 training frames, 29 test frames."""
    return simulated_dataset(tmp_path_factory, "springs5", simulation="springs", num_nodes=5,
                             num_train=256, num_valid=64, num_test=64, length=1000,
                             length_test=3000, seed=1)


@pytest.fixture(scope="session")
def tiny_run(tiny_data, tmp_path_factory):
    """The run directory of `python -m nri_tf.train --data tiny_data --epochs 3 TINY_MODEL`
    (trained in this process). Tests may read it or rerun the same command on it, which
    changes nothing; anything else works on a copy."""
    from nri_tf.cli import train as train_cli

    run_dir = str(tmp_path_factory.mktemp("runs") / "tiny")
    status = train_cli.main(["--data", tiny_data, "--logdir", run_dir, "--epochs", str(TINY_EPOCHS),
                             *TINY_MODEL])
    assert status == 0
    return run_dir


@pytest.fixture(scope="session")
def springs5():
    """2000 training and 200 held-out springs systems with 5 nodes."""
    return simulate_springs(2000, 200, seed=0)


@pytest.fixture(scope="session")
def springs5_small(springs5):
    """The first 640 training and 200 held-out systems of `springs5`."""
    return {**springs5, "x_train": springs5["x_train"][:640], "y_train": springs5["y_train"][:640]}


def edge_permutation(node_permutation: np.ndarray) -> np.ndarray:
    """Edge order after relabelling nodes: new node a is old node ``node_permutation[a]``.

    Returns:
      [edges] int: entry e_new is the old index of the edge that becomes e_new.
    """
    num_nodes = len(node_permutation)
    receivers, senders = contract.fully_connected_edges(num_nodes)
    old_index = np.full((num_nodes, num_nodes), -1)
    old_index[receivers, senders] = np.arange(len(receivers))
    return old_index[node_permutation[receivers], node_permutation[senders]]


@pytest.fixture
def node_permutation():
    """(node permutation, matching edge permutation) for 5 nodes."""
    nodes = np.array([3, 0, 4, 1, 2])
    return nodes, edge_permutation(nodes)


def rewrite_records(path: str, edit) -> None:
    """Rewrites a TFRecord shard with valid CRCs: ``edit(records: list[bytes]) -> list[bytes]``
    (corruption that only the record contents can reveal)."""
    import tensorflow as tf

    records = edit(list(tf.data.TFRecordDataset(path).as_numpy_iterator()))
    with tf.io.TFRecordWriter(path) as writer:
        for record in records:
            writer.write(record)


def rewrite_system(data_dir: str, split: str, system: int, edit) -> str:
    """Replaces system ``system`` of ``split`` in its shard (same size, valid CRCs, and the
    metadata's checksum updated: bad values as a faulty writer would store them) by
    ``edit(trajectories [nodes, frames, dims], edges [edges]) -> (trajectories, edges)``;
    returns the shard's path."""
    import json

    from data_pipelines.storage.metadata import METADATA_FILE, file_sha256
    from data_pipelines.storage.reader import decode_records, read_metadata
    from data_pipelines.storage.writer import _serialize

    metadata = read_metadata(data_dir)
    first = 0
    for shard in metadata.shards[split]:
        if system < first + shard.records:
            break
        first += shard.records
    path = os.path.join(data_dir, shard.file)

    def replace(records):
        x, e = decode_records(records[system - first:system - first + 1], metadata.nodes,
                                      metadata.frames[split], metadata.dims)
        x, e = edit(x[0].numpy().copy(), e[0].numpy().copy())
        records[system - first] = _serialize(np.asarray(x, "<f4"), np.asarray(e, "<i4"))
        return records

    rewrite_records(path, replace)
    metadata_path = os.path.join(data_dir, METADATA_FILE)
    with open(metadata_path) as stream:
        values = json.load(stream)
    for info in values["shards"][split]:
        if info["file"] == shard.file:
            info["sha256"] = file_sha256(path)
    with open(metadata_path, "w") as stream:
        json.dump(values, stream)
    return path


def tree_contents(path) -> dict:
    """{relative path: bytes} of every file under ``path``, hidden ones included."""
    contents = {}
    for directory, _, names in os.walk(path):
        for name in names:
            full = os.path.join(directory, name)
            with open(full, "rb") as stream:
                contents[os.path.relpath(full, path)] = stream.read()
    return contents
