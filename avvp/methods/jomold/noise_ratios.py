"""`avvp noise-ratios`: JoMoLD's stage 2, the per-class noise ratios of a trained estimator (docs/methods/jomold.md).

The stage-1 estimator (the row ESTIMATOR_ROW, trained by `avvp train`) in eval mode, cross attention off,
makes one pass over the training split in shuffled batches of 128; avvp/methods/jomold/denoise.py turns its pooled
audio and visual probabilities into the 2 x 25 ratios with the counts they come from, and the file is written
atomically (the workflow caches it per seed, like MA's refined labels). On synthetic data the file also holds
the true share of each class's training labels that is absent from each modality, to judge the estimate by.
"""

from __future__ import annotations

from pathlib import Path

import torch

from avvp import outputs
from avvp.data import dataset
from avvp.evaluation.evaluate import load_trained
from avvp.methods.jomold import denoise
from avvp.models.precision import autocast

BATCH = 128


def detection_pass(model, split: dataset.Split, seed: int, device: str = "cpu", precision: str = "fp32",
                   batch: int = BATCH):
    """One pass over `split` in a shuffled order (drawn from `seed`), cross attention off, without gradients:
    yields (index, outputs) per batch. The model's mode (eval: no dropout; train: dropout) is the caller's."""
    order = torch.randperm(len(split), generator=torch.Generator().manual_seed(seed))
    with torch.no_grad():
        for start in range(0, len(split), batch):
            idx = order[start:start + batch]
            with autocast(precision, device):
                out = model(split.audio[idx].to(device), split.visual[idx].to(device), split.motion[idx].to(device),
                            cross=False)
            yield idx, out


def estimator_pass(model, train: dataset.Split, seed: int, device: str = "cpu", precision: str = "fp32",
                   batch: int = BATCH):
    """(a_probs, v_probs, labels): one list entry per shuffled batch (order drawn from `seed`), the model in
    eval mode (no dropout) with cross attention off."""
    model.eval()
    a_probs, v_probs, ys = [], [], []
    for idx, out in detection_pass(model, train, seed, device, precision, batch):
        a_probs.append(out["a_prob"].float().cpu())
        v_probs.append(out["v_prob"].float().cpu())
        ys.append(train.labels[idx].cpu())
    return a_probs, v_probs, ys


def absent_share(train: dataset.Split) -> dict | None:
    """Per class, the share of its training labels absent from the audio (visual) track: synthetic truth only."""
    if train.true_audio is None or train.true_visual is None:
        return None
    y = train.labels.numpy() > 0
    n = y.sum(axis=0)
    share = lambda true: [float(k) / c if c else 0.0 for k, c in zip((y & (true == 0)).sum(axis=0), n)]  # noqa: E731
    return {"audio": share(train.true_audio), "visual": share(train.true_visual)}


def main(args) -> None:
    info, model = load_trained(Path(args.run), args.device)
    train = dataset.load_split(args.data or info["data"], "train")
    ratios = denoise.estimate_ratios(*estimator_pass(model, train, args.seed, args.device, args.precision))
    done = outputs.done(Path(args.run)) or {}
    ratios["estimator"] = {"run": str(args.run), "variant": info.get("variant"), "seed": args.seed,
                           "selected_epoch": done.get("selected_epoch")}
    truth = absent_share(train)
    if truth is not None:
        ratios["truth_absent"] = truth
    denoise.write_ratios(Path(args.out), ratios)
    r_a, r_v = ratios["audio"]["ratio"], ratios["visual"]["ratio"]
    print(f"{args.out}: noise ratios of {sum(ratios['positives'])} training labels; mean audio "
          f"{sum(r_a) / len(r_a):.3f}, visual {sum(r_v) / len(r_v):.3f}")
