"""The synthetic LLP: statistics within sampling error of the real files, layout, determinism."""

from __future__ import annotations

import hashlib
import json
import re

import numpy as np
import pandas as pd
import pytest
from conftest import synth_llp

from avvp.constants import CLASSES, DENSE_CSV, FEATURES, WEAK_CSV
from avvp.data import synth
from avvp.data.llp import LLPPaths, read_annotations

Z = 4.5     # tolerance in standard errors (many comparisons; a true mismatch is far larger)


def within_sampling_error(observed, expected, n):
    """Binomial frequencies: |obs - exp| <= Z standard errors (+ a floor for tiny probabilities)."""
    se = np.sqrt(np.maximum(expected * (1 - expected), 1e-4) / n)
    return np.abs(observed - expected) <= Z * se


@pytest.mark.parametrize("source", ["shipped", "fitted"])
def test_label_set_fit_is_exact(source):
    """The shipped llp_label_sets.csv, and a fresh NNLS fit, both meet the real marginals and co-occurrences. They
    need not be equal: the fit is not unique, and which solution the NNLS ends on follows the BLAS kernels' last
    bits (the reason the generator reads the shipped one)."""
    sets, prob = synth.label_set_distribution() if source == "shipped" else synth.fit_label_set_distribution()
    assert {len(s) for s in sets} <= {1, 2, 3} and np.isclose(prob.sum(), 1)
    target = synth.target_statistics()
    member = np.zeros((len(sets), 25))
    for k, s in enumerate(sets):
        member[k, list(s)] = 1
    assert np.allclose(prob @ member, target["label_freq"], atol=1e-9)
    pair = np.einsum("k,ki,kj->ij", prob, member, member)
    np.fill_diagonal(pair, 0)
    assert np.allclose(pair, target["pair_freq"], atol=1e-9)


def test_sampled_labels_match_marginals_and_cooccurrence():
    n = 6000
    labels = synth.sample_labels(np.random.default_rng(1), n)
    assert set(labels.sum(1)) <= {1, 2, 3}
    target = synth.target_statistics()
    assert within_sampling_error(labels.mean(0), target["label_freq"], n).all()
    pair = (labels.T.astype(float) @ labels) / n
    np.fill_diagonal(pair, 0)
    assert within_sampling_error(pair, target["pair_freq"], n).all()
    # Mean labels per video: the real 3348 labels over 1849 videos.
    assert abs(labels.sum(1).mean() - 3348 / 1849) < 0.05


def test_modalities_and_event_statistics_match_the_class_file():
    st = synth.class_stats()
    n = 2000
    rng = np.random.default_rng(2)
    kinds = synth.sample_modalities(rng, np.ones((n, 25), np.uint8))
    for k, col in enumerate(["p_audio_only", "p_visual_only", "p_both", "p_neither"]):
        p = st[col].to_numpy() / st[["p_audio_only", "p_visual_only", "p_both", "p_neither"]].sum(axis=1).to_numpy()
        assert within_sampling_error((kinds == k).mean(0), p, n).all(), col
    # Events in both modalities for every class: mean active seconds and event counts per class.
    n = 800
    audio, visual = synth.sample_events(rng, np.full((n, 25), 2, np.int8), synth.PARAMS["max_events"])
    for mask, m in ((audio, "audio"), (visual, "visual")):
        segs = mask.sum(2)
        se = segs.std(0) / np.sqrt(n) + 1e-3
        assert (np.abs(segs.mean(0) - st[f"mean_{m}_segs"].to_numpy()) <= Z * se).all(), m
        runs = (np.diff(mask.astype(np.int8), axis=2, prepend=0) == 1).sum(2)
        se = runs.std(0) / np.sqrt(n) + 1e-3
        assert (np.abs(runs.mean(0) - st[f"mean_{m}_events"].to_numpy()) <= Z * se + 0.02).all(), m
    assert audio[:, CLASSES.index("Speech")].sum(1).mean() < 6         # short classes stay short
    # Audio and visual events of a class line up about as much as in LLP.
    iou = ((audio & visual).sum(2) / np.maximum((audio | visual).sum(2), 1)).mean(0)
    assert np.corrcoef(iou, st["av_overlap_iou"].to_numpy())[0, 1] > 0.6
    assert abs(iou.mean() - st["av_overlap_iou"].mean()) < 0.08


@pytest.mark.parametrize("k,length", [(1, 1), (1, 10), (2, 3), (3, 8), (5, 5)])
def test_place_events_gives_k_runs_of_total_length(k, length):
    rng = np.random.default_rng(k * 10 + length)
    for _ in range(50):
        mask = synth.place_events(k, length, rng.random(21))
        assert mask.sum() == length
        assert len(synth.events_of(mask)) == k


def sha256_tree(root):
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def test_same_seed_identical_files_different_seed_different(tmp_path, tiny_llp):
    again = sha256_tree(synth_llp(tmp_path / "again", seed=0))
    first = sha256_tree(tiny_llp)
    assert again == first
    other = sha256_tree(synth_llp(tmp_path / "other", seed=1))
    assert set(other.values()).isdisjoint(first.values())


def test_layout_shapes_filenames_and_truth(tiny_llp):
    manifest = json.loads((tiny_llp / "synth_manifest.json").read_text())
    assert manifest["sizes"] == synth.SIZES["tiny"] == {"train": 64, "val": 24, "test": 24}
    assert manifest["params"]["snr"] == synth.PARAMS["snr"] and manifest["seed"] == 0
    names = []
    for split in ("train", "val", "test"):
        df = pd.read_csv(tiny_llp / WEAK_CSV[split], sep="\t")
        assert len(df) == manifest["sizes"][split]
        names += df["filename"].tolist()
    assert len({n[:11] for n in names}) == len(names)
    for n in names:
        m = re.fullmatch(r"[A-Za-z0-9_-]{11}_(\d+)_(\d+)", n)
        assert m and int(m[2]) == int(m[1]) + 10, n
    for folder, shape in FEATURES.values():
        files = sorted((tiny_llp / "feats" / folder).glob("*.npy"))
        assert len(files) == len(names)
        x = np.load(files[0])
        assert x.shape == shape and x.dtype == np.float32
    dense = pd.read_csv(tiny_llp / DENSE_CSV["audio"], sep="\t")
    assert (dense["offset"] > dense["onset"]).all() and set(dense["filename"]) <= set(names[64:])
    ann = read_annotations(LLPPaths.from_root(tiny_llp))
    true_a, true_v = ann.train_truth
    assert ((true_a | true_v) <= ann.splits["train"].labels).all()
    assert (true_a | true_v).sum() >= 0.9 * ann.splits["train"].labels.sum()   # 'neither' is rare


def test_features_carry_the_class_signal_where_the_events_are():
    """A second where a class is audible sits further along its prototype than one where it is not."""
    params = synth.PARAMS
    rng = np.random.default_rng(3)
    protos = {k: synth.prototypes(rng, FEATURES[k][1][-1], params) for k in FEATURES}
    d = synth.draw_split(rng, [f"v{i}" for i in range(300)], params)
    f = synth.features(rng, d.audio, d.visual, protos, params)
    sp = CLASSES.index("Speech")
    unit = protos["audio"][sp] / np.linalg.norm(protos["audio"][sp])
    proj = f["audio"] @ unit                                   # (n, 10)
    on, off = proj[d.audio[:, sp] == 1], proj[d.audio[:, sp] == 0]
    gap = on.mean() - off.mean()          # snr times the mean amplitude (1), less the family overlap
    assert 0.8 * params["snr"] < gap < 1.1 * params["snr"]
    frame_var = f["visual"].reshape(300, 10, 8, -1).var(axis=2, ddof=1).mean()
    assert np.isclose(frame_var, params["frame_jitter"] ** 2, rtol=0.02)


def test_synth_refuses_to_overwrite_a_foreign_folder_but_regenerates_its_own(tmp_path, capsys):
    from avvp import cli
    out = tmp_path / "mine"
    out.mkdir()
    (out / "notes.txt").write_text("keep")
    assert cli.main(["synth", "--preset", "tiny", "--out", str(out)]) == 1
    assert "refusing to overwrite" in capsys.readouterr().err and (out / "notes.txt").exists()
    tiny = synth_llp(tmp_path / "tiny", seed=0)
    (tiny / "AVVP_train.csv").write_text("damaged")
    synth_llp(tiny, seed=0)
    assert (tiny / "AVVP_train.csv").read_text().startswith("filename\tevent_labels\n")

