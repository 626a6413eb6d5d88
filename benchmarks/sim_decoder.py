"""Training throughput of NRI (sim.): the simulator's leapfrog loop compiled with XLA
(`nri_tf.physics.compiled_with_gradient`, what training uses) against the plain loop.

    .venv/bin/python benchmarks/sim_decoder.py                        # charged5, 100 steps a frame
    .venv/bin/python benchmarks/sim_decoder.py --simulation springs   # springs5, 1 step a frame

It simulates a small dataset of the fast preset's sizes into a temporary folder, builds
the fast preset's NRI (sim.) model for it twice (the same seed), one of them integrating
with the plain loop, and prints the training samples per second of each (`NRI.train_on_batch`
on the same batches, the best of several timed runs) and their ratio, measured in the same
run, with the machine's load averages.
"""

from __future__ import annotations

import argparse
import os
import tempfile

import keras
import timing

from data_pipelines.generation import generate_dataset
from data_pipelines.storage.reader import read_metadata
from nri_tf.presets import PRESETS, config_for_dataset
from trainers import loop


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--simulation", choices=("charged", "springs"), default="charged")
    parser.add_argument("--nodes", type=int, default=5)
    parser.add_argument("--measured", type=int, default=4, help="timed training steps per run")
    parser.add_argument("--repeats", type=int, default=3, help="timed runs; the best is reported")
    args = parser.parse_args()

    fast = PRESETS["fast"]
    with tempfile.TemporaryDirectory() as folder:
        data_dir = os.path.join(folder, "data")
        batch = fast.config["batch_size"]
        generate_dataset(data_dir, simulation=args.simulation, num_nodes=args.nodes,
                         num_train=batch * (args.measured + 1), num_valid=batch, num_test=batch,
                         seed=42, progress=False)
        metadata = read_metadata(data_dir)
        config = config_for_dataset(fast.config, {"decoder": "sim", "skip_first": False}, metadata,
                                    fast.by_source, data_dir)
        batches = list(loop.split_dataset(data_dir, "train", config, training=True, seed=42, frames=None)
                       .take(args.measured + 1))
        print(f"NRI (sim.), {args.simulation}{args.nodes}: batch {batch}, "
              f"{config.simulator['steps_per_frame']} leapfrog steps a frame, prediction_steps "
              f"{config.prediction_steps}, the fast preset's encoder ({config.encoder}, hidden "
              f"{config.encoder_hidden})")
        print(timing.load_average("before"))
        rates = {}
        for name in ("plain loop", "compiled (XLA)"):
            keras.utils.set_random_seed(42)
            model = loop.build_model(config, metadata.nodes, len(batches))
            if name == "plain loop":
                model.decoder.integrate_in_training = model.decoder.integrate
            model.train_on_batch(*batches[0])              # traces (and compiles) once

            def run():
                for trajectories, edges in batches[1:]:
                    model.train_on_batch(trajectories, edges)

            rates[name] = timing.best_rate(run, batch * args.measured, args.repeats)
            print(f"  {name:15s} {rates[name]:8.1f} samples/s")
        print(f"  compiled / plain: {rates['compiled (XLA)'] / rates['plain loop']:.2f}x")
        print(timing.load_average("after"))


if __name__ == "__main__":
    main()
