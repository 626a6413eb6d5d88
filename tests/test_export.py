"""Acceptance tests of `python -m nri_tf.export` and the served signatures (`nri_tf.serving`).

Fixtures: the session's tiny springs dataset and the MLP-encoder run trained on it
(`conftest.tiny_data`, `conftest.tiny_run`: `python -m nri_tf.train`, hidden size 8) and,
once per module, a CNN-encoder / RNN-decoder run written by hand with the run-directory
helpers (random weights; the CNN needs >= 14 frames, more than the tiny dataset's 9
training frames).

The SavedModels are called by `CLIENT_SCRIPT` in a separate Python process that imports
only TensorFlow, as TF Serving would run them: every request goes through one process,
its outputs and error messages come back through files. The test process computes the
same quantities with the Keras model and the dataset's `Normaliser`.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

from data_pipelines.normalisation import Normaliser
from data_pipelines.storage.reader import read_metadata, read_split
from nri_tf import serving
from conftest import main_here
from nri_tf.cli import export
from nri_tf.config import NRIConfig
from trainers import run_directory

pytestmark = pytest.mark.slow

PYTHON = sys.executable
TOLERANCE = 1e-5
MLP_FRAMES = 9            # training frames of the tiny dataset (--length 1000)
CONTEXT_FRAMES = 12       # a `predict` context longer than the MLP encoder's window
STEPS = 6
CNN_FRAMES = 20           # the hand-made CNN run's config.frames
MLP_NAME = "tiny"         # the export's model name: the basename of `conftest.tiny_run`

# Run in a fresh interpreter: loads SavedModels and calls their signatures with only
# TensorFlow imported. argv[1]: requests.json, a list of {"id", "model", "signature",
# "inputs": {name: [file, dtype]}}; tensors are tf.io.serialize_tensor files. Writes
# results.json: id -> {"outputs": {name: file}} or {"error": "<type>: <message>"}, plus
# "_assets" (the config asset's JSON per model) and "_project_modules" (must stay empty).
CLIENT_SCRIPT = r'''
import json, os, sys
import tensorflow as tf

with open(sys.argv[1]) as stream:
    requests = json.load(stream)
out_dir = os.path.dirname(os.path.abspath(sys.argv[1]))
models, results, assets = {}, {}, {}
for request in requests:
    path = request["model"]
    if path not in models:
        models[path] = tf.saved_model.load(path)
        assets[path] = json.loads(tf.io.read_file(models[path].config_file.asset_path).numpy())
    inputs = {name: tf.io.parse_tensor(tf.io.read_file(file), getattr(tf, dtype))
              for name, (file, dtype) in request["inputs"].items()}
    try:
        outputs = models[path].signatures[request["signature"]](**inputs)
    except Exception as error:  # the message is what the test checks
        results[request["id"]] = {"error": f"{type(error).__name__}: {error}"}
        continue
    files = {}
    for name, value in outputs.items():
        files[name] = os.path.join(out_dir, f"{request['id']}.{name}.tensor")
        tf.io.write_file(files[name], tf.io.serialize_tensor(value))
    results[request["id"]] = {"outputs": files}
results["_assets"] = assets
results["_project_modules"] = sorted(m for m in sys.modules
                                     if m.split(".")[0] in ("nri_tf", "data_pipelines", "trainers"))
with open(os.path.join(out_dir, "results.json"), "w") as stream:
    json.dump(results, stream)
'''


def digest(path: str) -> str:
    """SHA-1 over every file under ``path`` (names and contents)."""
    sha = hashlib.sha1()
    for directory, _, files in sorted(os.walk(path)):
        for name in sorted(files):
            sha.update(os.path.relpath(os.path.join(directory, name), path).encode())
            with open(os.path.join(directory, name), "rb") as stream:
                sha.update(stream.read())
    return sha.hexdigest()


# --- fixtures -----------------------------------------------------------------------------

@pytest.fixture(scope="module")
def dataset_dir(tiny_data):
    return tiny_data


@pytest.fixture(scope="module")
def raw_test(dataset_dir):
    """The test split in raw units: [64, 5, 29, 4] float32."""
    trajectories, _ = read_split(dataset_dir, "test")
    return trajectories


@pytest.fixture(scope="module")
def normaliser(dataset_dir):
    return Normaliser.from_metadata(read_metadata(dataset_dir))


@pytest.fixture(scope="module")
def mlp_run(tiny_run):
    """The session's tiny MLP encoder / MLP decoder run (`conftest.tiny_run`)."""
    return tiny_run


@pytest.fixture(scope="module")
def cnn_run(dataset_dir, tmp_path_factory):
    """A CNN encoder / RNN decoder run directory made with the run-directory helpers; the
    decoder is motion capture's (its state also carries the previous frame)."""
    from nri_tf.model import NRI

    path = str(tmp_path_factory.mktemp("runs") / "tiny-cnn")
    config = NRIConfig(dims=4, frames=CNN_FRAMES, encoder="cnn", decoder="rnn",
                       encoder_hidden=8, decoder_hidden=8, change_scale=[0.1, 0.2, 0.3, 0.4],
                       gru_own_hidden=True, gru_reads_change=True).validate()
    run_directory.prepare(path, config, {"path": dataset_dir, "nodes": 5, "dims": 4, "frames": CNN_FRAMES})
    model = NRI(config)
    model(tf.zeros([1, 5, CNN_FRAMES, 4]))
    run_directory.stage_best_weights(path, model, epoch=1)
    run_directory.settle_best_weights(path, best_epoch=1)
    return path


@pytest.fixture(scope="module")
def export_root(tmp_path_factory):
    return str(tmp_path_factory.mktemp("saved_models"))


@pytest.fixture(scope="module")
def mlp_export(mlp_run, export_root):
    """Version 1 of the MLP run, exported by the entry point's main (in this process: the
    exit status and output a shell would see; `test_cli` runs it as a process)."""
    result = main_here(export.main, "--run", mlp_run, "--output", export_root)
    assert result.returncode == 0, result.stderr[-3000:]
    path = result.stdout.strip().splitlines()[-1]
    assert path == os.path.join(export_root, MLP_NAME, "1")
    return path


@pytest.fixture(scope="module")
def cnn_export(cnn_run, export_root):
    return export.export_run(cnn_run, export_root, name="tiny-cnn")


# The complete graph of 5 nodes as candidate senders [5, 4], and two systems' padded
# candidates [2, 5, 2] (-1: an empty slot; node 4 of system 0 has no candidates).
COMPLETE_SENDERS_5 = np.array([[j for j in range(5) if j != i] for i in range(5)], np.int32)
PADDED_SENDERS_5 = np.array([[[1, 2], [0, -1], [4, 1], [2, -1], [-1, -1]],
                             [[4, 3], [2, 0], [1, -1], [0, 4], [3, 2]]], np.int32)


def _changed(senders, receiver, row):
    """A copy of ``senders`` [batch, nodes, degree] with one receiver's row replaced."""
    changed = senders.copy()
    changed[receiver] = row
    return changed


def _requests(mlp_export, cnn_export, x):
    """(id, model, signature, inputs) of every request the client process sends."""
    nan, inf = x[:2, :, :MLP_FRAMES].copy(), x[:2, :, :MLP_FRAMES].copy()
    nan[1, 2, 3, 0] = np.nan
    inf[0, 4, 0, 1] = np.inf
    ten_nodes = np.concatenate([x[:2, :, :MLP_FRAMES], x[2:4, :, :MLP_FRAMES]], axis=1)
    context = x[:4, :, :CONTEXT_FRAMES]
    steps = np.int32(STEPS)
    mlp, cnn = mlp_export, cnn_export
    complete = np.broadcast_to(COMPLETE_SENDERS_5, (4, 5, 4)).copy()
    on_candidates = "infer_graph_on_candidates"
    return [
        ("candidates_complete", mlp, on_candidates, {"trajectories": x[:4, :, :MLP_FRAMES], "senders": complete}),
        ("candidates_padded", mlp, on_candidates, {"trajectories": x[:2, :, :MLP_FRAMES], "senders": PADDED_SENDERS_5}),
        ("candidates_predict", mlp, "predict_on_candidates",
         {"trajectories": context[:2], "senders": PADDED_SENDERS_5, "steps": steps}),
        ("candidates_out_of_range", mlp, on_candidates,
         {"trajectories": x[:2, :, :MLP_FRAMES], "senders": _changed(PADDED_SENDERS_5, (1, 4), [5, 2])}),
        ("candidates_self", mlp, on_candidates,
         {"trajectories": x[:2, :, :MLP_FRAMES], "senders": _changed(PADDED_SENDERS_5, (0, 1), [1, -1])}),
        ("candidates_duplicate", mlp, on_candidates,
         {"trajectories": x[:2, :, :MLP_FRAMES], "senders": _changed(PADDED_SENDERS_5, (1, 0), [3, 3])}),
        ("candidates_batch", mlp, on_candidates, {"trajectories": x[:3, :, :MLP_FRAMES], "senders": PADDED_SENDERS_5}),
        ("candidates_rank", mlp, on_candidates, {"trajectories": x[:2, :, :MLP_FRAMES], "senders": PADDED_SENDERS_5[0]}),
        ("encode", mlp, "infer_graph", {"trajectories": x[:4, :, :MLP_FRAMES]}),
        ("encode_default", mlp, "serving_default", {"trajectories": x[:4, :, :MLP_FRAMES]}),
        ("encode_10_nodes", mlp, "serving_default", {"trajectories": ten_nodes}),
        ("predict", mlp, "predict", {"trajectories": context, "steps": steps}),
        ("predict_10_nodes", mlp, "predict", {"trajectories": ten_nodes, "steps": np.int32(2)}),
        ("bad_rank", mlp, "serving_default", {"trajectories": x[0, :, :MLP_FRAMES]}),
        ("bad_rank_5", mlp, "serving_default", {"trajectories": x[:2, :, :MLP_FRAMES, :, None]}),
        ("bad_rank_predict", mlp, "predict", {"trajectories": x[0, :, :CONTEXT_FRAMES], "steps": steps}),
        ("bad_dims", mlp, "serving_default", {"trajectories": x[:2, :, :MLP_FRAMES, :3]}),
        ("one_node", mlp, "serving_default", {"trajectories": x[:2, :1, :MLP_FRAMES]}),
        ("mlp_frames", mlp, "serving_default", {"trajectories": x[:2, :, :MLP_FRAMES + 1]}),
        ("mlp_short_context", mlp, "predict", {"trajectories": x[:2, :, :MLP_FRAMES - 1], "steps": steps}),
        ("nan", mlp, "serving_default", {"trajectories": nan}),
        ("inf", mlp, "predict", {"trajectories": inf, "steps": steps}),
        ("steps_zero", mlp, "predict", {"trajectories": context, "steps": np.int32(0)}),
        ("steps_negative", mlp, "predict", {"trajectories": context, "steps": np.int32(-3)}),
        ("steps_vector", mlp, "predict", {"trajectories": context, "steps": np.array([2, 3], np.int32)}),
        ("cnn_encode_14", cnn, "serving_default", {"trajectories": x[:3, :, :14]}),
        ("cnn_encode_29", cnn, "infer_graph", {"trajectories": x[:3]}),
        ("cnn_predict", cnn, "predict", {"trajectories": x[:3, :, :25], "steps": np.int32(4)}),
        ("cnn_frames", cnn, "serving_default", {"trajectories": x[:3, :, :13]}),
        ("cnn_predict_frames", cnn, "predict", {"trajectories": x[:3, :, :13], "steps": steps}),
    ]


@pytest.fixture(scope="module")
def served(mlp_export, cnn_export, raw_test, tmp_path_factory):
    """Runs every request in one TensorFlow-only process.

    Returns:
      (inputs: id -> {name: array}, results: id -> {name: array} or error message str,
       assets: model path -> config dict, project_modules: list).
    """
    work = tmp_path_factory.mktemp("client")
    specs, inputs = [], {}
    for request_id, model, signature, tensors in _requests(mlp_export, cnn_export, raw_test):
        files = {}
        for name, value in tensors.items():
            file = str(work / f"{request_id}.in.{name}.tensor")
            tf.io.write_file(file, tf.io.serialize_tensor(tf.constant(value)))
            files[name] = [file, tf.as_dtype(value.dtype).name]
        specs.append({"id": request_id, "model": model, "signature": signature, "inputs": files})
        inputs[request_id] = tensors
    (work / "requests.json").write_text(json.dumps(specs))
    (work / "client.py").write_text(CLIENT_SCRIPT)
    result = subprocess.run([PYTHON, "-I", str(work / "client.py"), str(work / "requests.json")],
                            cwd=str(work), capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    raw = json.loads((work / "results.json").read_text())
    results = {}
    for request_id, answer in raw.items():
        if request_id.startswith("_"):
            continue
        if "error" in answer:
            results[request_id] = answer["error"]
        else:
            results[request_id] = {
                name: tf.io.parse_tensor(tf.io.read_file(file), _OUTPUT_DTYPES[name]).numpy()
                for name, file in answer["outputs"].items()}
    return inputs, results, raw["_assets"], raw["_project_modules"]


_OUTPUT_DTYPES = {serving.OUTPUT_EDGE_PROBS: tf.float32, serving.OUTPUT_EDGE_TYPES: tf.int32,
                  serving.OUTPUT_RECEIVERS: tf.int32, serving.OUTPUT_SENDERS: tf.int32,
                  serving.OUTPUT_PREDICTIONS: tf.float32}


def keras_outputs(run, normaliser, trajectories, steps=None):
    """What the Keras model says on raw ``trajectories``: edge_probs, or raw predictions."""
    model, _ = run_directory.load_best_model(run, trajectories.shape[1])
    x = normaliser.normalise(tf.constant(trajectories))
    if steps is None:
        return tf.nn.softmax(model.encode(x), axis=-1).numpy()
    return normaliser.denormalise(model.predict_future(x, steps)).numpy()


def answer(served, request_id):
    result = served[1][request_id]
    assert not isinstance(result, str), f"request {request_id} failed: {result}"
    return result


# --- the exported model answers like the Keras model --------------------------------------

def test_served_in_a_process_without_the_project(served):
    assert served[3] == []


def test_encoder_matches_keras(served, mlp_run, normaliser):
    inputs = served[0]["encode"]["trajectories"]
    result = answer(served, "encode")
    expected = keras_outputs(mlp_run, normaliser, inputs)
    np.testing.assert_allclose(result["edge_probs"], expected, atol=TOLERANCE, rtol=0)
    np.testing.assert_array_equal(result["edge_types"], np.argmax(result["edge_probs"], axis=-1))
    assert result["edge_types"].dtype == np.int32 and result["edge_types"].shape == (4, 20)
    np.testing.assert_array_equal(result["receivers"], [0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3, 4, 4, 4, 4])
    np.testing.assert_array_equal(result["senders"], [1, 2, 3, 4, 0, 2, 3, 4, 0, 1, 3, 4, 0, 1, 2, 4, 0, 1, 2, 3])


def test_serving_default_is_infer_graph(served):
    first, second = answer(served, "encode"), answer(served, "encode_default")
    assert sorted(first) == sorted(second) == ["edge_probs", "edge_types", "receivers", "senders"]
    for name in first:
        np.testing.assert_array_equal(first[name], second[name])


def test_predictor_matches_keras(served, mlp_run, normaliser):
    inputs = served[0]["predict"]["trajectories"]
    result = answer(served, "predict")["predictions"]
    expected = keras_outputs(mlp_run, normaliser, inputs, STEPS)
    assert result.shape == (4, 5, STEPS, 4)
    np.testing.assert_allclose(result, expected, atol=TOLERANCE, rtol=TOLERANCE)


def test_ten_nodes_on_a_model_trained_on_five(served, mlp_run, normaliser):
    inputs = served[0]["encode_10_nodes"]["trajectories"]
    result = answer(served, "encode_10_nodes")
    assert result["edge_probs"].shape == (2, 90, 2)
    np.testing.assert_allclose(result["edge_probs"], keras_outputs(mlp_run, normaliser, inputs),
                               atol=TOLERANCE, rtol=0)
    receivers, senders = np.where(~np.eye(10, dtype=bool))
    np.testing.assert_array_equal(result["receivers"], receivers)
    np.testing.assert_array_equal(result["senders"], senders)
    assert answer(served, "predict_10_nodes")["predictions"].shape == (2, 10, 2, 4)


def test_candidates_of_the_whole_graph_answer_as_infer_graph(served):
    whole, complete = answer(served, "encode"), answer(served, "candidates_complete")
    np.testing.assert_allclose(complete["edge_probs"], whole["edge_probs"], atol=TOLERANCE, rtol=0)
    np.testing.assert_array_equal(complete["edge_types"], whole["edge_types"])
    np.testing.assert_array_equal(complete["receivers"], np.broadcast_to(whole["receivers"], (4, 20)))
    np.testing.assert_array_equal(complete["senders"], np.broadcast_to(whole["senders"], (4, 20)))


def test_padded_candidates_match_keras_and_mark_empty_slots(served, mlp_run, normaliser):
    from nri_tf.graph import CandidateEdges

    real = PADDED_SENDERS_5 >= 0
    edges = CandidateEdges(tf.constant(np.where(real, PADDED_SENDERS_5, np.arange(5)[None, :, None])),
                           tf.constant(real, tf.float32))
    model, _ = run_directory.load_best_model(mlp_run, 5)
    inputs = served[0]["candidates_padded"]["trajectories"]
    expected = tf.nn.softmax(model.encode(normaliser.normalise(tf.constant(inputs)), edges), -1).numpy()
    result = answer(served, "candidates_padded")
    flat_real = real.reshape(2, 10)
    np.testing.assert_allclose(result["edge_probs"][flat_real], expected[flat_real], atol=TOLERANCE, rtol=0)
    assert (result["edge_probs"][~flat_real] == 0).all() and (result["edge_types"][~flat_real] == -1).all()
    np.testing.assert_array_equal(result["senders"], PADDED_SENDERS_5.reshape(2, 10))
    np.testing.assert_array_equal(result["receivers"][0], np.repeat(np.arange(5), 2))
    context = served[0]["candidates_predict"]["trajectories"]
    predicted = normaliser.denormalise(model.predict_future(normaliser.normalise(tf.constant(context)),
                                                            STEPS, candidates=edges)).numpy()
    np.testing.assert_allclose(answer(served, "candidates_predict")["predictions"], predicted,
                               atol=TOLERANCE, rtol=TOLERANCE)


def test_cnn_encoder_accepts_any_frame_count_and_rnn_predictor_matches(served, cnn_run, normaliser):
    for request_id in ("cnn_encode_14", "cnn_encode_29"):
        inputs = served[0][request_id]["trajectories"]
        np.testing.assert_allclose(answer(served, request_id)["edge_probs"],
                                   keras_outputs(cnn_run, normaliser, inputs), atol=TOLERANCE, rtol=0)
    inputs = served[0]["cnn_predict"]["trajectories"]
    np.testing.assert_allclose(answer(served, "cnn_predict")["predictions"],
                               keras_outputs(cnn_run, normaliser, inputs, 4), atol=TOLERANCE, rtol=TOLERANCE)


def test_assets_hold_the_config_and_normalisation(served, mlp_export, mlp_run, dataset_dir):
    assert served[2][mlp_export] == run_directory.load_config(mlp_run).to_dict()
    with open(os.path.join(mlp_export, "assets", export.NORMALISATION_ASSET)) as stream:
        saved = json.load(stream)
    statistics = read_metadata(dataset_dir).normalisation
    assert saved["min"] == statistics.min and saved["max"] == statistics.max
    assert saved["dataset"] == os.path.abspath(dataset_dir) and saved["training_nodes"] == 5


# --- bad requests are refused with a message naming the problem ---------------------------

@pytest.mark.parametrize("request_id, message", [
    ("bad_rank", "must be [batch, nodes, frames, dims] (rank 4); got rank] [3]"),
    ("bad_rank_5", "must be [batch, nodes, frames, dims] (rank 4); got rank] [5]"),
    ("bad_rank_predict", "must be [batch, nodes, frames, dims] (rank 4); got rank] [3]"),
    ("bad_dims", "must have dims=4 features per frame (config.dims); got dims =] [3]"),
    ("one_node", "need at least 2 nodes"),
    ("mlp_frames", f"the MLP encoder reads exactly {MLP_FRAMES} frames"),
    ("mlp_short_context", f"pass at least {MLP_FRAMES} context frames"),
    ("nan", "NaN or Inf"),
    ("inf", "NaN or Inf"),
    ("steps_zero", "steps must be >= 1"),
    ("steps_negative", "steps must be >= 1"),
    ("steps_vector", "steps must be a scalar"),
    ("cnn_frames", "the CNN encoder needs at least 14 frames"),
    ("cnn_predict_frames", "the CNN encoder needs at least 14 frames"),
    ("candidates_out_of_range", "senders must be node indices 0..nodes-1, or -1 for an empty slot"),
    ("candidates_self", "senders must not name the receiver itself"),
    ("candidates_duplicate", "senders must name each node at most once per receiver"),
    ("candidates_batch", "senders must be [batch, nodes, degree] (rank 3, degree >= 1) with the batch and nodes of the trajectories"),
    ("candidates_rank", "senders must be [batch, nodes, degree] (rank 3, degree >= 1) with the batch and nodes of the trajectories"),
])
def test_bad_request_is_rejected(served, request_id, message):
    error = served[1][request_id]
    assert isinstance(error, str), f"request {request_id} was answered instead of rejected"
    assert error.startswith("InvalidArgumentError") and message in error, error


# --- introspection and the gRPC request ---------------------------------------------------

def test_saved_model_cli_lists_the_signatures(mlp_export):
    cli = os.path.join(os.path.dirname(PYTHON), "saved_model_cli")
    result = subprocess.run([cli, "show", "--all", "--dir", mlp_export], capture_output=True,
                            text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    blocks = {block.split("']", 1)[0]: block for block in result.stdout.split("signature_def['")[1:]}
    assert set(blocks) - {"__saved_model_init_op"} == {"serving_default", "infer_graph", "predict",
                                                      "infer_graph_on_candidates", "predict_on_candidates"}
    assert "inputs['senders']" in blocks["infer_graph_on_candidates"]
    for name in ("serving_default", "infer_graph"):
        assert "inputs['trajectories']" in blocks[name]
        for output in ("edge_probs", "edge_types", "receivers", "senders"):
            assert f"outputs['{output}']" in blocks[name]
        assert "DT_INT32" in blocks[name].split("outputs['edge_types']")[1]
    assert "inputs['trajectories']" in blocks["predict"] and "inputs['steps']" in blocks["predict"]
    assert "outputs['predictions']" in blocks["predict"]
    assert "tensorflow/serving/predict" in blocks["predict"]


def test_grpc_predict_request_round_trips(mlp_export, raw_test):
    predict_pb2 = pytest.importorskip(
        "tensorflow_serving.apis.predict_pb2",
        reason="tensorflow-serving-api is not installed (pip install -e .[test])")
    signature = tf.saved_model.load(mlp_export).signatures[serving.SIGNATURE_PREDICT]
    input_names = sorted(signature.structured_input_signature[1])
    assert input_names == [serving.INPUT_STEPS, serving.INPUT_TRAJECTORIES]
    values = {serving.INPUT_TRAJECTORIES: raw_test[:2, :, :CONTEXT_FRAMES], serving.INPUT_STEPS: np.int32(STEPS)}
    request = predict_pb2.PredictRequest()
    request.model_spec.name = MLP_NAME
    request.model_spec.signature_name = serving.SIGNATURE_PREDICT
    for name in input_names:
        request.inputs[name].CopyFrom(tf.make_tensor_proto(values[name]))
    received = predict_pb2.PredictRequest.FromString(request.SerializeToString())
    assert received.model_spec.signature_name == "predict"
    trajectories = tf.make_ndarray(received.inputs["trajectories"])
    assert trajectories.dtype == np.float32
    np.testing.assert_array_equal(trajectories, values["trajectories"])
    steps = tf.make_ndarray(received.inputs["steps"])
    assert steps.shape == () and steps.dtype == np.int32 and steps == STEPS
    # The server side: the request's tensors feed the signature as they are.
    outputs = signature(**{name: tf.constant(tf.make_ndarray(received.inputs[name])) for name in input_names})
    assert outputs[serving.OUTPUT_PREDICTIONS].shape == (2, 5, STEPS, 4)


# --- versions and CLI errors ---------------------------------------------------------------

def test_second_export_gets_the_next_version_and_existing_ones_are_refused(
        mlp_run, mlp_export, export_root, capsys):
    model_dir = os.path.dirname(mlp_export)
    before = digest(mlp_export)
    assert export.main(["--run", mlp_run, "--output", export_root]) == 0
    assert capsys.readouterr().out.strip() == os.path.join(model_dir, "2")
    assert export.existing_versions(model_dir) == [1, 2]

    assert export.main(["--run", mlp_run, "--output", export_root, "--version", "1"]) == 2
    error = capsys.readouterr().err.strip()
    assert error.startswith("error: ") and "already exists" in error and "\n" not in error
    assert digest(mlp_export) == before
    assert export.existing_versions(model_dir) == [1, 2]
    assert not [entry for entry in os.listdir(model_dir) if entry.startswith(".")], "staging left behind"


def test_explicit_new_version(mlp_run, export_root, tmp_path):
    path = export.export_run(mlp_run, str(tmp_path), name="springs5", version=7)
    assert path == os.path.join(str(tmp_path), "springs5", "7")
    assert export.next_version(os.path.dirname(path)) == 8


@pytest.mark.parametrize("args, message", [
    (["--run", "no/such/run"], "is not a run directory"),
    (["--run", "RUN", "--version", "0"], "--version must be an integer >= 1"),
    (["--run", "RUN", "--name", "../escape"], "model name '../escape'"),
    (["--run", "RUN", "--data", "no/such/data"], "cannot read the normalisation statistics"),
])
def test_cli_errors_are_one_line_with_exit_code_2(args, message, mlp_run, tmp_path, capsys):
    args = [mlp_run if arg == "RUN" else arg for arg in args]
    assert export.main(args + ["--output", str(tmp_path)]) == 2
    error = capsys.readouterr().err.strip()
    assert error.startswith("error: ") and message in error and "\n" not in error, error
    assert not os.listdir(tmp_path)


# --- faults (issue 18) -----------------------------------------------------------------------

def test_export_is_readable_under_the_umask_and_cleans_killed_exports(cnn_run, tmp_path):
    """A TF Serving process of another user can read the export; a killed export's hidden
    directory (SIGTERM or SIGKILL during the save) is removed by the next export."""
    import socket
    import stat

    process = subprocess.Popen([PYTHON, "-c", "pass"])
    process.wait()
    model_dir = tmp_path / "tiny-cnn"
    killed = model_dir / f".export.partial-{socket.gethostname()}-{process.pid}-x"
    (killed / "variables").mkdir(parents=True)
    previous = os.umask(0o022)
    try:
        path = export.export_run(cnn_run, str(tmp_path))
    finally:
        os.umask(previous)
    assert path == str(model_dir / "1") and not killed.exists()
    assert sorted(os.listdir(model_dir)) == ["1"]
    for directory, _, names in os.walk(path):
        assert stat.S_IMODE(os.stat(directory).st_mode) == 0o755, directory
        for name in names:
            assert stat.S_IMODE(os.stat(os.path.join(directory, name)).st_mode) & 0o044 == 0o044, name


def test_version_deleted_during_an_export_is_not_reused_and_a_full_disk_publishes_nothing(
        cnn_run, tmp_path, monkeypatch):
    model_dir = tmp_path / "tiny-cnn"
    (model_dir / "1").mkdir(parents=True)
    (model_dir / "2").mkdir()
    save = tf.saved_model.save

    def deleting_version_2(*args, **kwargs):
        os.rmdir(model_dir / "2")   # an operator removes the newest version meanwhile
        return save(*args, **kwargs)

    monkeypatch.setattr(tf.saved_model, "save", deleting_version_2)
    assert export.export_run(cnn_run, str(tmp_path)) == str(model_dir / "3")

    def full(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(tf.saved_model, "save", full)
    before = digest(str(model_dir))
    with pytest.raises(export.ExportError, match="cannot write the export into .*: No space left on device; "
                                                 "nothing was published"):
        export.export_run(cnn_run, str(tmp_path))
    assert digest(str(model_dir)) == before and sorted(os.listdir(model_dir)) == ["1", "3"]


def test_export_refuses_data_other_than_the_runs_and_a_bad_step_cap(mlp_run, tmp_path, capsys):
    from data_pipelines.generation import generate_dataset

    other = str(tmp_path / "other")
    generate_dataset(other, num_train=16, num_valid=8, num_test=8, length=1000, length_test=3000,
                     seed=3, progress=False)
    output = str(tmp_path / "out")
    for flags, message in ((["--data", other], "is not the data run"),
                           (["--max-steps", "0"], "--max-steps must be an integer >= 1")):
        assert export.main(["--run", mlp_run, "--output", output, *flags]) == 2
        error = capsys.readouterr().err.strip()
        assert error.startswith("error: ") and message in error and "\n" not in error, error
    assert not os.path.exists(output)
