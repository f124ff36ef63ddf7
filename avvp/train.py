"""`avvp train`: one variant, one seed. A short training loop to read top to bottom (nanoGPT style).

The loop, per epoch: shuffle the training videos, build each batch's targets from the row's label source
(weak or MA's refined labels) and recipe (SPEC 3-5), add the row's extra losses (MA's temporal contrast, CM-S
with its cross-video batch augmentation), step, then score the validation split with the LLP metrics and keep
the selected weights. Every epoch ends with an atomic checkpoint holding everything the next epoch needs
(weights, optimiser, scheduler, RNG states, the log so far), so a run killed at any moment and started again
with the same arguments ends with exactly the metrics of an uninterrupted run.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch
from tqdm import tqdm

from avvp import losses, variants
from avvp.data import dataset
from avvp.errors import AvvpError
from avvp.evaluate import autocast, score_split
from avvp.io import atomic_path, write_json, write_text
from avvp.models import build

SELECT_METRIC = {"val": ("segment", "type_av"), "released": ("event", "type_av")}


@dataclass
class Job:
    """Everything that defines a training run; two runs with equal jobs give identical results."""
    name: str
    spec: dict                 # model switches + dropout
    recipe: dict
    losses: list
    labels: str                # weak | refined
    gating: str                # han | ma
    seed: int
    epochs: int
    select: str                # val | released | last
    precision: str = "fp32"
    device: str = "cpu"
    inputs: dict = field(default_factory=dict)  # content hashes of the data (and refined labels) trained on

    def key(self) -> dict:
        """The settings a checkpoint must share with the job to be resumed."""
        return {"name": self.name, "spec": self.spec, "recipe": self.recipe, "losses": self.losses,
                "labels": self.labels, "seed": self.seed, "epochs": self.epochs, "select": self.select,
                "precision": self.precision, "device": self.device, "inputs": self.inputs}


def targets(recipe: dict, y, y_a, y_v, epoch: int):
    """BCE targets of a batch: audio, visual (label-smoothed as the recipe says), and the MIL (global) target.

    Smoothing follows HAN: visual target 0.9*y_v + 0.05, because visual labels derived from video-level labels
    are noisier than audio ones. A class that MA's refinement removed from the visual labels gets 0 (SPEC 4).
    """
    smooth = recipe["visual_smoothing"] == "always" or (recipe["visual_smoothing"] == "first2" and epoch < 2)
    t_v = 0.9 * y_v + 0.05 if smooth else y_v.clone()
    if smooth:
        t_v = torch.where((y > 0) & (y_v == 0), torch.zeros_like(t_v), t_v)
    t_global = torch.maximum(y_a, y_v) if recipe["mil_target"] == "union" else y
    return y_a, t_v, t_global


def batch_loss(model, job: Job, batch, epoch: int, gen: torch.Generator):
    """The loss of one batch and its terms (detached tensors, summed for the log: no device sync per step)."""
    audio, visual, motion, y, y_a, y_v = batch
    cms = job.recipe.get("cms") if "cms" in job.losses else None
    cms_on = cms is not None and epoch + 1 >= cms["start_epoch"]
    n = audio.shape[0]
    if cms_on:
        # CM-S batch augmentation (SPEC 5): each video's visual track is also paired with another video's audio.
        perm = torch.randperm(n, generator=gen).to(audio.device)
        audio = torch.cat([audio, audio[perm]])
        visual, motion = torch.cat([visual, visual]), torch.cat([motion, motion])
    with autocast(job.precision, job.device):
        out = model(audio, visual, motion)
    out = {k: v.float() for k, v in out.items()}
    first = {k: v[:n] for k, v in out.items()}
    t_a, t_v, t_g = targets(job.recipe, y, y_a, y_v, epoch)
    loss = losses.mmil_bce(first, t_a, t_v, t_g)
    terms = {"bce": loss.detach()}
    if "ma_contrast" in job.losses:
        ma = job.recipe["ma_contrast"]
        term = ma["weight"] * losses.ma_contrast(first["x_a"], first["v_in"], ma["temperature"], ma["smoothing"])
        loss = loss + term
        terms["ma_contrast"] = term.detach()
    if cms_on:
        att = out["frame_att_logit"]
        term = cms["weight"] * losses.cms_loss(out["x_a"], out["x_v"], att[:, :, 0], att[:, :, 1],
                                               torch.cat([y_a, y_a[perm]]), torch.cat([y_v, y_v]), cms["tau"])
        loss = loss + term
        terms["cms"] = term.detach()
    return loss, terms


def _save(path: Path, obj) -> None:
    tmp, path = atomic_path(path, suffix=".pt")
    try:
        torch.save(obj, tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def _load_checkpoint(path: Path):
    try:
        return torch.load(path, map_location="cpu", weights_only=False)
    except Exception as e:  # torch raises many types for a truncated or foreign file
        raise AvvpError(f"{path}: corrupt checkpoint ({type(e).__name__}); delete it to start the run over") from None


def _log_csv(rows: list[dict]) -> str:
    keys = list(dict.fromkeys(k for row in rows for k in row))
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=keys, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return buf.getvalue()


def fit(job: Job, train: dataset.Split, y_a, y_v, select_split: dataset.Split | None, out: Path,
        quiet: bool = False):
    """Train `job` on `train`, resuming from out/last.pt when it exists; returns the selected model.

    `y_a`, `y_v` are the audio and visual label sources (the weak labels, or MA's refined labels).
    `select_split` is scored every epoch (validation; the test split under the released protocol); with
    `job.select == "last"` the last epoch is kept and no split is scored.
    """
    out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(job.seed)
    model = build(job.spec).to(job.device)
    rec = job.recipe
    optim = torch.optim.Adam(model.parameters(), lr=rec["lr"], fused=True)  # one kernel: 5x cheaper steps
    sched = torch.optim.lr_scheduler.StepLR(optim, step_size=rec["step_size"], gamma=rec["gamma"])
    gen = torch.Generator().manual_seed(job.seed)
    state = {"epoch": 0, "best": None, "bad_epochs": 0, "log": []}

    last = out / "last.pt"
    ckpt = _load_checkpoint(last) if last.exists() else None
    if ckpt is not None and ckpt.get("job") != job.key():
        # Settings, data or labels changed since that checkpoint: start over, keeping the old one aside.
        stale = out / "last.stale.pt"
        os.replace(last, stale)
        print(f"{last}: checkpoint of other settings or inputs than this run's; moved to {stale.name}, "
              "starting over", flush=True)
        ckpt = None
    if ckpt is not None:
        model.load_state_dict(ckpt["model"])
        optim.load_state_dict(ckpt["optim"])
        sched.load_state_dict(ckpt["sched"])
        gen.set_state(ckpt["gen"])
        torch.set_rng_state(ckpt["torch_rng"])
        state = ckpt["state"]
        if not quiet and state["epoch"] < job.epochs:
            print(f"resuming {job.name} seed {job.seed} after epoch {state['epoch']}", flush=True)

    patience = 10 if job.select == "released" else None
    y = train.labels
    n = len(train)
    bar = tqdm(range(state["epoch"], job.epochs), initial=state["epoch"], total=job.epochs,
               desc=f"{job.name} s{job.seed}", unit="epoch", disable=quiet, mininterval=1.0)
    for epoch in bar:
        if patience is not None and state["bad_epochs"] >= patience:
            break  # released protocol: early stop on the test split (SPEC 5), kept as a preset only
        t0 = time.perf_counter()
        model.train()
        order = torch.randperm(n, generator=gen)
        sums: dict[str, torch.Tensor] = {}
        steps = 0
        for start in range(0, n, rec["batch"]):
            idx = order[start:start + rec["batch"]]
            batch = [t[idx].to(job.device) for t in (train.audio, train.visual, train.motion, y, y_a, y_v)]
            loss, terms = batch_loss(model, job, batch, epoch, gen)
            optim.zero_grad(set_to_none=True)
            loss.backward()
            optim.step()
            for k, v in terms.items():
                sums[k] = sums[k] + v if k in sums else v
            steps += 1
        row = {"epoch": epoch + 1, "lr": optim.param_groups[0]["lr"]}  # the rate this epoch trained with
        sched.step()
        row.update({f"loss_{k}": v.item() / steps for k, v in sums.items()})
        row["train_seconds"] = round(time.perf_counter() - t0, 3)

        improved = job.select == "last"
        if select_split is not None and job.select != "last":
            scores = score_split(model, select_split, job.gating, job.device, job.precision)
            for level in ("segment", "event"):
                for k, v in scores[level].items():
                    row[f"{select_split.name}_{level}_{k}"] = v
            level, key = SELECT_METRIC[job.select]
            value = scores[level][key]
            best = state["best"]
            improved = best is None or value > best["value"]
            if improved:
                state["best"] = {"epoch": epoch + 1, "value": value, "metric": f"{select_split.name} {level} {key}",
                                 "scores": scores}
                state["bad_epochs"] = 0
            else:
                state["bad_epochs"] += 1
        elif job.select == "last":
            state["best"] = {"epoch": epoch + 1, "value": None, "metric": "last epoch", "scores": None}
        row["seconds"] = round(time.perf_counter() - t0, 3)
        state["log"].append(row)
        state["epoch"] = epoch + 1
        # best.pt first, then last.pt: a kill between the two redoes this epoch identically on resume.
        if improved:
            _save(out / "best.pt", model.state_dict())
        _save(last, {"job": job.key(), "model": model.state_dict(), "optim": optim.state_dict(),
                     "sched": sched.state_dict(), "gen": gen.get_state(), "torch_rng": torch.get_rng_state(),
                     "state": state})
        write_text(out / "log.csv", _log_csv(state["log"]))
        if not quiet:
            msg = " ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in row.items()
                           if not k.startswith(("val_event", "test_event")) or k.endswith("type_av"))
            tqdm.write(msg)
    bar.close()
    model.load_state_dict(torch.load(out / "best.pt", map_location=job.device, weights_only=True))
    model.eval()
    return model, state


def file_sha256(path: str | Path) -> str:
    try:
        return hashlib.sha256(Path(path).read_bytes()).hexdigest()
    except OSError as e:
        raise AvvpError(f"{path}: cannot read ({e.strerror})") from None


def git_commit() -> str:
    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, timeout=5,
                              cwd=Path(__file__).resolve().parent).stdout.strip() or "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def label_sources(v: dict, train: dataset.Split, refined: str | None, data: str, seed: int):
    """Audio and visual label sources of a row: the weak labels, or the refined ones from `avvp refine`."""
    if v["labels"] == "weak":
        return train.labels, train.labels
    if not refined:
        raise AvvpError(f"variant '{v['name']}' trains on refined labels: make them with "
                        f"`avvp refine --data {data} --seed {seed} --out results/refine/seed{seed}` "
                        f"and pass --refined results/refine/seed{seed}/refined_labels.npz")
    return dataset.load_refined(refined, train)


def run(args) -> None:
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.device == "cuda" and not torch.cuda.is_available():
        raise AvvpError("--device cuda: no CUDA device is visible to torch")
    v = variants.get(args.variant, args.variants_file)
    seed = 0 if args.protocol == "released" else args.seed  # the released code fixes every seed to 0
    out = Path(args.out)
    recipe = v["recipe"]
    if args.lr_scale != 1.0:
        if args.lr_scale <= 0:
            raise AvvpError(f"--lr-scale must be positive, got {args.lr_scale}")
        recipe = {**recipe, "lr": recipe["lr"] * args.lr_scale, "lr_scale": args.lr_scale}
    job = Job(name=v["name"], spec={**v["model"], "dropout": recipe["dropout"]}, recipe=recipe,
              losses=v["losses"], labels=v["labels"], gating=v["gating"], seed=seed,
              epochs=args.epochs or recipe["epochs"],
              select="released" if args.protocol == "released" else recipe["select"],
              precision=args.precision, device=args.device,
              inputs={"data": dataset.manifest_sha256(args.data),
                      "refined": file_sha256(args.refined) if v["labels"] == "refined" and args.refined else None})
    train = dataset.load_split(args.data, "train")
    y_a, y_v = label_sources(v, train, args.refined, args.data, seed)
    select_split = dataset.load_split(args.data, "test" if args.protocol == "released" else "val")
    info = {"variant": v["name"], "slug": v["slug"], "seed": seed, "requested_seed": args.seed,
            "protocol": args.protocol, "epochs": job.epochs, "device": args.device, "precision": args.precision,
            "spec": job.spec, "recipe": job.recipe, "losses": job.losses, "labels": job.labels,
            "gating": job.gating, "refined": args.refined, "data": str(Path(args.data).resolve()),
            "data_manifest_sha256": dataset.manifest_sha256(args.data), "git_commit": git_commit()}
    out.mkdir(parents=True, exist_ok=True)
    done = out / "done.json"
    if done.exists() and json.loads(done.read_text()).get("job") == job.key():
        print(f"{out}: already trained (done.json); nothing to do")
        return
    write_json(out / "run.json", info)
    t0 = time.perf_counter()
    train.to(args.device), select_split.to(args.device)
    _, state = fit(job, train, y_a.to(args.device), y_v.to(args.device), select_split, out)
    best = state["best"]
    write_json(done, {"selected_epoch": best["epoch"], "selected_by": best["metric"], "selected": best["scores"],
                      "epochs_run": state["epoch"],
                      "seconds": round(sum(r["seconds"] for r in state["log"]), 2),  # all epochs, resumes included
                      "wall_seconds_this_process": round(time.perf_counter() - t0, 2),
                      "seconds_per_epoch": [r["seconds"] for r in state["log"]], "job": job.key()})
    print(f"{v['name']} seed {seed}: selected epoch {best['epoch']} by {best['metric']}"
          + (f" = {best['value']:.2f}" if best["value"] is not None else ""))
