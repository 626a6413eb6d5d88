"""Command-line flags derived from the `NRIConfig` fields: one ``--field-name`` per field.

Flags default to "not given", so that presets and the data supply the defaults underneath
them (`nri_tf.presets`); each flag's help shows what a run uses without it.

Building blocks:
  `add_config_arguments`    the flags, on an argparse parser
  `config_overrides`        the NRIConfig values given on the command line
  `effective_default_help`  the value a run uses when the flag is not given
"""

from __future__ import annotations

import argparse
import dataclasses
from typing import Any

from nri_tf.config import NRIConfig
from nri_tf.presets import DATA_DECIDED, DEFAULT_PRESET, PRESETS, Preset

def add_config_arguments(parser) -> None:
    """Adds one flag per NRIConfig field (``--field-name``) to an argparse parser.

    Flags default to "not given" so that presets and the data can supply defaults
    underneath them; `config_overrides` collects the ones the user did give. Each flag's
    help shows the value a run uses without it (`effective_default_help`). Boolean fields
    get both forms (``--skip-first`` / ``--no-skip-first``).
    """
    group = parser.add_argument_group(
        "model and training hyperparameters (NRIConfig; a flag wins over the data's settings, "
        "which win over the preset's)")
    for field in dataclasses.fields(NRIConfig):
        meta = field.metadata
        if not meta.get("cli", True):
            continue
        flag = "--" + field.name.replace("_", "-")
        help_text = f"{meta['help']} (default: {effective_default_help(field)})"
        if field.type in ("bool", bool):
            group.add_argument(flag, dest=field.name, action=argparse.BooleanOptionalAction,
                               default=argparse.SUPPRESS, help=help_text)
        elif field.type in ("list", list):
            group.add_argument(flag, dest=field.name, nargs="*", type=float, default=argparse.SUPPRESS,
                               help=f"{help_text}; without values: {meta['empty_help']}")
        else:
            kind = {"int": int, "float": float, "str": str}.get(str(field.type), type(field.default))
            group.add_argument(flag, dest=field.name, type=kind, choices=meta.get("choices"),
                               default=argparse.SUPPRESS, help=help_text)


def effective_default_help(field: dataclasses.Field) -> str:
    """What a run uses when the flag is not given, for ``--help``: the default preset's
    value, the data's rule where the data decides (`data_settings`), and the other
    presets' values where they differ."""
    def shown(value, rule: bool = False):
        if isinstance(value, list) and not value:     # a rule's empty list: as the flag alone
            return field.metadata["empty_short"] if rule else "none"
        return "on" if value is True else "off" if value is False else str(value)

    def value_in(preset: Preset) -> str:
        value = preset.config.get(field.name, _default_of(field))
        by_source = {source: settings[field.name] for source, settings in preset.by_source.items()
                     if field.name in settings}
        if by_source:
            rules = ", ".join(f"{source} {shown(v, rule=True)}" for source, v in sorted(by_source.items()))
            return f"from the data: {rules}, other data {shown(value)}"
        return field.metadata.get("default_help", shown(value))

    text = value_in(PRESETS[DEFAULT_PRESET])
    if field.name in DATA_DECIDED:
        text = f"{DATA_DECIDED[field.name]}, else {text}"
    others = [f"--preset {name}: {value_in(preset)}" for name, preset in sorted(PRESETS.items())
              if name != DEFAULT_PRESET and value_in(preset) != value_in(PRESETS[DEFAULT_PRESET])]
    return "; ".join([text] + others)


def config_overrides(args) -> dict:
    """The NRIConfig fields set on the command line, as a dict."""
    names = {f.name for f in dataclasses.fields(NRIConfig)}
    return {k: v for k, v in vars(args).items() if k in names}


def _default_of(field: dataclasses.Field) -> Any:
    if field.default_factory is not dataclasses.MISSING:
        return field.default_factory()
    return field.default

