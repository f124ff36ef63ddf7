"""`avvp train`: one variant, one seed. A short training loop to read top to bottom (nanoGPT style).

The loop, per epoch: shuffle the training videos, build each batch's targets from the row's label source and
recipe (docs/protocol.md#han-recipe; a source may also change them per batch, its `per_batch` rule), add the
row's extra losses (each may augment the batch first), step, then score the validation split with the LLP
metrics and keep the selected weights. Every epoch ends with an atomic checkpoint holding everything the
next epoch needs (weights, optimiser, scheduler, RNG states, the log so far), so a run killed at any moment and
started again with the same arguments ends with exactly the metrics of an uninterrupted run.
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
from avvp.registry import EXTRA_LOSSES, LABEL_SOURCES, SCHEDULES, SELECTION_RULES, resolve
from avvp.training import label_sources, losses, tracking
from avvp.training.graphs import StepRunner, capturable_adam, deterministic, make_capturable, make_step
from avvp.training.label_sources import PerBatchRule
from avvp.training.losses import Batch
from avvp.variants import Variant

RESUME_REMEDY = "delete it to start the run over"


@dataclass
class Job:
    """Everything that defines a training run; two runs with equal jobs give identical results."""
    variant: str               # the row's name
    spec: dict                 # normalised model spec, dropout included
    recipe: dict
    losses: tuple
    labels: str                # a label source (LABEL_SOURCES)
    gating: str                # a gating (GATINGS)
    seed: int
    epochs: int
    select: str                # a selection rule (SELECTION_RULES)
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
class Selected:
    """The epoch a selection rule keeps (its weights are best.pt)."""
    epoch: int                     # 1-based
    value: float | None            # the rule's metric there; None for `last`
    metric: str                    # what was compared, e.g. "val segment type_av", or "last epoch"
    scores: dict | None            # the ten numbers of the selection split there; None for `last`


@dataclass
class TrainState:
    """What the loop carries from epoch to epoch (saved in every checkpoint)."""
    epoch: int = 0                 # epochs done
    best: Selected | None = None   # the selected epoch so far
    bad_epochs: int = 0            # epochs since the selection metric last improved
    log: list = field(default_factory=list)   # one row per epoch, as in log.csv

    @classmethod
    def of(cls, saved: dict) -> TrainState:
        """The state of a checkpoint's `asdict(state)`."""
        best = saved.get("best")
        return cls(**{**saved, "best": Selected(**best) if best is not None else None})


def smoothing_on(recipe: dict, epoch: int) -> bool:
    """Whether the recipe smooths the visual targets in 0-based `epoch` (always, or epochs 1-2 only)."""
    return recipe["visual_smoothing"] == "always" or (recipe["visual_smoothing"] == "first2" and epoch < 2)


def targets(recipe: dict, y, y_a, y_v, epoch: int):
    """BCE targets of a batch: audio, visual (label-smoothed as the recipe says), and the MIL (global) target.

    Smoothing follows HAN: visual target 0.9*y_v + 0.05, because visual labels derived from video-level labels
    are noisier than audio ones. A weak label that the label source removed from the visual labels (y_v) gets 0
    under `removed_visual: zero`, or 0.05 like any other negative under `smooth`. The MIL target (`mil_target`):
    `weak` = the video-level labels; `union` = the source's audio OR visual labels; `audio` = the source's audio
    labels, i.e. the weak labels less the classes removed from the audio. A source's per-second labels (B, T, C)
    count here by their video-level label, their max over time (an extra loss may read them per second). Each
    method's page in docs/methods/ says which of these its recipe uses, and why.
    """
    if y_a.dim() == 3:   # a source's per-second labels (B, T, C): their video-level label is their max over time
        y_a, y_v = y_a.amax(dim=1), y_v.amax(dim=1)
    smooth = smoothing_on(recipe, epoch)
    t_v = 0.9 * y_v + 0.05 if smooth else y_v.clone()
    if smooth and recipe["removed_visual"] == "zero":
        t_v = torch.where((y > 0) & (y_v == 0), torch.zeros_like(t_v), t_v)
    t_global = {"weak": y, "union": torch.maximum(y_a, y_v), "audio": y_a}[recipe["mil_target"]]
    return y_a, t_v, t_global


def batch_loss(model, job: Job, batch: Batch, epoch: int, gen: torch.Generator, rule: PerBatchRule | None = None):
    """The loss of one batch and its terms (detached tensors, summed for the log: no device sync per step).

    The label source's per-batch `rule`, if any, changes the batch's targets first. The MMIL BCE covers the
    batch's real videos (its first n rows); each extra loss in force augments the batch first if it needs to,
    and adds its term on the model's outputs.
    """
    if rule is not None:
        batch = rule.apply(model, job, batch, epoch)
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


def phase_key(job: Job, epoch: int) -> tuple:
    """Every Python-level choice batch_loss makes from the epoch (visual smoothing on or off, the extra losses in
    force): a captured CUDA graph freezes them, so StepRunner keeps one graph per key (and per batch shape)."""
    extras = tuple(name for name, _, _ in losses.active_extras(job.losses, job.recipe, epoch))
    return smoothing_on(job.recipe, epoch), extras


def epoch_schedule(job: Job, rule: PerBatchRule | None, values, n: int, epoch: int):
    """What the label source's per-batch rule acts with at each batch of 0-based `epoch`, (iterations, ...) as the
    rule's schedule and its recipe settings say; None without a rule."""
    if rule is None:
        return None
    iterations = -(-n // job.recipe["batch"])      # the last batch may be short
    return rule.schedule(values, job.recipe[rule.key], iterations, epoch)


def counts_steps(job: Job, rule: PerBatchRule | None) -> bool:
    """Whether the step needs its batch's index within the epoch (Batch.step): to read the per-batch rule's row of
    the epoch's schedule, or for a term that reads it."""
    return rule is not None or any(EXTRA_LOSSES.get(name).reads_step for name in job.losses)


def loss_of_indexed(job: Job, train: dataset.Split, y_a, y_v, epoch: int, gen, schedule=None, step=None,
                    rule: PerBatchRule | None = None):
    """batch_loss of a batch given as its videos' index, gathered from the device-resident split (inside the
    step: a captured graph then has the index as its only per-step input).

    `step` (a 0-dim int64 tensor, or None): the step's own count within the epoch, read as Batch.step and then
    incremented, inside the step; `schedule` (iterations, ...): what the per-batch `rule` acts with at each batch
    of the epoch, the row of this step taken inside the step (Batch.in_force). Both are tensors of the runner's
    life, refilled in place each epoch, so a graph captured in one epoch replays every later one with that
    epoch's values.
    """
    sources = (train.audio, train.visual, train.motion, train.labels, y_a, y_v)

    def loss_fn(model, indexed):
        (idx,) = indexed
        batch = Batch(*(t[idx] for t in sources))
        if step is not None:
            at = step.clone()     # this step's index, kept apart from the counter incremented below
            in_force = None
            if schedule is not None:  # clamped: a capture's warm-up steps (undone) may count past the epoch's end
                in_force = schedule.index_select(0, at.clamp(max=len(schedule) - 1).view(1))[0]
            batch = dataclasses.replace(batch, step=at, in_force=in_force)
        loss, terms = batch_loss(model, job, batch, epoch, gen, rule)
        if step is not None:
            with torch.no_grad():
                step.add_(1)
        return loss, terms
    return loss_fn


# The runner's total that counts the epoch's steps inside the step (not a loss: never logged).
STEP_COUNT = "_steps"


def train_epoch(run: Trainer, job: Job, train: dataset.Split, y_a, y_v, epoch: int, rule=None, values=None) -> dict:
    """One pass over the shuffled training videos; the epoch's log row (epoch, learning rate, mean losses).

    Steps run through `run.runner` (a CUDA graph per phase and batch shape, or graph-shaped, or eager). The data
    stay on their device: the order is copied there once an epoch, each step gathers its batch there and adds its
    loss terms into the runner's totals there; they are read once, at the end. `rule`, `values`: the label
    source's per-batch rule and what it acts with; the epoch's schedule of them is copied to the device once an
    epoch (run.schedule), and each step takes its own row there by its step count (kept with the totals: zeroed
    every epoch, undone after a capture's warm-up).
    """
    run.model.train()
    n = len(train)
    # Drawn by the host generator on every device (the same order on CPU and GPU), then one copy an epoch.
    order = torch.randperm(n, generator=run.gen).to(train.audio.device)
    step, key = epoch_step(run, job, train, y_a, y_v, epoch, rule, values)
    steps = 0
    for start in range(0, n, job.recipe["batch"]):
        run.runner(step, (order[start:start + job.recipe["batch"]],), key)
        steps += 1
    row = {"epoch": epoch + 1, "lr": float(run.optim.param_groups[0]["lr"])}  # the rate this epoch trained with
    row.update({f"loss_{k}": run.runner.totals[k].item() / steps for k in ["bce", *key[1]]})
    return row


def epoch_step(run: Trainer, job: Job, train: dataset.Split, y_a, y_v, epoch: int, rule=None, values=None):
    """The epoch's training step, the callable `run.runner` captures, and its graph key; the runner's totals
    (one per loss term in force, and the step count where the step reads it) zeroed, the per-batch rule's
    schedule of the epoch copied into run.schedule."""
    key = phase_key(job, epoch)
    totals = run.runner.totals
    device = train.audio.device
    for name in ["bce", *key[1]]:  # made before any capture (a graph adds into fixed addresses), zeroed every epoch
        totals.setdefault(name, torch.zeros((), device=device))
    if counts_steps(job, rule):
        totals.setdefault(STEP_COUNT, torch.zeros((), dtype=torch.int64, device=device))
    if rule is not None:
        in_force = epoch_schedule(job, rule, values, len(train), epoch).float().to(device)
        if run.schedule is None:   # one tensor for the runner's life: captured graphs read its memory
            run.schedule = torch.empty_like(in_force)
        run.schedule.copy_(in_force)
    for total in totals.values():
        total.zero_()
    loss_fn = loss_of_indexed(job, train, y_a, y_v, epoch, run.gen, run.schedule if rule is not None else None,
                              totals.get(STEP_COUNT), rule)
    return make_step(run.model, run.optim, loss_fn, totals, job.recipe.get("clip_grad_norm")), key


def keep_if_best(model, job: Job, split: dataset.Split | None, state: TrainState, row: dict) -> bool:
    """Score the selection rule's split into `row` and keep the epoch if it is the best so far (True: save it)."""
    epoch = row["epoch"]
    rule = SELECTION_RULES.get(job.select)
    if rule.split is None:
        state.best = Selected(epoch, None, "last epoch", None)
        return True
    scores = score_split(model, split, job.gating, job.device, job.precision)
    for level, numbers in scores.items():
        for k, value in numbers.items():
            row[f"{split.name}_{level}_{k}"] = value
    value = rule.metric(scores)
    improved = state.best is None or rule.improves(value, state.best.value)
    if improved:
        state.best = Selected(epoch, value, f"{split.name} {rule.metric}", scores)
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
        # weights_only: tensors, dicts, lists and numbers only, never a pickled object (a results folder from
        # elsewhere must not run code on resume).
        ckpt = load_torch(last, remedy=RESUME_REMEDY)
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


def resume_or_start(job: Job, out: Path, run: Trainer, quiet: bool) -> TrainState:
    """The state after the last finished epoch of out/last.pt, restored into the run's objects; a fresh
    state when there is none, or when it cannot be resumed (`resumable`)."""
    ckpt = resumable(job, out)
    if ckpt is None:
        return TrainState()
    run.model.load_state_dict(ckpt["model"])
    run.optim.load_state_dict(ckpt["optim"])
    for_graphs(run.optim, job)  # load_state_dict installed the saved groups: their lr, their capturable flag
    run.sched.load_state_dict(ckpt["sched"])
    run.gen.set_state(ckpt["gen"])
    torch.set_rng_state(ckpt["torch_rng"])
    if ckpt.get("cuda_rng") is not None:  # dropout (and any device RNG) on a GPU resumes where it stopped
        torch.cuda.set_rng_state_all(ckpt["cuda_rng"])
    state = TrainState.of(ckpt["state"])
    if not quiet and state.epoch < job.epochs:
        print(f"resuming {job.variant} seed {job.seed} after epoch {state.epoch}", flush=True)
    return state


def snapshot_epochs(job: Job) -> dict[int, str]:
    """Epoch (1-based) -> the name of the snapshot of its weights the recipe keeps (`snapshots: {name: epoch}`,
    each RUN/<name>.pt: what a later pass may need besides the selected weights), each epoch scaled to the run's
    epochs when it is shorter than the recipe's (round(epoch x epochs / the recipe's), at least 1)."""
    out = {}
    for name, epoch in job.recipe.get("snapshots", {}).items():
        full = job.recipe["epochs"]
        scaled = epoch if job.epochs >= full else max(1, round(epoch * job.epochs / full))
        out[scaled] = name
    return out


def checkpoint(out: Path, job: Job, run: Trainer, state: TrainState, improved: bool) -> None:
    """Snapshots and best.pt first, then last.pt: a kill between them redoes this epoch identically on resume."""
    snapshot = snapshot_epochs(job).get(state.epoch)
    if snapshot is not None:
        save_torch(paths.snapshot_pt(out, snapshot), run.model.state_dict())
    if improved:
        save_torch(paths.best_pt(out), run.model.state_dict())
    save_torch(paths.last_pt(out), {"job": job.key(), "model": run.model.state_dict(),
                                    "optim": run.optim.state_dict(), "sched": run.sched.state_dict(),
                                    "gen": run.gen.get_state(),
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


def graphed(job: Job) -> bool:
    """Whether the job's steps are captured as CUDA graphs: the one place that says so. `cuda_graphs` on CPU
    runs the same static-buffer path without capture (graph-shaped), whose optimiser need not be capturable."""
    return job.cuda_graphs and _on_cuda(job)


def optimiser(job: Job, model):
    """Fused Adam (one kernel for all parameters; the recipe's `optimizer: adamw` AdamW, with its `betas` and
    `weight_decay`) and the recipe's schedule (SCHEDULES; default HAN's StepLR). Graphed CUDA jobs get a
    capturable optimiser with its learning rate a tensor on the parameters' device (`capturable_adam`), so a
    captured step reads the rate the schedule writes; every other job a float rate (a capturable optimiser pays
    extra kernels when not captured)."""
    recipe = job.recipe
    options = {"betas": tuple(recipe.get("betas", (0.9, 0.999))), "weight_decay": recipe.get("weight_decay", 0.0)}
    kind = torch.optim.AdamW if recipe.get("optimizer", "adam") == "adamw" else torch.optim.Adam
    if graphed(job):
        optim = capturable_adam(model.parameters(), recipe["lr"], kind, **options)
    else:
        optim = kind(model.parameters(), lr=recipe["lr"], fused=True, **options)
    return optim, resolve(SCHEDULES.get(recipe.get("schedule", "step")).make)(optim, recipe, job.epochs)


def for_graphs(optim: torch.optim.Optimizer, job: Job) -> None:
    """After `load_state_dict` (which installs the saved param groups): a graphed job's groups capturable again
    with a device-tensor lr; nothing for the others."""
    if graphed(job):
        make_capturable(optim)


@dataclass
class Trainer:
    """The training objects of one run, together (built in a fixed order: the seed fixes the weights)."""
    model: torch.nn.Module
    optim: torch.optim.Optimizer
    sched: torch.optim.lr_scheduler.LRScheduler
    gen: torch.Generator           # host RNG: the epochs' order, an extra loss's draws on CPU
    runner: StepRunner             # captures on first use, so what a resume restores is what graphs see
    schedule: torch.Tensor | None = None   # the per-batch rule's values at each batch of the epoch (train_epoch)

    @classmethod
    def of(cls, job: Job, mode: str | None = None) -> Trainer:
        """The objects of `job`, freshly seeded; steps graphed as `job.cuda_graphs` says, or as `mode` forces."""
        torch.manual_seed(job.seed)
        model = build(job.spec).to(job.device)
        optim, sched = optimiser(job, model)
        gen = torch.Generator().manual_seed(job.seed)
        mode = mode or ("graph" if job.cuda_graphs else "eager")
        return cls(model, optim, sched, gen, StepRunner(model, optim, mode=mode, max_graphs=8, generators=[gen]))


def fit(job: Job, train: dataset.Split, y_a, y_v, select_split: dataset.Split | None, out: Path,
        quiet: bool = False, on_epoch=None, values=None):
    """Train `job` on `train`, resuming from out/last.pt when it exists; returns the selected model and state.

    `y_a`, `y_v` are the audio and visual labels of the row's label source.
    `select_split` is scored every epoch: the split of the job's selection rule (validation; the test split
    under the released protocol); a rule without one (`last`) keeps the last epoch and needs none.
    `job.cuda_graphs`: each training step as a CUDA graph (avvp.training.graphs; on CPU the same static-buffer
    path runs without capture), else the plain eager step. Both compute the same function.
    `on_epoch(row)` sees each finished epoch's log row (avvp.training.tracking: TensorBoard); it changes nothing.
    `values`: what the label source's per-batch rule acts with (label_sources.values), else None.
    """
    rule = SELECTION_RULES.get(job.select)
    if rule.split is not None and select_split is None:
        raise AvvpError(f"{job.variant}: selecting by '{job.select}' needs a split to score (none given)")
    out.mkdir(parents=True, exist_ok=True)
    if _on_cuda(job):
        deterministic()  # same seed, same GPU: same metrics (before the first cuBLAS call; its cost: not measured)
    run = Trainer.of(job)
    state = resume_or_start(job, out, run, quiet)
    label_rule = label_sources.per_batch(job.labels)

    patience = rule.patience
    bar = tqdm(range(state.epoch, job.epochs), initial=state.epoch, total=job.epochs,
               desc=f"{job.variant} s{job.seed}", unit="epoch", disable=quiet, mininterval=1.0)
    for epoch in bar:
        if patience is not None and state.bad_epochs >= patience:
            break
        t0 = time.perf_counter()
        row = train_epoch(run, job, train, y_a, y_v, epoch, label_rule, values)
        run.sched.step()
        row["train_seconds"] = round(time.perf_counter() - t0, 3)
        improved = keep_if_best(run.model, job, select_split, state, row)
        row["seconds"] = round(time.perf_counter() - t0, 3)
        state.log.append(row)
        state.epoch = epoch + 1
        checkpoint(out, job, run, state, improved)
        if on_epoch is not None:
            on_epoch(row)
        if not quiet:
            tqdm.write(_progress_line(row))
    bar.close()
    run.model.load_state_dict(load_torch(paths.best_pt(out), map_location=job.device, remedy=RESUME_REMEDY))
    run.model.eval()
    return run.model, state


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


def main(args) -> None:
    if args.device == "cuda" and not torch.cuda.is_available():
        raise AvvpError("--device cuda: no CUDA device is visible to torch")
    row = variants.get(args.variant, args.variants_file, lr_scale=args.lr_scale)
    seed = 0 if args.protocol == "released" else args.seed  # the released code fixes every seed to 0
    given = {name: getattr(args, name, None) for name in label_sources.options()}
    used = {name: given[name] for name in LABEL_SOURCES.get(row.labels).files if given[name]}
    released = row.recipe["released_select"] if args.protocol == "released" else None
    job = Job.of(row, seed, epochs=args.epochs, select=released,
                 precision=args.precision, device=args.device, cuda_graphs=graphs_arg(args),
                 inputs={"data": dataset.manifest_sha256(args.data),
                         **{name: sha256_file(path) for name, path in used.items()}})
    train = dataset.load_split(args.data, "train")
    y_a, y_v = label_sources.load(row.labels, train, given, f"variant '{row.name}'", args.data, seed, row.recipe)
    values = label_sources.values(row.labels, given)   # its per-batch rule's (a bad file: one line, nothing written)
    rule = SELECTION_RULES.get(job.select)
    select_split = dataset.load_split(args.data, rule.split).to(args.device) if rule.split else None
    out = Path(args.out)
    tracker = tracking.Tracking(getattr(args, "tensorboard", None), row.slug, seed)
    out.mkdir(parents=True, exist_ok=True)
    if trained(job, out):
        print(f"{out}: already trained (done.json); nothing to do")
        return
    # What only this run knows, beside the job's key.
    write_json(paths.run_json(out), {**job.key(), "slug": row.slug, "requested_seed": args.seed,
                                  "protocol": args.protocol, **given, "data": str(Path(args.data).resolve()),
                                  "data_manifest_sha256": job.inputs["data"], "git_commit": git_commit(),
                                  "recipe_name": row.recipe_name, "environment": tracking.environment(args.device)})
    t0 = time.perf_counter()
    train.to(args.device)
    with tracker as on_epoch:
        _, state = fit(job, train, y_a.to(args.device), y_v.to(args.device), select_split, out, on_epoch=on_epoch,
                       values=values)
    finish(out, job, state, time.perf_counter() - t0)
    best = state.best
    print(f"{row.name} seed {seed}: selected epoch {best.epoch} by {best.metric}"
          + (f" = {best.value:.2f}" if best.value is not None else ""))


def finish(out: Path, job: Job, state: TrainState, wall_seconds: float) -> None:
    """done.json, written last: the selected epoch and its scores, the time, the job's key."""
    best = state.best
    write_json(paths.done_json(out), {
        "selected_epoch": best.epoch, "selected_by": best.metric, "selected": best.scores,
        "epochs_run": state.epoch, "seconds": round(sum(r["seconds"] for r in state.log), 2),  # resumes included
        "wall_seconds_this_process": round(wall_seconds, 2),
        "seconds_per_epoch": [r["seconds"] for r in state.log], "job": job.key()})
