"""`avvp denoise-quality`: the removals of JoMoLD's denoising scored as MA's refinement is (docs/methods/jomold.md).

A trained `labels: jomold` run (its selected weights) and its ratios file: one pass over a split in shuffled
batches of 128, each batch denoised as in training (the detection pass in training mode with cross attention off,
the loss-rank rule with the full ratios), gives per video the labels left in each modality. They are scored with
avvp/evaluation/label_quality.py's `score_removals`, as MA's refinement: against the synthetic truth on the
training split (when the data has it) and against the dense annotations of val and test. One JSON file.
"""

from __future__ import annotations

from pathlib import Path

import torch

from avvp.data import dataset
from avvp.evaluation import label_quality
from avvp.evaluation.evaluate import load_trained
from avvp.io import write_json
from avvp.methods.jomold import denoise
from avvp.methods.jomold.noise_ratios import detection_pass

BATCH = 128


def denoised_labels(model, split: dataset.Split, ratios: torch.Tensor, seed: int, device: str = "cpu",
                    precision: str = "fp32", batch: int = BATCH):
    """(audio, visual) (N, 25) uint8: the weak labels less the removals of one denoising pass over `split`."""
    torch.manual_seed(seed)                  # the detection pass's dropout masks
    model.train()
    y_all = split.labels.cpu()
    audio, visual = y_all.clone(), y_all.clone()
    for idx, out in detection_pass(model, split, seed, device, precision, batch):
        y = y_all[idx].to(device)
        l_a, l_v = denoise.detection_losses(out["a_prob"], out["v_prob"], y, 0.9 * y + 0.05)
        remove_a, remove_v = denoise.removals(l_a, l_v, y, ratios[0], ratios[1])
        audio[idx] = torch.where(remove_a.cpu(), 0.0, y_all[idx])
        visual[idx] = torch.where(remove_v.cpu(), 0.0, y_all[idx])
    model.eval()
    return audio.numpy().astype("uint8"), visual.numpy().astype("uint8")


def main(args) -> None:
    info, model = load_trained(Path(args.run), args.device)
    ratios = torch.stack(denoise.read_ratios(args.ratios))
    out = {"run": str(args.run), "variant": info.get("variant"), "ratios": str(args.ratios), "seed": args.seed}
    data = args.data or info["data"]
    train = dataset.load_split(data, "train")
    a, v = denoised_labels(model, train, ratios, args.seed, args.device, args.precision)
    y = train.labels.numpy()
    out["removed"] = {"audio": int(((y > 0) & (a == 0)).sum()), "visual": int(((y > 0) & (v == 0)).sum()),
                      "labels": int((y > 0).sum())}
    if train.true_audio is not None and train.true_visual is not None:
        out["against_truth"] = label_quality.score_removals(y, {"audio": a, "visual": v},
                                                            {"audio": train.true_audio, "visual": train.true_visual})
    out["against_annotations"] = {}
    for name in ("val", "test"):
        split = dataset.load_split(data, name)
        out["against_annotations"][name] = label_quality.split_removal_scores(
            split, *denoised_labels(model, split, ratios, args.seed, args.device, args.precision))
    write_json(Path(args.out), out)
    for m in ("audio", "visual"):
        s = out.get("against_truth", out["against_annotations"]["test"])[m]
        print(f"{m}: {s['removals']} removals, precision {s['precision']}, recall {s['recall']}")
