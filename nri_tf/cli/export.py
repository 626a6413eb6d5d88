"""`python -m nri_tf.export`: export a trained run as a SavedModel for TF Serving.

    python -m nri_tf.export --run runs/springs5-1a2b3c4d
    python -m nri_tf.export --run runs/springs5-1a2b3c4d --output saved_models --name springs5
    python -m nri_tf.export --run runs/springs5-1a2b3c4d --name springs5 --version 3

Writes TF Serving's layout OUTPUT/NAME/VERSION/ (saved_model.pb, variables/, assets/):
NAME defaults to the run directory's name, VERSION to the next free integer (1 for a new
model; never below a version that existed when the export began, even if it was deleted
meanwhile). An existing version is never overwritten. The version directory appears at
once, complete, with the umask's permissions (the SavedModel is written to a hidden
sibling ``.export.partial-HOST-PID-*`` and renamed), so a TF Serving instance watching
OUTPUT/NAME never loads half an export; the hidden directories of killed exports are
removed by the next export of NAME.

One SavedModel holds the encoder (signatures ``serving_default`` and ``infer_graph``) and
the predictor (``predict``, at most ``--max-steps`` predicted frames per request) with
normalisation and request validation inside the graph; see `nri_tf.serving` and
docs/serving.md. The run's config.json and the dataset's
normalisation statistics are saved as assets (assets/config.json, assets/normalisation.json).
"""

from __future__ import annotations

import argparse
import errno
import json
import os
import re
import shutil
import tempfile
import warnings

from data_pipelines import files
from data_pipelines.errors import DatasetError, UserError, report_known_errors
from data_pipelines.files import read_json
from data_pipelines.normalisation import FORMULA, Normaliser
from data_pipelines.storage.reader import metadata_fingerprint, read_metadata
from data_pipelines.tf_startup import import_tensorflow
from nri_tf.config import SERVING_MAX_STEPS
from trainers import run_directory

DEFAULT_OUTPUT = "saved_models"
CONFIG_ASSET = "config.json"
NORMALISATION_ASSET = "normalisation.json"
# Model names become a directory and the TF Serving model name (in URLs): keep them plain.
_NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
# Attempts at the next free version when another export takes it first.
_VERSION_ATTEMPTS = 5


class ExportError(UserError):
    """The export cannot be done as asked; the one-line message says why and what to do."""


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m nri_tf.export", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run", required=True, help="run directory written by nri_tf.train")
    parser.add_argument("--output", default=DEFAULT_OUTPUT,
                        help=f"export root holding NAME/VERSION/ (default: {DEFAULT_OUTPUT})")
    parser.add_argument("--name", help="model name (default: the run directory's name)")
    parser.add_argument("--version", type=int,
                        help="integer version >= 1 (default: the next free one); an existing "
                             "version is an error")
    parser.add_argument("--data", help="the run's training dataset, or a copy of it, for the "
                                       "normalisation statistics (default: the path in its dataset.json)")
    parser.add_argument("--max-steps", type=int, default=SERVING_MAX_STEPS,
                        help="most frames one predict request may ask for (default: %(default)s); "
                             "bounds a request's time and memory")
    return parser.parse_args(argv)


# --- versions ---------------------------------------------------------------------------

def existing_versions(model_dir: str) -> list[int]:
    """The integer-named version directories under ``model_dir``, ascending ([] if none)."""
    if not os.path.isdir(model_dir):
        return []
    return sorted(int(entry) for entry in os.listdir(model_dir)
                  if entry.isdigit() and os.path.isdir(os.path.join(model_dir, entry)))


def next_version(model_dir: str) -> int:
    """One more than the highest existing version, 1 for a new model."""
    versions = existing_versions(model_dir)
    return versions[-1] + 1 if versions else 1


def check_name(name: str) -> str:
    if not _NAME_PATTERN.match(name or ""):
        raise ExportError(f"model name {name!r} must start with a letter or digit and hold only "
                          "letters, digits, '.', '_' and '-'; pass --name")
    return name


def check_version(version: int) -> int:
    if version < 1:
        raise ExportError(f"--version must be an integer >= 1, got {version}")
    return version


def check_max_steps(max_steps: int) -> int:
    if max_steps < 1:
        raise ExportError(f"--max-steps must be an integer >= 1, got {max_steps}")
    return max_steps


# --- the run's pieces -------------------------------------------------------------------

def _trained_on(run_dir: str) -> dict | None:
    """The run's dataset.json (None if it has none)."""
    path = os.path.join(run_dir, run_directory.DATASET_FILE)
    return read_json(path) if os.path.isfile(path) else None


def _load_dataset_metadata(run_dir: str, data_dir: str | None, config):
    """(metadata, data_dir) of the dataset whose statistics normalise requests: ``data_dir``
    or the run's own (its dataset.json), which must be the data the run trained on."""
    trained_on = _trained_on(run_dir) or {}
    if data_dir is None and not isinstance(trained_on.get("path"), str):
        raise ExportError(f"{run_dir} has no dataset.json naming its dataset: pass --data with its "
                          "training dataset for the normalisation statistics")
    data_dir = data_dir if data_dir is not None else trained_on["path"]
    try:
        metadata = read_metadata(data_dir)
    except DatasetError as error:
        raise ExportError(f"cannot read the normalisation statistics of run {run_dir}'s dataset: "
                          f"{error}; pass --data DIR with that dataset (or a copy)") from None
    if metadata.dims != config.dims:
        raise ExportError(f"dataset {data_dir} has dims={metadata.dims} but run {run_dir} was trained "
                          f"on dims={config.dims}; pass --data with the run's training dataset")
    fingerprint = trained_on.get("fingerprint")
    if fingerprint is not None and fingerprint != metadata_fingerprint(metadata):
        raise ExportError(f"dataset {data_dir} is not the data run {run_dir} trained on (its metadata "
                          "differs), so its statistics would scale requests wrongly; pass --data with "
                          "the run's training dataset or a copy of it")
    return metadata, data_dir


def _write_assets(directory: str, config, metadata, data_dir: str, run_dir: str) -> dict[str, str]:
    """Writes the provenance files; returns {ServingModule attribute: path}."""
    config_path = os.path.join(directory, CONFIG_ASSET)
    config.save(config_path)
    normalisation = {
        **metadata.normalisation.to_dict(),
        "formula": FORMULA,
        "feature_names": list(metadata.feature_names),
        "dataset": os.path.abspath(data_dir),
        "source": metadata.source,
        "training_nodes": metadata.nodes,
        "run": os.path.abspath(run_dir),
    }
    normalisation_path = os.path.join(directory, NORMALISATION_ASSET)
    with open(normalisation_path, "w") as stream:
        json.dump(normalisation, stream, indent=2, sort_keys=True)
        stream.write("\n")
    return {"config_file": config_path, "normalisation_file": normalisation_path}


# --- export -----------------------------------------------------------------------------

def export_run(run_dir: str, output: str = DEFAULT_OUTPUT, name: str | None = None,
               version: int | None = None, data_dir: str | None = None,
               max_steps: int = SERVING_MAX_STEPS) -> str:
    """Exports run ``run_dir`` to ``output/name/version/``; returns that directory.

    Args:
      run_dir: a run directory with best weights (`trainers.run_directory`).
      output: the export root.
      name: model name (default: the run directory's basename).
      version: integer >= 1 (default: the next free version).
      data_dir: the run's training dataset or a copy, whose normalisation statistics to
        bake in (default: the path in the run's dataset.json).
      max_steps: the most frames a ``predict`` request may ask for.
    Raises:
      ExportError, RunDirectoryError, ConfigError (all UserErrors): bad input, or the
        export cannot be written (disk full, permissions); nothing is left behind then.
    """
    name = check_name(name if name is not None else os.path.basename(os.path.normpath(run_dir)))
    check_max_steps(max_steps)
    model_dir = os.path.join(output, name)
    if version is not None and check_version(version) in existing_versions(model_dir):
        raise ExportError(f"{os.path.join(model_dir, str(version))} already exists; exports are never "
                          "overwritten: leave out --version for the next free one")
    config = run_directory.load_config(run_dir)
    metadata, data_dir = _load_dataset_metadata(run_dir, data_dir, config)
    # TensorFlow is imported only now, so that bad input is refused without loading it.
    tf = import_tensorflow()
    from nri_tf.serving import ServingModule   # imports TensorFlow

    with warnings.catch_warnings():
        # The loader compiles the model with a default optimizer whose state it skips;
        # an export needs no optimizer.
        warnings.filterwarnings("ignore", message="Skipping variable loading for optimizer")
        model, config = run_directory.load_best_model(run_dir, metadata.nodes)

    floor = next_version(model_dir)
    try:
        os.makedirs(model_dir, exist_ok=True)
        staging = files.staging_directory(model_dir, "export")
    except OSError as error:
        raise ExportError(f"cannot write to {model_dir}: {error.strerror}") from None
    try:
        with tempfile.TemporaryDirectory() as asset_dir:
            assets = _write_assets(asset_dir, config, metadata, data_dir, run_dir)
            module = ServingModule(model, Normaliser.from_metadata(metadata), assets, max_steps)
            tf.saved_model.save(module, staging, signatures=module.signatures())
        files.apply_umask(staging)
        return _publish(staging, model_dir, version, floor)
    except (OSError, tf.errors.ResourceExhaustedError, tf.errors.PermissionDeniedError) as error:
        reason = getattr(error, "strerror", None) or getattr(error, "message", None) or str(error)
        raise ExportError(f"cannot write the export into {model_dir}: {reason.splitlines()[0]}; "
                          "nothing was published") from None
    finally:
        if os.path.exists(staging):
            shutil.rmtree(staging)


def _publish(staging: str, model_dir: str, version: int | None, floor: int = 1) -> str:
    """Renames the finished export to its version directory; returns that directory.

    A rename onto an existing non-empty directory fails (EEXIST / ENOTEMPTY), so a version
    taken meanwhile by another export is never overwritten: an explicit version is then an
    error, the default one moves on to the next free version, and never below ``floor``
    (the next version when the export began), so that a version deleted meanwhile is not
    reused. Any other rename failure propagates as the OSError it is.
    """
    for _ in range(_VERSION_ATTEMPTS):
        chosen = version if version is not None else max(floor, next_version(model_dir))
        target = os.path.join(model_dir, str(chosen))
        if not os.path.exists(target):
            try:
                os.rename(staging, target)
                return target
            except OSError as error:
                # Only "the target exists and is not empty" means another export took the
                # version; anything else (permissions, a full disk) is reported as it is.
                if error.errno not in (errno.EEXIST, errno.ENOTEMPTY):
                    raise
        if version is not None:
            raise ExportError(f"{target} already exists; exports are never overwritten: leave out "
                              "--version for the next free one")
    raise ExportError(f"other exports kept taking the next version of {model_dir}; try again")


def main(argv=None) -> int:
    args = parse_args(argv)
    files.interrupt_on_sigterm()

    def command() -> int:
        print(export_run(args.run, args.output, args.name, args.version, args.data, args.max_steps))
        return 0

    return report_known_errors(command, "nothing was published")
