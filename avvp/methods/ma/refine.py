"""`avvp refine`: MA's modality-aware label refinement, step 2, from a trained step-1 run (docs/methods/ma.md).

Step 1 is a row like any other (STEP1_ROW of config/variants.yaml: HAN with MA's temporal contrastive term for
12 epochs, the last epoch kept), trained by `avvp train`; `avvp refine --run` reads its selected weights. Step 2
swaps tracks between videos whose labels are disjoint: if a class's prediction stays low when only the visual track of
video i is kept (audio swapped for a partner's), the visual track never showed it, so the class leaves i's visual
labels; symmetrically for audio. The result, per training video, is a set of audio labels and a set of visual
labels, which MA, MA* and the "+ Ours" rows on MA* train on. On the synthetic dataset, where the true modality of
every training label is known, the summary also reports the refinement's precision and recall.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import torch

from avvp.constants import CLASSES, NUM_CLASSES
from avvp.data import dataset
from avvp.errors import AvvpError
from avvp.evaluation import label_quality
from avvp.evaluation.evaluate import load_trained, predict
from avvp.io import read_npz, write_json, write_npz
from avvp.methods.ma import labels_file, summary_file


def partners(labels: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """For each video a random other video whose labels share no class with its own."""
    n = len(labels)
    out = np.empty(n, dtype=np.int64)
    y = labels.astype(np.float32)
    for start in range(0, n, 1024):  # shared-class counts in row blocks: memory stays small at LLP's size
        overlap = y[start:start + 1024] @ y.T
        for row, i in enumerate(range(start, min(start + 1024, n))):
            candidates = np.flatnonzero(overlap[row] == 0)
            if len(candidates) == 0:
                raise AvvpError(f"training video {i} shares a class with every other video: no partner to swap")
            out[i] = rng.choice(candidates)
    return out


def swapped_probs(model, train: dataset.Split, audio_from: np.ndarray, visual_from: np.ndarray, device, precision):
    """a_prob and v_prob of the frozen model on (audio of audio_from[i], visual+motion of visual_from[i])."""
    a_idx, v_idx = torch.from_numpy(audio_from), torch.from_numpy(visual_from)
    mixed = dataset.Split(name="train", filenames=train.filenames, audio=train.audio[a_idx],
                          visual=train.visual[v_idx], motion=train.motion[v_idx], labels=train.labels)
    p = predict(model, mixed, device, precision)
    return p["a_prob"], p["v_prob"]


def threshold_errors(model, split: dataset.Split, device="cpu", precision="fp32") -> dict[str, np.ndarray]:
    """Per modality, the (25,) per-class error rates of the model on the split's weak labels, over their max.

    MA's removal thresholds: classes the model knows badly get a higher bar before a label is removed.
    Measured on the TRAINING split, as MA does; val/test refinements reuse them (a property of the model).
    """
    y = split.labels.numpy().astype(np.int64)
    i = np.arange(len(y))
    a_orig, v_orig = swapped_probs(model, split, i, i, device, precision)
    err = {"audio": 1.0 - ((a_orig > 0.5) == (y > 0)).mean(0), "visual": 1.0 - ((v_orig > 0.5) == (y > 0)).mean(0)}
    return {m: e / max(e.max(), 1e-12) for m, e in err.items()}


def refine_labels(model, train: dataset.Split, seed: int, device="cpu", precision="fp32", info: dict | None = None,
                  errors: dict | None = None):
    """Step 2: (refined audio labels, refined visual labels), both (N, 25) uint8.

    `errors`: the thresholds' error rates (threshold_errors of the training split); by default measured on
    `train`, which must then be the training split. `info`, when given, receives them (rounded, for reading)
    and `fitted_exactly` (from the exact rates): a step-1 model that fits every training label (error 0)
    removes nothing, whatever the swaps show.
    """
    y = train.labels.numpy().astype(np.int64)
    rng = np.random.default_rng(seed)
    j = partners(y, rng)
    i = np.arange(len(y))
    if errors is None:
        errors = threshold_errors(model, train, device, precision)
    err_a, err_v = errors["audio"], errors["visual"]
    if info is not None:
        info["threshold_error"] = {m: {c: round(float(e), 4) for c, e in zip(CLASSES, err)}
                                   for m, err in (("audio", err_a), ("visual", err_v))}
        info["fitted_exactly"] = fitted_exactly({"audio": err_a, "visual": err_v}, y)
    a_swap, v_keep = swapped_probs(model, train, j, i, device, precision)   # audio swapped, visual kept
    a_keep, v_swap = swapped_probs(model, train, i, j, device, precision)   # visual swapped, audio kept
    drop_visual = (a_swap < 0.5 * err_v) & (v_keep < 0.5 * err_v) & (y > 0)
    drop_audio = (a_keep < 0.5 * err_a) & (v_swap < 0.5 * err_a) & (y > 0)
    return (y * ~drop_audio).astype(np.uint8), (y * ~drop_visual).astype(np.uint8)


def fitted_exactly(errors: dict, labels: np.ndarray) -> dict:
    """Per modality, the classes step 1 fits exactly on the training labels, and how many labels they hold.

    `errors`: per modality, the (25,) training error rates of refine_labels; `labels`: (N, 25) weak labels.

    MA's threshold is 0.5 x the normalised error: such a class can never lose a label, whatever the swaps
    show. When they hold most labels (a small training set memorised), the refinement is inert.
    """
    out = {}
    for m, err in errors.items():
        exact = np.asarray(err) == 0
        out[m] = {"classes": int(exact.sum()), "labels": int(labels[:, exact].sum()), "of_labels": int(labels.sum())}
    return out


def summary(train: dataset.Split, audio: np.ndarray, visual: np.ndarray) -> dict:
    """Removals per class and modality, and precision/recall against the true modality when it is known."""
    y = train.labels.numpy().astype(np.uint8)
    removed = {"audio": (y > audio), "visual": (y > visual)}
    out = {"videos": int(len(y)), "labels": int(y.sum()),
           "removed": {m: int(r.sum()) for m, r in removed.items()},
           "removed_per_class": {m: {c: int(n) for c, n in zip(CLASSES, r.sum(0)) if n} for m, r in removed.items()}}
    if train.true_audio is not None and train.true_visual is not None:
        out["against_truth"] = label_quality.score_removals(y, {"audio": audio, "visual": visual},
                                                            {"audio": train.true_audio, "visual": train.true_visual})
    return out


def against_annotations(model, packed, seed: int, errors: dict, device="cpu", precision="fp32") -> dict:
    """{"val": scores, "test": scores}: step 2 of the trained step-1 model on each annotated split, scored against
    its dense annotations (label_quality.split_removal_scores): label quality that real LLP can measure.

    `errors`: the removal thresholds' error rates measured on the TRAINING split (threshold_errors), as MA uses
    them: the thresholds belong to the trained model, not to the split's own labels. Partners are drawn within
    the split; a split where some video shares a class with every other is skipped with the reason (`avvp
    refine`'s own output must not fail for a diagnostic).
    """
    out = {}
    for name in ("val", "test"):
        split = dataset.load_split(packed, name)
        try:
            refined = refine_labels(model, split, seed, device, precision, errors=errors)
            out[name] = label_quality.split_removal_scores(split, *refined)
        except AvvpError as e:
            out[name] = {"skipped": str(e)}
    return out


def load_refined(path: str | Path, train: dataset.Split) -> tuple[torch.Tensor, torch.Tensor]:
    """Refined audio and visual labels (N,25) from `avvp refine`, checked against the training split."""
    path = Path(path)
    z = read_npz(path, ("filenames", "audio", "visual"), "refined labels",
                 "make them again with `avvp refine` (its --out folder holds them)")
    files, audio, visual = list(map(str, z["filenames"])), z["audio"], z["visual"]
    if files != train.filenames:
        raise AvvpError(f"{path}: refined labels are for other training videos than the packed dataset's")
    return torch.from_numpy(audio.astype(np.float32)), torch.from_numpy(visual.astype(np.float32))


def refined(train: dataset.Split, files: dict):
    """The label source `refined`: MA's modality-aware labels (its file `refined`), aligned to the split."""
    return load_refined(files["refined"], train)


def main(args) -> None:
    out = Path(args.out)
    run = Path(args.run)
    info, model = load_trained(run, args.device)
    data = args.data or info["data"]
    train = dataset.load_split(data, "train")
    errors = threshold_errors(model, train, args.device, args.precision)
    thresholds: dict = {}
    audio, visual = refine_labels(model, train, args.seed, args.device, args.precision, thresholds, errors)
    summary_ = summary(train, audio, visual)
    summary_.update(thresholds)
    for m, f in summary_["fitted_exactly"].items():
        if f["labels"] >= 0.9 * f["of_labels"]:
            print(f"warning: step 1 fits the {m} training labels of {f['classes']} of {NUM_CLASSES} classes exactly; "
                  f"their {f['labels']} of {f['of_labels']} labels cannot be refined (threshold 0). Fewer step-1 "
                  "epochs or more training videos avoid that", file=sys.stderr, flush=True)
    summary_.update({"seed": args.seed, "step1_run": str(run), "step1_epochs": info["epochs"],
                     "data": str(Path(data).resolve()), "data_manifest_sha256": dataset.manifest_sha256(data)})
    # Step 2 on val and test too, with the training split's thresholds, scored against their dense annotations.
    summary_["against_annotations"] = against_annotations(model, data, args.seed, errors, args.device, args.precision)
    write_json(summary_file(out), summary_)
    # refined_labels.npz last: it is the rule's completion marker
    write_npz(labels_file(out), filenames=np.array(train.filenames), audio=audio, visual=visual)
    print(json.dumps({k: summary_[k] for k in ("removed",) + (("against_truth",) if "against_truth" in summary_ else ())}))
