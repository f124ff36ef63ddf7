"""`avvp evaluate`: the ten LLP numbers of a trained run, and its predictions for the figures.

Also home of `predict` and `score_split` (a model's ten numbers on a split under a gating), which training uses
every epoch for model selection: one batched forward pass over the split plus the vectorised metrics.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch.overrides import TorchFunctionMode

from avvp import outputs, paths
from avvp.constants import NUM_SEGMENTS
from avvp.data import dataset
from avvp.errors import AvvpError
from avvp.evaluation import gatings, metrics, stats
from avvp.io import load_torch, write_json, write_npz
from avvp.models import build
from avvp.models.precision import autocast
from avvp.registry import GATINGS

# CUDA's grid limit on one attention call's batch x heads: flash attention fails above it (pytorch issue #146704).
MAX_ATTENTION_BATCH = 65_535


class AttentionProbe(TorchFunctionMode):
    """Records the batch entries (x heads) of every attention call: each scaled_dot_product_attention (a model's
    own attention, and nn.MultiheadAttention's, which under a function mode takes its Python path), and each
    nn.MultiheadAttention by a hook (in case a fused path skips the first)."""

    def __init__(self):
        super().__init__()
        self.seen = [0]

    def __torch_function__(self, func, types, args=(), kwargs=None):
        if func is F.scaled_dot_product_attention:
            self.seen.append(math.prod(args[0].shape[:-2]))
        return func(*args, **(kwargs or {}))


def attention_batch_per_video(model) -> int:
    """The most batch entries (x heads) one video gives any attention call of `model`, from one forward of one
    video of zeros: 2 x heads for HAN's layer (audio and visual token sets), 2 x 10 x heads for a head attending
    per segment, 0 without attention."""
    probe = AttentionProbe()
    hooks = [m.register_forward_pre_hook(lambda m, args: probe.seen.append(args[0].shape[0] * m.num_heads))
             for m in model.modules() if isinstance(m, torch.nn.MultiheadAttention)]
    fc = model.inputs
    device = next(model.parameters()).device
    try:
        with probe:
            model(*(torch.zeros(1, NUM_SEGMENTS, layer.in_features, device=device)
                    for layer in (fc.fc_a, fc.fc_v, fc.fc_st)))
    finally:
        for hook in hooks:
            hook.remove()
    return max(probe.seen)


@torch.no_grad()
def chunk_size(model, device: str) -> int:
    """Videos per forward in evaluation: 512 on CPU (as ever: CPU numbers stay as they were); on CUDA, where a
    forward is launch-bound, 4,096 (LLP's validation split in one pass) or fewer, so that no attention call
    exceeds MAX_ATTENTION_BATCH (3,276 for 2 x 10 per video)."""
    if torch.device(device).type != "cuda":
        return 512
    per_video = attention_batch_per_video(model)
    return min(4096, MAX_ATTENTION_BATCH // per_video) if per_video else 4096


@torch.no_grad()
def predict(model, split: dataset.Split, device: str = "cpu", precision: str = "fp32",
            batch: int | None = None) -> dict:
    """Model outputs over a whole split, as numpy arrays (probabilities and time-pooled features).

    `batch` videos per forward: by default `chunk_size`.
    """
    model.eval()  # first: the probe of chunk_size then draws no dropout
    batch = batch or chunk_size(model, device)
    keep = ("global_prob", "a_prob", "v_prob", "frame_prob")
    parts: dict[str, list] = {k: [] for k in keep + ("pooled_audio", "pooled_visual")}
    for start in range(0, len(split), batch):
        sl = slice(start, start + batch)
        with autocast(precision, device):
            out = model(split.audio[sl].to(device), split.visual[sl].to(device), split.motion[sl].to(device))
        for k in keep:
            parts[k].append(out[k].float().cpu())
        parts["pooled_audio"].append(out["x_a"].float().mean(1).cpu())
        parts["pooled_visual"].append(out["x_v"].float().mean(1).cpu())
    return {k: torch.cat(v).numpy() for k, v in parts.items()}


def score_split(model, split: dataset.Split, gating: str, device: str = "cpu", precision: str = "fp32") -> dict:
    if split.gt_audio is None:
        raise AvvpError(f"split '{split.name}' has no dense ground truth to score against")
    audio, visual = gatings.binarize(predict(model, split, device, precision), gating)
    return metrics.llp_scores(audio, visual, split.gt_audio, split.gt_visual)


def load_trained(run: Path, device: str = "cpu"):
    """The run's settings (run.json) and its selected model (best.pt), in eval mode."""
    info_path, best = paths.run_json(run), paths.best_pt(run)
    if not info_path.is_file() or not best.is_file():
        raise AvvpError(f"{run}: not a trained run (no run.json/best.pt); train it with `avvp train --out {run}`")
    info = outputs.run_info(run)
    model = build(info["spec"]).to(device)
    # `avvp train` with the run's arguments retrains a run whose best weights are unreadable.
    remedy = f"train it again: avvp train --out {run} with its other arguments"
    model.load_state_dict(load_torch(best, map_location=device, remedy=remedy))
    model.eval()
    return info, model


def score_gatings(probs: dict, split: dataset.Split, params: dict | None = None) -> dict:
    """Per registered gating: (binary audio, binary visual, the ten numbers, per-video scores (videos, 10) in
    metrics.COLUMNS order). Every gating is kept so that `avvp table` can compare a row with its base under
    ONE gating (a row and its base may be scored under different gatings by their authors) without re-scoring.
    `params`: gating -> its keyword parameters (gatings.run_params: from the run's file, where it has one)."""
    out = {}
    for gating in GATINGS.names():
        audio, visual = gatings.binarize(probs, gating, **(params or {}).get(gating, {}))
        per_video = metrics.video_scores(audio, visual, split.gt_audio, split.gt_visual)
        # dataset_scores(video_scores) is exactly llp_scores, so the tables' intervals rebuild these numbers.
        scores = {level: metrics.dataset_scores(per_video[level]) for level in metrics.LEVELS}
        out[gating] = (audio, visual, scores, stats.video_matrix(per_video))
    return out


def main(args) -> None:
    run_dir = Path(args.run)
    info, model = load_trained(run_dir, args.device)
    data = args.data or info["data"]
    split = dataset.load_split(data, args.split)
    if split.gt_audio is None:
        raise AvvpError(f"split '{split.name}' has no dense ground truth to score against")
    probs = predict(model, split, args.device, info.get("precision", "fp32"))
    own = info.get("gating", "han")
    by_gating = score_gatings(probs, split, {g: gatings.run_params(g, run_dir) for g in GATINGS.names()})
    audio, visual, scores, _ = by_gating[own]
    # paths names a split's files by (run, split), so --out is read as <run>/<split>.
    at = (Path(args.out).parent, Path(args.out).name) if args.out else (run_dir, args.split)
    # Everything else first: metrics.json is the rule's completion marker.
    write_npz(paths.predictions_npz(*at), filenames=np.array(split.filenames), audio=audio, visual=visual,
              gt_audio=split.gt_audio, gt_visual=split.gt_visual, **probs)
    write_npz(paths.per_video_npz(*at), filenames=np.array(split.filenames), columns=np.array(metrics.COLUMNS),
              own_gating=np.array(own), **{g: v[3] for g, v in by_gating.items()})
    write_json(paths.by_gating_json(*at), {"own": own, **{g: v[2] for g, v in by_gating.items()}})
    write_json(paths.metrics_json(*at), scores)
    print(json.dumps(scores))
