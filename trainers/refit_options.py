"""What a refit (`trainers.refit`) is asked to do, and the refinement sweeps every
command uses by default, without TensorFlow (the command lines' --help reads them)."""

from __future__ import annotations

import dataclasses
import os

from data_pipelines.errors import UserError
from nri_tf.config import MAX_SEED

# Sweeps of a refinement (`nri_tf.refinement`) unless told: springs10's default model gains
# 4.2 points in 10 and none after (small graphs are searched exactly whatever the number).
REFINE_SWEEPS = 10


@dataclasses.dataclass(frozen=True)
class RefitOptions:
    """How a run is refit (`trainers.refit`).

    refine_sweeps: sweeps of `nri_tf.refinement.refine_edge_types` per system (0: the
      encoder's most likely graph as it is).
    epochs: passes over the training systems (springs5's cpu-budget decoder still gained
      in its 19th).
    lr: Adam's learning rate for the decoder (the run's final rate is a good guide).
    seed: batch order and dropout.
    distill: also train the encoder to output the refined graphs (else it is kept as it is).
    encoder_lr: Adam's learning rate for the encoder (``distill``).
    """
    refine_sweeps: int = REFINE_SWEEPS
    epochs: int = 20
    lr: float = 1e-4
    seed: int = 42
    distill: bool = True
    encoder_lr: float = 1e-3

    def check(self) -> None:
        """UserError for an option out of range."""
        if self.refine_sweeps < 0:
            raise UserError(f"--refine-sweeps must be >= 0, got {self.refine_sweeps}")
        if self.epochs < 1:
            raise UserError(f"--epochs must be >= 1, got {self.epochs}")
        for flag, value in (("--lr", self.lr), ("--encoder-lr", self.encoder_lr)):
            if not value > 0:
                raise UserError(f"{flag} must be positive, got {value}")
        if not 0 <= self.seed <= MAX_SEED:
            raise UserError(f"--seed must be in [0, {MAX_SEED}], got {self.seed}")


def default_output(run_dir: str) -> str:
    """Where a refit of ``run_dir`` goes unless told: beside it, ``<run>-refit``."""
    return os.path.normpath(run_dir) + "-refit"
