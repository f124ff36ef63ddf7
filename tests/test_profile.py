"""`avvp profile`: Table 4's figures in the paper's (thop) convention, and the true counts."""

from __future__ import annotations

import json

import pytest

from avvp import variants
from avvp.cli import main
from avvp.models import build
from avvp.reporting.profile import count, random_inputs

B, T, F, D, C = 64, 10, 80, 512, 25
# HAN by hand (batch 64, 80 frames), multiply-accumulates of every nn.Linear:
PROJECTIONS = B * T * 128 * D + B * F * 2048 * D + B * T * 512 * D + B * T * 1024 * D   # 5,913,968,640
FFN_PER_LAYER = 2 * (2 * B * T) * D * D                  # two Linears, on audio and visual: 671,088,640
HEADS = 3 * (B * T * 2) * D * C                          # fc_prob, fc_frame_att, fc_av_att: 49,152,000
# nn.MultiheadAttention, which thop ignores: packed q/k/v and out projections, Q K^T and A V.
ATTENTION_PER_LAYER = 2 * ((2 * B * T) * D * 4 * D + 2 * (2 * B) * T * T * D)
LINEAR = lambda i, o: i * o + o                                                        # noqa: E731
PARAMS_PROJ = LINEAR(128, D) + LINEAR(2048, D) + LINEAR(512, D) + LINEAR(1024, D)
PARAMS_LAYER_THOP = 2 * LINEAR(D, D) + 2 * 2 * D          # feed-forward + two layer norms
PARAMS_MHA = 2 * (4 * D * D + 4 * D)                      # self + cross attention


def profiled(name):
    return count(build(variants.get(name).model), random_inputs(B))


@pytest.fixture(scope="module")
def han():
    return profiled("HAN")


def test_han_matches_table_4_exactly(han):
    assert PROJECTIONS + FFN_PER_LAYER + HEADS == 6_634_209_280
    assert han["paper_macs"] == 6_634_209_280
    assert han["paper_params"] == PARAMS_PROJ + PARAMS_LAYER_THOP + 3 * LINEAR(D, C)
    assert round(han["paper_params"] / 1e6, 2) == 2.47


def test_han_true_counts_include_attention(han):
    assert han["true_flops"] == 2 * (6_634_209_280 + ATTENTION_PER_LAYER)
    assert han["true_params"] == han["paper_params"] + PARAMS_MHA


@pytest.mark.parametrize("name,layers,paper_gmacs,paper_mparams", [("HAN 2 Layers", 2, 7.28, 2.99),
                                                                  ("HAN 3 Layers", 3, 7.97, 3.52)])
def test_released_layers_add_one_feed_forward_each(han, name, layers, paper_gmacs, paper_mparams):
    got = profiled(name)
    extra = layers - 1
    assert got["paper_macs"] == han["paper_macs"] + extra * FFN_PER_LAYER
    assert got["paper_params"] == han["paper_params"] + extra * PARAMS_LAYER_THOP
    assert got["true_flops"] == han["true_flops"] + 2 * extra * (FFN_PER_LAYER + ATTENTION_PER_LAYER)
    # Table 4 prints 7.28 G / 2.9 M and 7.97 G / 3.5 M: ours are 7.31 G / 3.00 M and 7.98 G / 3.52 M.
    assert got["paper_macs"] / 1e9 == pytest.approx(paper_gmacs, abs=0.03)
    assert got["paper_params"] / 1e6 == pytest.approx(paper_mparams, abs=0.01)


def test_cli_prints_and_writes_the_json(tmp_path, capsys):
    out = tmp_path / "profile" / "han_cm_co.json"
    assert main(["profile", "--variant", "HAN + CM-Co", "--batch", "2", "--out", str(out)]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert json.loads(out.read_text()) == printed
    assert list(printed) == ["variant", "batch", "paper_macs", "paper_params", "true_flops", "true_params"]
    assert printed["variant"] == "HAN + CM-Co" and printed["batch"] == 2
    # thop sees no attention weights, and CM-Co replaces HAN's segment classifier (never built).
    assert printed["paper_params"] < printed["true_params"]
    assert 2 * printed["paper_macs"] < printed["true_flops"]


def test_cli_unknown_variant_is_exit_1(capsys):
    assert main(["profile", "--variant", "No Such Row"]) == 1
    assert "unknown variant" in capsys.readouterr().err


def test_true_flops_count_the_lstms():
    # AVSDN at batch 2 by hand: projections + heads + three LSTMs (1024 -> 512) over 10 steps.
    b = 2
    linear_macs = b * T * 128 * D + b * F * 2048 * D + b * T * 512 * D + b * T * 1024 * D + 3 * (b * T * 2) * D * C
    lstm_macs = 3 * (b * T) * 4 * D * (2 * D + D)
    got = count(build(variants.get("AVSDN").model), random_inputs(b))
    assert got["true_flops"] == 2 * (linear_macs + lstm_macs)
    assert got["true_params"] == got["paper_params"]          # thop has a rule for every AVSDN module
