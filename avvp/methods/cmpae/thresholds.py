"""`avvp thresholds`: CMPAE's per-class visual thresholds of one run (docs/methods/cmpae.md#cmpae-gating).

The search, as CMPAE releases it: on the validation split, for each class c on its own, try tau_c in
{0.25, 0.30, ..., 0.70} with every other class at the default 0.45, under CMPAE's gating (audio 0.45, segments
0.25); keep the tau_c with the best event-level VISUAL F, a tie keeping the larger tau. 25 x 10 candidates.

Changing tau_c changes only class c's visual row of each video, opened or closed as a whole by the gate, so one
forward pass and one count of events serve every candidate: per candidate only column c of the per-video TP, FP,
FN counts is swapped (the open row's counts, or none predicted) and the protocol's own `video_f` scores it, so
each candidate's F is exactly what `avvp evaluate` would report for it.

Modes: `tuned` (the search above), `released` (the values CMPAE ships, avvp/methods/cmpae/cmpae_ratios.csv: real
LLP only), `fixed` (0.45 everywhere). Snapshots: `selected` (the run's best.pt, the clean default) or `early`
(early.pt, the recipe's snapshot of epoch 8 that CMPAE's release tunes on). The file it writes, RUN/thresholds.json:
    {"format": 1, "mode", "snapshot", "grid", "default", "thresholds": [25], "scores": [25 best visual F, %],
     "baseline": visual F with 0.45 everywhere (%), "split", "seconds"}
`avvp evaluate` passes `thresholds` to the `cmpae` gating when the file exists.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import torch

from avvp import outputs, paths
from avvp.constants import NUM_CLASSES
from avvp.data import dataset
from avvp.errors import AvvpError
from avvp.evaluation import metrics
from avvp.evaluation.evaluate import load_trained, predict
from avvp.io import load_torch, read_json, write_json
from avvp.methods.cmpae import thresholds_file
from avvp.methods.cmpae.gating import CMPAE_SEGMENT, CMPAE_VISUAL
from avvp.methods.cmpae.released import released_thresholds

FORMAT = 1
GRID = tuple(round(0.25 + 0.05 * k, 2) for k in range(10))      # 0.25 ... 0.70
MODES = ("tuned", "released", "fixed")
SNAPSHOTS = ("selected", "early")


def visual_counts(probs: dict, gt_visual: np.ndarray):
    """Per (video, class) event TP, FP, FN of the visual rows with every gate open, and the ground truth's event
    count (the FN of a closed row)."""
    open_rows = np.ascontiguousarray((np.asarray(probs["frame_prob"])[:, :, 1, :] >= CMPAE_SEGMENT)
                                     .transpose(0, 2, 1))
    gt = np.asarray(gt_visual) != 0
    tp, fp, fn = metrics.event_counts(open_rows, gt)
    return tp, fp, fn, metrics.event_counts(np.zeros_like(gt), gt)[2]


def search(probs: dict, gt_visual: np.ndarray, grid=GRID, default: float = CMPAE_VISUAL) -> dict:
    """The per-class search on one split's probabilities: thresholds (25,), each one's visual F, the baseline."""
    tp_open, fp_open, fn_open, n_gt = visual_counts(probs, gt_visual)
    v_prob = np.asarray(probs["v_prob"], dtype=np.float32)

    def gated(gate: np.ndarray) -> list[np.ndarray]:
        return [np.where(gate, tp_open, 0), np.where(gate, fp_open, 0), np.where(gate, fn_open, n_gt)]

    def visual_f(tp, fp, fn) -> float:
        return 100 * float(np.mean(metrics.video_f(tp, fp, fn)))

    base = gated(v_prob >= np.float32(default))
    thresholds, scores = [], []
    for c in range(v_prob.shape[1]):
        best = None
        for tau in grid:                                 # ascending, so `>=` keeps the larger tau on a tie
            gate = v_prob[:, c] >= np.float32(tau)
            candidate = [x.copy() for x in base]
            for x, opened, closed in zip(candidate, (tp_open, fp_open, fn_open), (0, 0, n_gt[:, c])):
                x[:, c] = np.where(gate, opened[:, c], closed)
            score = visual_f(*candidate)
            if best is None or score >= best[1]:
                best = (tau, score)
        thresholds.append(best[0])
        scores.append(best[1])
    return {"grid": list(grid), "default": default, "thresholds": thresholds, "scores": scores,
            "baseline": visual_f(*base)}


def read_thresholds(run: Path) -> list[float] | None:
    """The run's tuned thresholds (RUN/thresholds.json), or None when it has none; a bad file is one line."""
    path = thresholds_file(run)
    if not path.exists():
        return None
    record = read_json(path, "thresholds file")
    tau = record.get("thresholds") if isinstance(record, dict) else None
    if record.get("format") != FORMAT or not isinstance(tau, list) or len(tau) != NUM_CLASSES \
            or not all(isinstance(t, (int, float)) and 0 <= t <= 1 for t in tau):
        raise AvvpError(f"{path}: not a thresholds file of format {FORMAT} (25 numbers in [0, 1] under "
                        f"'thresholds'); run `avvp thresholds --run {run}` again")
    return [float(t) for t in tau]


def _probabilities(run: Path, snapshot: str, data: str | None, device: str) -> tuple[dict, object]:
    info, model = load_trained(run, device)
    if snapshot == "early":
        early = paths.snapshot_pt(run, "early")
        if not early.is_file():
            raise AvvpError(f"{early}: no early snapshot (its recipe keeps none: `snapshots: {{early: N}}`); use "
                            "--snapshot selected")
        model.load_state_dict(load_torch(early, map_location=device, remedy=f"train {run} again"))
        model.eval()
    split = dataset.load_split(data or info["data"], "val")
    with torch.no_grad():
        return predict(model, split, device, info.get("precision", "fp32")), split


def main(args) -> None:
    run_dir = Path(args.run)
    t0 = time.perf_counter()
    record = {"format": FORMAT, "mode": args.mode, "snapshot": args.snapshot, "split": "val"}
    if args.mode == "tuned":
        probs, split = _probabilities(run_dir, args.snapshot, args.data, args.device)
        record.update(search(probs, split.gt_visual))
    else:
        info = outputs.run_info(run_dir)
        if args.mode == "released" and _annotation_version(args.data or info["data"]) == "synthetic":
            raise AvvpError(f"{run_dir}: --mode released: CMPAE's thresholds describe real LLP, not synthetic data")
        tau = released_thresholds() if args.mode == "released" else [CMPAE_VISUAL] * NUM_CLASSES
        record.update({"grid": list(GRID), "default": CMPAE_VISUAL, "thresholds": tau, "scores": None,
                       "baseline": None})
    record["seconds"] = round(time.perf_counter() - t0, 3)
    write_json(thresholds_file(run_dir), record)
    print(json.dumps({k: record[k] for k in ("mode", "snapshot", "thresholds", "seconds")}))


def _annotation_version(data: str) -> str:
    return read_json(paths.manifest_json(data), "dataset manifest").get("annotation_version", "unknown")


def gating_params(run: Path) -> dict:
    """The `cmpae` gating's parameters of a run: its thresholds file's tau (RunFile.read)."""
    return {"thresholds": read_thresholds(run)}
