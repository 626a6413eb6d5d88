"""What the command lines share: boolean flags in both forms."""

from __future__ import annotations

import pytest

from data_pipelines import generate
from nri_tf import evaluate as evaluate_cli


def test_generate_booleans_have_both_forms():
    parser = generate.build_parser()
    assert parser.parse_args([]).interacting and not parser.parse_args([]).overwrite
    assert not parser.parse_args(["--no-interacting"]).interacting
    assert parser.parse_args(["--overwrite"]).overwrite
    assert not parser.parse_args(["--no-overwrite"]).overwrite
    assert generate.given_options(["--no-interacting"]) == {"interacting"}
    with pytest.raises(ValueError, match="--interacting does not apply to --source cmu"):
        generate.check_source_options("cmu", generate.given_options(["--source", "cmu", "--no-interacting"]))


def test_evaluate_dynamic_graph_defaults_to_the_run():
    assert evaluate_cli.parse_args(["--run", "r"]).dynamic_graph is None
    assert evaluate_cli.parse_args(["--run", "r", "--dynamic-graph"]).dynamic_graph is True
    assert evaluate_cli.parse_args(["--run", "r", "--no-dynamic-graph"]).dynamic_graph is False
