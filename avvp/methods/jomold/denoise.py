"""JoMoLD's joint-modal label denoising (docs/methods/jomold.md), and the per-batch rule it trains with.

Three pieces, each a function of tensors only (no model, no file), so the training step, the noise-ratio
stage and the tests share them:
- `estimate_ratios` (stage 2): per-class audio and visual noise ratios from a trained estimator's pooled
  probabilities over the training split, with the counts they come from; `write_ratios` / `read_ratios` keep
  them in a small JSON file (format below).
- `warmup_schedule` (stage 3): the ratios in force at each iteration of an epoch, as released (`released`:
  nothing removed in epoch 1, the full ratios from epoch 2) or as evidently intended (`ramp`).
- `detection_losses`, `removals`, `denoised_targets` (stage 3, per batch): the loss-rank rule that removes a
  class from a video's visual targets when the video is among the class's k_v worst-seen AND k_v best-heard
  positives of the batch (and the mirror rule for audio), and the targets with removed entries a hard 0.

Ratios file (`noise_ratios.json`), format 1:
    {"format": 1, "classes": [25 names], "positives": [N_c], "audio": {"noisy": [..], "ratio": [..],
     "mean": [m_a]}, "visual": {"noisy": [..], "ratio": [..], "mean": [m_v]}, "batches": K,
     "thresholds": {"audio": 0.6, "visual": 1.8, "visual_target": 0.95}}
ratio[c] = noisy[c] / positives[c] (0 for a class with no training positive).

The per-batch rule `denoise` (the label sources `jomold` and `cmpae_released`, avvp/methods/jomold/__init__.py)
is `schedule` (the warm-up of an epoch, one (2, C) row per batch) and `denoise_batch` (the detection pass and the
removals, inside the training step).
"""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import torch
import torch.nn.functional as F

from avvp.constants import CLASSES, NUM_CLASSES
from avvp.errors import AvvpError
from avvp.io import read_json, read_npz, write_json
from avvp.models.precision import autocast
from avvp.training.losses import Batch
from avvp.training.train import targets

EPS = 1e-7
FORMAT = 1
WARMUPS = ("released", "ramp")
AUDIO_THRESHOLD, VISUAL_THRESHOLD, VISUAL_TARGET = 0.6, 1.8, 0.95


def estimate_ratios(a_probs, v_probs, labels, audio_threshold: float = AUDIO_THRESHOLD,
                 visual_threshold: float = VISUAL_THRESHOLD, visual_target: float = VISUAL_TARGET) -> dict:
    """Stage 2: per-class noise ratios from the estimator's outputs on the training split, batch by batch.

    a_probs, v_probs, labels: equal-length lists of (B_k, C) tensors, one per batch, in the pass's order.
    m[c] is the mean over batches of each batch's mean probability over ALL its videos (negatives included;
    a short last batch weighs as much as a full one). A positive (labels 1) is audio-noisy when
    a_prob / m_a < audio_threshold, visual-noisy when visual_target * v_prob / m_v < visual_threshold.
    Returns the ratios file's dict (module docstring) with float ratios and integer counts.
    """
    if not (len(a_probs) == len(v_probs) == len(labels)) or not labels:
        raise AvvpError("noise ratios: need one audio, visual and label tensor per batch (got none or unequal)")
    a = torch.cat([p.double() for p in a_probs])
    v = torch.cat([p.double() for p in v_probs])
    y = torch.cat(list(labels)) > 0
    m_a = torch.stack([p.double().mean(dim=0) for p in a_probs]).mean(dim=0)
    m_v = torch.stack([p.double().mean(dim=0) for p in v_probs]).mean(dim=0)
    noisy_a = (y & (a / m_a < audio_threshold)).sum(dim=0)
    noisy_v = (y & (visual_target * v / m_v < visual_threshold)).sum(dim=0)
    n = y.sum(dim=0)

    def part(noisy, mean) -> dict:
        ratio = [float(k) / float(c) if c > 0 else 0.0 for k, c in zip(noisy.tolist(), n.tolist())]
        return {"noisy": [int(k) for k in noisy.tolist()], "ratio": ratio, "mean": mean.tolist()}

    return {"format": FORMAT, "classes": list(CLASSES[: y.shape[1]]), "positives": [int(c) for c in n.tolist()],
            "audio": part(noisy_a, m_a), "visual": part(noisy_v, m_v), "batches": len(labels),
            "thresholds": {"audio": audio_threshold, "visual": visual_threshold, "visual_target": visual_target}}


def write_ratios(path: Path, ratios: dict) -> None:
    """The ratios file, atomically (checked first: a bad dict is an AvvpError, nothing written)."""
    _check_ratios(ratios, str(path))
    write_json(Path(path), ratios)


def read_ratios(path: Path) -> tuple[torch.Tensor, torch.Tensor]:
    """(r_a, r_v), float64 (C,) each, from a ratios file: the project's JSON (format above), or an .npz as the
    releases ship it (CMPAE's noise_ratios.npz: arrays `audio` and `visual` of C). Either goes through the same
    checks; any defect is one AvvpError line naming the file."""
    path = Path(path)
    if path.suffix == ".npz":
        arrays = read_npz(path, ("audio", "visual"), "noise ratios file", "")
        record = {"format": FORMAT, **{part: {"ratio": arrays[part].astype(float).tolist()} for part in arrays}}
    else:
        record = read_json(path, "noise ratios file")
    return ratios_of_record(record, str(path))


def ratios_of_record(record, where: str) -> tuple[torch.Tensor, torch.Tensor]:
    """(r_a, r_v) float64 of a ratios record, checked (a file's, or the values a release ships)."""
    _check_ratios(record, where)
    return (torch.tensor(record["audio"]["ratio"], dtype=torch.float64),
            torch.tensor(record["visual"]["ratio"], dtype=torch.float64))


def _check_ratios(record, where: str) -> None:
    if not isinstance(record, dict) or record.get("format") != FORMAT:
        raise AvvpError(f"{where}: not a noise ratios file of format {FORMAT}")
    for part in ("audio", "visual"):
        entry = record.get(part)
        ratio = entry.get("ratio") if isinstance(entry, dict) else None
        if not isinstance(ratio, list) or len(ratio) != NUM_CLASSES:
            raise AvvpError(f"{where}: {part}.ratio must be a list of {NUM_CLASSES} numbers")
        for c, r in enumerate(ratio):
            if isinstance(r, bool) or not isinstance(r, (int, float)) or not (0.0 <= r <= 1.0):
                raise AvvpError(f"{where}: {part}.ratio[{c}] ({CLASSES[c]}) = {r!r} is not a number in [0, 1]")


def warmup_schedule(r_file: torch.Tensor, epoch: int, iterations: int, warmup: str = "released",
                    warmup_epochs: float = 0.9) -> list[torch.Tensor]:
    """The ratios in force at each of an epoch's `iterations` batches (0-based `epoch`), one tensor per batch.

    t = epoch * iterations + batch index. `released`: r starts each epoch as the file's and each batch
    r <- min(r, r * t / (warmup_epochs * iterations)) on the CURRENT r; the factor is 0 at t = 0, so r is 0
    for all of epoch 1, and above 1 from epoch 2 on (the full ratios). `ramp`: r_file * min(1, t / (w I)).
    """
    if warmup not in WARMUPS:
        raise AvvpError(f"warm-up '{warmup}': unknown (known: {', '.join(WARMUPS)})")
    span = warmup_epochs * iterations
    out, r = [], r_file.clone()
    for b in range(iterations):
        t = epoch * iterations + b
        if warmup == "released":
            r = torch.minimum(r, r * (t / span))
            out.append(r.clone())
        else:
            out.append(r_file * min(1.0, t / span))
    return out


def detection_losses(a_prob: torch.Tensor, v_prob: torch.Tensor, t_a: torch.Tensor, t_v: torch.Tensor):
    """Per-element BCE (B, C) of the audio and visual pooled probabilities against their targets, in float32,
    probabilities clamped to [1e-7, 1 - 1e-7]: the losses the removal rule ranks (bf16 ties would matter)."""
    def bce(p, t):   # the training loss's BCE (avvp.training.losses), per element
        with torch.autocast(p.device.type, enabled=False):
            return F.binary_cross_entropy(p.float().clamp(EPS, 1 - EPS), t.float(), reduction="none")
    return bce(a_prob, t_a), bce(v_prob, t_v)


def _ranks(key: torch.Tensor) -> torch.Tensor:
    """Each element's 0-based position when its column is sorted ascending (stable: ties by batch index): the
    inverse of the sorting permutation, itself an argsort (no scatter, which under CUDA's strict determinism can
    build its strides on the host inside a captured step)."""
    return torch.argsort(torch.argsort(key, dim=0, stable=True), dim=0, stable=True)


def removals(l_a: torch.Tensor, l_v: torch.Tensor, y: torch.Tensor, r_a: torch.Tensor, r_v: torch.Tensor):
    """The loss-rank rule of one batch: (remove_audio, remove_visual), bool (B, C).

    Per class c with P_c the batch's videos labelled c and n_c = |P_c|: k_v = floor(r_v[c] n_c), and c leaves
    video i's VISUAL targets iff i is among the k_v largest l_v AND among the k_v smallest l_a within P_c (heard,
    not seen); AUDIO by the mirror rule with k_a = floor(r_a[c] n_c). Ties rank by batch index (lower first).
    """
    pos = y > 0
    n_c = pos.sum(dim=0).double()
    k_a = torch.floor(r_a.to(n_c.device).double() * n_c)
    k_v = torch.floor(r_v.to(n_c.device).double() * n_c)
    # A Python scalar, not torch.tensor(inf): that would be a host-to-device copy inside a captured step.
    inf = float("inf")
    low_a = _ranks(torch.where(pos, l_a.float(), inf))       # rank among positives, smallest loss first
    low_v = _ranks(torch.where(pos, l_v.float(), inf))
    high_a = _ranks(torch.where(pos, -l_a.float(), inf))     # largest loss first
    high_v = _ranks(torch.where(pos, -l_v.float(), inf))
    remove_v = pos & (high_v < k_v) & (low_a < k_v)
    remove_a = pos & (high_a < k_a) & (low_v < k_a)
    return remove_a, remove_v


def denoised_targets(t_a: torch.Tensor, t_v: torch.Tensor, remove_a: torch.Tensor, remove_v: torch.Tensor):
    """The batch's audio and visual targets with removed entries a hard 0 (other visual negatives keep their
    smoothed 0.05); the global (MIL) target is not touched."""
    zero = torch.zeros((), dtype=t_a.dtype, device=t_a.device)
    return torch.where(remove_a, zero, t_a), torch.where(remove_v, zero.to(t_v.dtype), t_v)


def iterations_per_epoch(n_videos: int, batch: int) -> int:
    """Batches of an epoch (the last may be short): the warm-up's I."""
    return math.ceil(n_videos / batch)


# ------------------------------------------------------------------------------------ the per-batch rule

def schedule(ratios: torch.Tensor, settings: dict, iterations: int, epoch: int) -> torch.Tensor:
    """The (iterations, 2, C) ratios in force at each batch of 0-based `epoch`: `ratios` (2, C), audio and visual,
    warmed up as the recipe's `denoise` settings say (`warmup`: released | ramp, over `warmup_epochs`)."""
    return torch.stack(warmup_schedule(ratios, epoch, iterations, settings.get("warmup", "released"),
                                       settings.get("warmup_epochs", 0.9)))


def denoise_batch(model, job, batch: Batch, epoch: int) -> Batch:
    """JoMoLD's per-batch joint-modal denoising: a detection pass without gradient, in training mode (dropout
    on) with cross attention off, ranks each positive's audio and visual BCE against the batch's targets
    (float32); the loss-rank rule with the ratios in force (batch.in_force, (2, C)) removes labels, which the
    targets then make a hard 0 (`removed_visual: zero`; the audio target is the label itself)."""
    with torch.no_grad():
        with autocast(job.precision, job.device):
            out = model(batch.audio, batch.visual, batch.motion, cross=False)
        t_a, t_v, _ = targets(job.recipe, batch.y, batch.y_a, batch.y_v, epoch)
        l_a, l_v = detection_losses(out["a_prob"], out["v_prob"], t_a, t_v)
        remove_a, remove_v = removals(l_a, l_v, batch.y, batch.in_force[0], batch.in_force[1])
        y_a, y_v = denoised_targets(batch.y_a, batch.y_v, remove_a, remove_v)
    return dataclasses.replace(batch, y_a=y_a, y_v=y_v)


def ratios_of(files: dict) -> torch.Tensor:
    """The label source's values: stage 2's per-class noise ratios (its file `ratios`), as (2, C): audio, visual."""
    return torch.stack(read_ratios(files["ratios"]))
