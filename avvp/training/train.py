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
import dataclasses
import io
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
from tqdm import tqdm

from avvp import paths, variants
from avvp.data import dataset
from avvp.errors import AvvpError, Unreadable
from avvp.evaluation.evaluate import score_split
from avvp.io import git_commit, load_torch, read_json, save_torch, sha256_file, unreadable, write_json, write_text
from avvp.models import build
from avvp.models.precision import autocast
from avvp.training import denoise, labels, losses
from avvp.training.graphs import StepRunner, capturable_adam, deterministic, lr_to_device
from avvp.training.losses import Batch
from avvp.training.selection import SELECTION_RULES
from avvp.variants import Variant

RESUME_REMEDY = "delete it to start the run over"


@dataclass
class Job:
    """Everything that defines a training run; two runs with equal jobs give identical results."""
    variant: str               # the row's name
    spec: dict                 # normalised model spec, dropout included
    recipe: dict
    losses: tuple
    labels: str                # a label source (avvp.training.labels): weak | refined
    gating: str                # a gating (avvp.evaluation.gatings): han | ma
    seed: int
    epochs: int
    select: str                # a selection rule (avvp.training.selection): val | released | last
    precision: str = "fp32"
    device: str = "cpu"
    # Each step as a CUDA graph (avvp.training.graphs; on CPU the same static-buffer path without capture). A
    # graphed and an eager step compute the same function, but on a GPU they draw random numbers (dropout) in
    # another order: a setting of the run like any other, so changing it retrains.
    cuda_graphs: bool = False
    inputs: dict = field(default_factory=dict)  # content hashes of the data and the label source's files

    @classmethod
    def of(cls, row: Variant, seed: int, epochs: int | None = None, select: str | None = None, **run) -> Job:
        """The job of a resolved row (checked when its sheet was loaded); `epochs` and `select` default to its
        recipe's."""
        return cls(variant=row.name, spec=row.model, recipe=row.recipe, losses=row.losses, labels=row.labels,
                   gating=row.gating, seed=seed, epochs=epochs or row.recipe["epochs"],
                   select=select or row.recipe["select"], **run)

    def key(self) -> dict:
        """The settings a checkpoint must share with the job to be resumed (JSON-comparable: lists, not tuples)."""
        return {**asdict(self), "losses": list(self.losses)}


@dataclass
class TrainState:
    """What the loop carries from epoch to epoch (saved in every checkpoint)."""
    epoch: int = 0                 # epochs done
    best: dict | None = None       # the selected epoch: epoch, value, metric, scores
    bad_epochs: int = 0            # epochs since the selection metric last improved
    log: list = field(default_factory=list)   # one row per epoch, as in log.csv


def smoothing_on(recipe: dict, epoch: int) -> bool:
    """Whether the recipe smooths the visual targets in 0-based `epoch` (always, or epochs 1-2 only)."""
    return recipe["visual_smoothing"] == "always" or (recipe["visual_smoothing"] == "first2" and epoch < 2)


def targets(recipe: dict, y, y_a, y_v, epoch: int):
    """BCE targets of a batch: audio, visual (label-smoothed as the recipe says), and the MIL (global) target.

    Smoothing follows HAN: visual target 0.9*y_v + 0.05, because visual labels derived from video-level labels
    are noisier than audio ones. A weak label that MA's refinement removed from the visual labels gets 0 under
    `removed_visual: zero` (MA's step 3, SPEC 4), or 0.05 like any other negative under `smooth` (the released
    "+ Ours" code smooths the refined labels as they are, SPEC 5).
    The MIL target (`mil_target`): `weak` = the video-level labels; `union` = refined audio OR refined visual;
    `audio` = the refined audio labels, i.e. the weak labels less the classes removed from the audio (MA's
    step 3, where the audio target and the video-level labels are one array).
    """
    smooth = smoothing_on(recipe, epoch)
    t_v = 0.9 * y_v + 0.05 if smooth else y_v.clone()
    if smooth and recipe["removed_visual"] == "zero":
        t_v = torch.where((y > 0) & (y_v == 0), torch.zeros_like(t_v), t_v)
    t_global = {"weak": y, "union": torch.maximum(y_a, y_v), "audio": y_a}[recipe["mil_target"]]
    return y_a, t_v, t_global


def denoise_step(model, job: Job, batch: Batch, epoch: int) -> Batch:
    """JoMoLD's per-batch joint-modal denoising (docs/protocol.md#jomold): a detection pass without gradient,
    in training mode (dropout on) with cross attention off, ranks each positive's audio and visual BCE against
    the batch's targets (float32); the loss-rank rule with the ratios in force removes labels, which the
    targets then make a hard 0 (`removed_visual: zero`; the audio target is the label itself)."""
    with torch.no_grad():
        with autocast(job.precision, job.device):
            out = model(batch.audio, batch.visual, batch.motion, cross=False)
        t_a, t_v, _ = targets(job.recipe, batch.y, batch.y_a, batch.y_v, epoch)
        l_a, l_v = denoise.detection_losses(out["a_prob"], out["v_prob"], t_a, t_v)
        remove_a, remove_v = denoise.removals(l_a, l_v, batch.y, batch.ratios[0], batch.ratios[1])
        y_a, y_v = denoise.denoised_targets(batch.y_a, batch.y_v, remove_a, remove_v)
    return dataclasses.replace(batch, y_a=y_a, y_v=y_v)


def batch_loss(model, job: Job, batch: Batch, epoch: int, gen: torch.Generator):
    """The loss of one batch and its terms (detached tensors, summed for the log: no device sync per step).

    A denoising label source's batch (one with ratios) is denoised first. The MMIL BCE covers the batch's real
    videos (its first n rows); each extra loss in force augments the batch first if it needs to, and adds its
    term on the model's outputs.
    """
    if batch.ratios is not None:
        batch = denoise_step(model, job, batch, epoch)
    extras = losses.active_extras(job.losses, job.recipe, epoch)
    for _, extra, _ in extras:
        if extra.augment is not None:
            batch = extra.augment(batch, gen)
    with autocast(job.precision, job.device):
        out = model(batch.audio, batch.visual, batch.motion)
    out = {k: t.float() for k, t in out.items()}
    n = batch.n
    # Sliced once, here: autograd accumulates gradients in the order nodes were made, so fixing this order
    # keeps results bit-identical across refactors.
    first = {k: t[:n] for k, t in out.items()}
    t_a, t_v, t_g = targets(job.recipe, batch.y, batch.y_a[:n], batch.y_v[:n], epoch)
    loss = losses.mmil_bce(first, t_a, t_v, t_g, job.recipe.get("loss_weights"))
    terms = {"bce": loss.detach()}
    for name, extra, cfg in extras:
        term = extra.term(out, first, batch, cfg)
        loss = loss + term
        terms[name] = term.detach()
    return loss, terms


def train_step(model, optim, job: Job, batch: Batch, epoch: int, gen: torch.Generator) -> dict:
    """One optimiser step: forward, loss, backward, step. Returns the detached loss terms."""
    loss, terms = batch_loss(model, job, batch, epoch, gen)
    optim.zero_grad(set_to_none=True)
    loss.backward()
    optim.step()
    return terms


def phase_key(job: Job, epoch: int) -> tuple:
    """Every Python-level choice batch_loss makes from the epoch (visual smoothing on or off, the extra losses in
    force): a captured CUDA graph freezes them, so StepRunner keeps one graph per key (and per batch shape)."""
    extras = tuple(name for name, _, _ in losses.active_extras(job.losses, job.recipe, epoch))
    return smoothing_on(job.recipe, epoch), extras


def epoch_ratios(job: Job, ratios, n: int, epoch: int) -> list | None:
    """The noise ratios in force at each batch of 0-based `epoch` ((2, C) each, on the job's device), warmed
    up as the recipe says (`warmup`: released | ramp); None without ratios (a source that does not denoise)."""
    if ratios is None:
        return None
    iterations = denoise.iterations_per_epoch(n, job.recipe["batch"])
    schedule = denoise.warmup_schedule(ratios, epoch, iterations, job.recipe.get("warmup", "released"),
                                       job.recipe.get("warmup_epochs", 0.9))
    return [r.to(job.device) for r in schedule]


def train_epoch(model, optim, job: Job, train: dataset.Split, y_a, y_v, epoch: int, gen,
                runner: StepRunner | None = None, ratios=None) -> dict:
    """One pass over the shuffled training videos; the epoch's log row (epoch, learning rate, mean losses).

    Steps run through `runner` (a CUDA graph per phase and batch shape, or graph-shaped, or eager); without
    one, eagerly. The data stay on their device: the order is copied there once an epoch and batches are
    indexed there; the loss terms are summed there and read once, at the end. `ratios` (2, C): a denoising
    label source's noise ratios, passed to each batch as warmed up for it.
    """
    model.train()
    n = len(train)
    # Drawn by the host generator on every device (the same order on CPU and GPU), then one copy an epoch.
    order = torch.randperm(n, generator=gen).to(train.audio.device)
    runner = runner or StepRunner(model, optim, mode="eager")
    key = phase_key(job, epoch)

    def step(tensors) -> dict:
        return train_step(model, optim, job, Batch(*tensors), epoch, gen)

    sums: dict[str, torch.Tensor] = {}
    steps = 0
    in_force = epoch_ratios(job, ratios, n, epoch)
    for start in range(0, n, job.recipe["batch"]):
        idx = order[start:start + job.recipe["batch"]]
        batch = tuple(t[idx].to(job.device) for t in (train.audio, train.visual, train.motion, train.labels,
                                                       y_a, y_v))
        if in_force is not None:
            batch = batch + (in_force[steps].float(),)
        for k, term in runner(step, batch, key).items():  # a graph's terms are overwritten by its next replay
            sums[k] = sums[k] + term if k in sums else term
        steps += 1
    row = {"epoch": epoch + 1, "lr": float(optim.param_groups[0]["lr"])}  # the rate this epoch trained with
    row.update({f"loss_{k}": total.item() / steps for k, total in sums.items()})
    return row


def select(model, job: Job, split: dataset.Split | None, state: TrainState, row: dict) -> bool:
    """Score the selection rule's split into `row` and keep the epoch if it is the best so far (True: save it)."""
    epoch = row["epoch"]
    rule = SELECTION_RULES.get(job.select)
    if rule.split is None:
        state.best = {"epoch": epoch, "value": None, "metric": "last epoch", "scores": None}
        return True
    scores = score_split(model, split, job.gating, job.device, job.precision)
    for level, numbers in scores.items():
        for k, value in numbers.items():
            row[f"{split.name}_{level}_{k}"] = value
    value = rule.metric(scores)
    improved = state.best is None or rule.improves(value, state.best["value"])
    if improved:
        state.best = {"epoch": epoch, "value": value, "metric": f"{split.name} {rule.metric}", "scores": scores}
        state.bad_epochs = 0
    else:
        state.bad_epochs += 1
    return improved


def resumable(job: Job, out: Path) -> dict | None:
    """out/last.pt when the run can resume from it, else None: the run starts over, saying why in one line.

    A checkpoint of other settings or inputs is moved aside (last.stale.pt); an unreadable one (truncated,
    damaged) is removed, as is one whose selected weights (best.pt) are unreadable or gone: the run cannot end
    with them, and starting over gives what an uninterrupted run gives.
    """
    last, best = paths.last_pt(out), paths.best_pt(out)
    if not last.exists():
        return None
    try:
        ckpt = load_torch(last, weights_only=False, remedy=RESUME_REMEDY)
        if ckpt.get("job") == job.key() and ckpt["state"]["best"] is not None:
            load_torch(best, remedy=RESUME_REMEDY)
    except Unreadable as e:
        print(f"{e.path}: unreadable {e.what} ({e.reason}); starting the run over", flush=True)
        last.unlink()
        return None
    except AvvpError:   # best.pt missing
        print(f"{best}: missing; starting the run over", flush=True)
        last.unlink()
        return None
    if ckpt.get("job") != job.key():
        stale = out / "last.stale.pt"
        os.replace(last, stale)
        print(f"{last}: checkpoint of other settings or inputs than this run's; moved to {stale.name}, "
              "starting over", flush=True)
        return None
    return ckpt


def resume_or_start(job: Job, out: Path, model, optim, sched, gen, quiet: bool) -> TrainState:
    """The state after the last finished epoch of out/last.pt, restored into the given objects; a fresh
    state when there is none, or when it cannot be resumed (`resumable`)."""
    ckpt = resumable(job, out)
    if ckpt is None:
        return TrainState()
    model.load_state_dict(ckpt["model"])
    optim.load_state_dict(ckpt["optim"])
    sched.load_state_dict(ckpt["sched"])
    gen.set_state(ckpt["gen"])
    torch.set_rng_state(ckpt["torch_rng"])
    if ckpt.get("cuda_rng") is not None:  # dropout (and any device RNG) on a GPU resumes where it stopped
        torch.cuda.set_rng_state_all(ckpt["cuda_rng"])
    state = TrainState(**ckpt["state"])
    if not quiet and state.epoch < job.epochs:
        print(f"resuming {job.variant} seed {job.seed} after epoch {state.epoch}", flush=True)
    return state


def checkpoint(out: Path, job: Job, model, optim, sched, gen, state: TrainState, improved: bool) -> None:
    """best.pt first, then last.pt: a kill between the two redoes this epoch identically on resume."""
    if improved:
        save_torch(paths.best_pt(out), model.state_dict())
    save_torch(paths.last_pt(out), {"job": job.key(), "model": model.state_dict(), "optim": optim.state_dict(),
                                    "sched": sched.state_dict(), "gen": gen.get_state(),
                                    "torch_rng": torch.get_rng_state(), "state": asdict(state),
                                    "cuda_rng": torch.cuda.get_rng_state_all() if _on_cuda(job) else None})
    write_text(paths.log_csv(out), _log_csv(state.log))


def _log_csv(rows: list[dict]) -> str:
    keys = list(dict.fromkeys(k for row in rows for k in row))
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=keys, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return buf.getvalue()


def _progress_line(row: dict) -> str:
    return " ".join(f"{k}={x:.4g}" if isinstance(x, float) else f"{k}={x}" for k, x in row.items()
                    if not k.startswith(("val_event", "test_event")) or k.endswith("type_av"))


def _on_cuda(job: Job) -> bool:
    return torch.device(job.device).type == "cuda"


def optimiser(job: Job, model):
    """Fused Adam (one kernel for all parameters) and HAN's StepLR. On CUDA the learning rate is a device
    tensor (`capturable_adam`), so a captured step reads the rate StepLR writes; CPU keeps a float."""
    if _on_cuda(job):
        optim = capturable_adam(model.parameters(), job.recipe["lr"], job.device)
    else:
        optim = torch.optim.Adam(model.parameters(), lr=job.recipe["lr"], fused=True)
    return optim, torch.optim.lr_scheduler.StepLR(optim, step_size=job.recipe["step_size"],
                                                  gamma=job.recipe["gamma"])


def fit(job: Job, train: dataset.Split, y_a, y_v, select_split: dataset.Split | None, out: Path,
        quiet: bool = False, ratios=None):
    """Train `job` on `train`, resuming from out/last.pt when it exists; returns the selected model and state.

    `y_a`, `y_v` are the audio and visual label sources (the weak labels, or MA's refined labels).
    `select_split` is scored every epoch: the split of the job's selection rule (validation; the test split
    under the released protocol); a rule without one (`last`) keeps the last epoch and needs none.
    `job.cuda_graphs`: each training step as a CUDA graph (avvp.training.graphs; on CPU the same static-buffer
    path runs without capture), else the plain eager step. Both compute the same function.
    `ratios` (2, C): the noise ratios of a denoising label source (JoMoLD), else None.
    """
    rule = SELECTION_RULES.get(job.select)
    if rule.split is not None and select_split is None:
        raise AvvpError(f"{job.variant}: selecting by '{job.select}' needs a split to score (none given)")
    out.mkdir(parents=True, exist_ok=True)
    if _on_cuda(job):
        deterministic()  # same seed, same GPU: same metrics (before the first cuBLAS call; its cost: not measured)
    torch.manual_seed(job.seed)
    model = build(job.spec).to(job.device)
    optim, sched = optimiser(job, model)
    gen = torch.Generator().manual_seed(job.seed)
    state = resume_or_start(job, out, model, optim, sched, gen, quiet)
    if _on_cuda(job):
        lr_to_device(optim, job.device)  # a resumed optimiser holds the saved lr; graphs need a device tensor
    # Built after the resume: warm-up and capture see the restored weights, optimiser state and RNGs.
    runner = StepRunner(model, optim, mode="graph" if job.cuda_graphs else "eager", max_graphs=8, generators=[gen])

    patience = rule.patience
    bar = tqdm(range(state.epoch, job.epochs), initial=state.epoch, total=job.epochs,
               desc=f"{job.variant} s{job.seed}", unit="epoch", disable=quiet, mininterval=1.0)
    for epoch in bar:
        if patience is not None and state.bad_epochs >= patience:
            break
        t0 = time.perf_counter()
        row = train_epoch(model, optim, job, train, y_a, y_v, epoch, gen, runner, ratios)
        sched.step()
        row["train_seconds"] = round(time.perf_counter() - t0, 3)
        improved = select(model, job, select_split, state, row)
        row["seconds"] = round(time.perf_counter() - t0, 3)
        state.log.append(row)
        state.epoch = epoch + 1
        checkpoint(out, job, model, optim, sched, gen, state, improved)
        if not quiet:
            tqdm.write(_progress_line(row))
    bar.close()
    model.load_state_dict(load_torch(paths.best_pt(out), map_location=job.device, remedy=RESUME_REMEDY))
    model.eval()
    return model, state


def graphs_arg(args) -> bool:
    """--graphs on|off; absent: on for CUDA, off on CPU (where the eager step is the reference)."""
    graphs = getattr(args, "graphs", None)
    return torch.device(args.device).type == "cuda" if graphs is None else graphs == "on"


def trained(job: Job, out: Path) -> bool:
    """Whether out/done.json records this job. One that is not JSON is rebuilt (the run resumes from last.pt to
    its end and writes it again), saying so in one line."""
    done = paths.done_json(out)
    if not done.exists():
        return False
    try:
        record = read_json(done, "completion record")
    except Unreadable as e:
        print(f"{done}: unreadable {e.what} ({e.reason}); rebuilding it", flush=True)
        return False
    return record.get("job") == job.key() and unreadable(paths.best_pt(out)) is None and paths.best_pt(out).exists()


def run(args) -> None:
    if args.device == "cuda" and not torch.cuda.is_available():
        raise AvvpError("--device cuda: no CUDA device is visible to torch")
    row = variants.get(args.variant, args.variants_file, lr_scale=args.lr_scale)
    seed = 0 if args.protocol == "released" else args.seed  # the released code fixes every seed to 0
    given = {name: getattr(args, name, None) for name in labels.files()}
    used = {name: given[name] for name in labels.LABEL_SOURCES.get(row.labels).files if given[name]}
    released = row.recipe["released_select"] if args.protocol == "released" else None
    job = Job.of(row, seed, epochs=args.epochs, select=released,
                 precision=args.precision, device=args.device, cuda_graphs=graphs_arg(args),
                 inputs={"data": dataset.manifest_sha256(args.data),
                         **{name: sha256_file(path) for name, path in used.items()}})
    train = dataset.load_split(args.data, "train")
    y_a, y_v = labels.load(row.labels, train, given, f"variant '{row.name}'", args.data, seed)
    rule = SELECTION_RULES.get(job.select)
    select_split = dataset.load_split(args.data, rule.split).to(args.device) if rule.split else None
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    if trained(job, out):
        print(f"{out}: already trained (done.json); nothing to do")
        return
    # What only this run knows, beside the job's key.
    write_json(paths.run_json(out), {**job.key(), "slug": row.slug, "requested_seed": args.seed,
                                  "protocol": args.protocol, **given, "data": str(Path(args.data).resolve()),
                                  "data_manifest_sha256": job.inputs["data"], "git_commit": git_commit()})
    t0 = time.perf_counter()
    train.to(args.device)
    ratios = labels.ratios(row.labels, given)
    _, state = fit(job, train, y_a.to(args.device), y_v.to(args.device), select_split, out, ratios=ratios)
    finish(out, job, state, time.perf_counter() - t0)
    best = state.best
    print(f"{row.name} seed {seed}: selected epoch {best['epoch']} by {best['metric']}"
          + (f" = {best['value']:.2f}" if best["value"] is not None else ""))


def finish(out: Path, job: Job, state: TrainState, wall_seconds: float) -> None:
    """done.json, written last: the selected epoch and its scores, the time, the job's key."""
    best = state.best
    write_json(paths.done_json(out), {
        "selected_epoch": best["epoch"], "selected_by": best["metric"], "selected": best["scores"],
        "epochs_run": state.epoch, "seconds": round(sum(r["seconds"] for r in state.log), 2),  # resumes included
        "wall_seconds_this_process": round(wall_seconds, 2),
        "seconds_per_epoch": [r["seconds"] for r in state.log], "job": job.key()})
