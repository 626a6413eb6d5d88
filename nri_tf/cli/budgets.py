"""How much data and training one experiment table gets: the budgets of
`python -m nri_tf.experiments` (numpy-free to import, so that ``--help`` lists them fast).

  `Budget`    split sizes, NRI settings, LSTM baseline settings, per-source rules
  `budgets`   name -> `Budget`: smoke (CI), cpu (hours), paper
"""

from __future__ import annotations

import dataclasses

from nri_tf.presets import PAPER_DATA, PRESETS
from trainers.refit_options import RefitOptions

REFIT = RefitOptions()     # the refit's settings (`trainers.refit`) outside the smoke budget


@dataclasses.dataclass(frozen=True)
class Budget:
    """How much data and training one table gets.

    data: split sizes of the simulated dataset.
    nri: NRIConfig values of every NRI-type model (learned, sim., full / true graph) and
      of the supervised encoder.
    baseline: "hidden", "epochs", "batch_size", "lr" of the LSTM baselines (motion capture's
      take the epochs and batch size of its ``by_source`` rule: `baseline_settings`).
    corr_lstm_epochs: Corr. (LSTM)'s training epochs (10 in the paper).
    refit_epochs: the epochs of NRI (learned)'s refit (`trainers.refit`).
    supervised_dropout: the Supervised encoder's dropout (the paper's 0.5 at hidden 256; 0 at
      hidden 64, where 0.5 cost 10 points, `nri_tf.baselines.supervised`).
    by_source: NRIConfig values per dataset source over ``nri`` (`nri_tf.presets.Preset.by_source`:
      e.g. type 0 = no edge where the simulator has a no-interaction type).
    """
    help: str
    data: dict
    nri: dict
    baseline: dict
    corr_lstm_epochs: int
    by_source: dict
    supervised_dropout: float
    refit_epochs: int


# Sources whose LSTM baselines train on the NRI models' schedule (the epochs and batch size
# of the data rule): the paper trains its motion-capture baselines like its NRI models. Other
# rules' schedules (e.g. the springs rule's 120 epochs) are the NRI models' alone.
BASELINES_ON_THE_NRI_SCHEDULE = ("cmu",)

# A rule's training schedule, which the smoke budget leaves out of every rule: its own 2
# epochs stand (the springs rule's 120 would make CI's tables 60 times as long).
SCHEDULE_FIELDS = ("epochs", "batch_size", "lr", "lr_decay")


def baseline_settings(baseline: dict, source: str, source_rule: dict, flags: dict) -> dict:
    """The LSTM baselines' settings: a budget's ``baseline``, with the epochs and batch size of
    the data rule (`Budget.by_source`) for sources in `BASELINES_ON_THE_NRI_SCHEDULE`
    (motion capture: 200 epochs of 8), and a command-line batch size (``flags``: NRIConfig
    values)."""
    schedule = source_rule if source in BASELINES_ON_THE_NRI_SCHEDULE else {}
    return {**baseline, **{k: v for k, v in schedule.items() if k in ("epochs", "batch_size")},
            **{k: v for k, v in flags.items() if k == "batch_size"}}


def budgets() -> dict:
    """name -> `Budget` of every budget."""
    def sizes(data):
        return {k: data[k] for k in ("num_train", "num_valid", "num_test")}

    fast = PRESETS["fast"]
    return {
        "smoke": Budget("minutes, for CI: 200 training systems, hidden 16, 2 epochs",
                        data={"num_train": 200, "num_valid": 50, "num_test": 50},
                        nri={"encoder_hidden": 16, "decoder_hidden": 16, "batch_size": 25, "lr": 1e-3,
                             "epochs": 2},
                        baseline={"hidden": 16, "epochs": 2, "batch_size": 25, "lr": 1e-3},
                        corr_lstm_epochs=1, by_source={
                            source: {k: v for k, v in rule.items() if k not in SCHEDULE_FIELDS}
                            for source, rule in fast.by_source.items()},
                        supervised_dropout=0.0, refit_epochs=2),
        "cpu": Budget("hours on 2 CPU cores: the default training preset ('fast': 10k systems, "
                      "hidden 64, the data's schedule as 'python -m nri_tf.train --help' lists it "
                      "under --epochs) for the NRI models and the supervised encoder (without "
                      "dropout), 10 epochs at hidden 64 for the LSTM baselines",
                      data=sizes(fast.data), nri=dict(fast.config),
                      baseline={"hidden": 64, "epochs": 10, "batch_size": 32, "lr": 1e-3},
                      corr_lstm_epochs=10, by_source=fast.by_source, supervised_dropout=0.0,
                      refit_epochs=REFIT.epochs),
        "paper": Budget("the paper's data sizes (50k/10k/10k) and settings (hidden 256, 500 "
                        "epochs): days on a CPU",
                        data=sizes(PAPER_DATA), nri={},
                        baseline={"hidden": 256, "epochs": 500, "batch_size": 128, "lr": 5e-4},
                        corr_lstm_epochs=10, by_source=PRESETS["paper"].by_source,
                        supervised_dropout=0.5,         # appendix D.1.1
                        refit_epochs=REFIT.epochs),
    }

