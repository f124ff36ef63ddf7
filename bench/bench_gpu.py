"""GPU benchmark: seconds per epoch (eager vs graphed, fp32 vs bf16), a 40-epoch HAN run, K jobs per GPU.

    python bench/bench_gpu.py            # on a GPU machine: the whole table in one call (budget: under 10 minutes)
    python bench/bench_gpu.py --smoke    # on a CPU: tiny sizes, 1 epoch, no CUDA-only parts (is it broken?)

Needs only torch, numpy, pyyaml, tqdm and this package's pure-Python modules: no Snakemake, pandas or thop.
Training speed does not depend on feature values, so the `full` preset's split sizes (10,000 training, 649
validation videos) are filled with random tensors of the real shapes, made on the device. An epoch is what `avvp
train` runs: avvp.training.train.train_epoch (the row's own loss, with its phases: HAN's smoothing, CM-S's doubled
batch from its start epoch) through avvp.training.graphs.StepRunner, then avvp.evaluation.evaluate.score_split on
the validation split (forward in large batches, the LLP metrics on the host), synchronised before the clock stops.
Every kind of row runs (ROWS), in fp32 and bf16 (a smoke run on a CPU: bf16 for HAN only),
eager and graphed; the graphed step is also compared with the eager one from the same seed (weights after 20
steps, losses). A configuration that fails prints FAILED with its error and the others still run. Throughput: K
worker processes train HAN at once on the GPU; runs per hour are extrapolated from their epochs to 40. Prints a
Markdown table; also writes it to $OUT/bench_gpu.md when OUT is set.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch

from avvp import variants
from avvp.data.dataset import Split
from avvp.evaluation.evaluate import score_split
from avvp.machine import cpu_has_native_bf16
from avvp.registry import LABEL_SOURCES
from avvp.training import label_sources
from avvp.training.graphs import deterministic
from avvp.training.train import Job, Trainer, train_epoch

FULL = {"train": 10000, "val": 649}   # avvp/data/synth.py SIZES["full"] (not imported: it needs pandas)
SMOKE = {"train": 16, "val": 12}   # a batch of 16 (HAN) per epoch: on an AVX2-only CPU emulated bf16 is 10-20x slower
# Every kind of row: a row for each backbone, frame head, label source (its per-batch rule) and extra loss the sheets
# use (avvp.variants.row_kinds: a component registered anew brings its row in).
ROWS = variants.row_kinds()
COMPARE_STEPS = 20  # graphed vs eager step: weights after this many steps (smoke: 2)


def random_data(n: int, device: str, seed: int) -> list[torch.Tensor]:
    g = torch.Generator(device=device).manual_seed(seed)
    y = (torch.rand(n, 25, generator=g, device=device) < 0.1).float()
    return [torch.randn(n, 10, 128, generator=g, device=device),
            torch.randn(n, 10, 2048, generator=g, device=device).abs(),
            torch.randn(n, 10, 512, generator=g, device=device).abs(), y]


def random_split(name: str, n: int, device: str, seed: int) -> Split:
    """A split of `n` random videos of the real shapes on `device`, with random dense annotations to score."""
    audio, visual, motion, y = random_data(n, device, seed)
    rng = np.random.default_rng(seed)
    gt = {k: (rng.random((n, 25, 10)) < 0.05).astype(np.uint8) for k in ("gt_audio", "gt_visual")}
    return Split(name=name, filenames=[f"v{i}" for i in range(n)], audio=audio, visual=visual, motion=motion,
                 labels=y, **gt)


def sync(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


def train(name: str, mode: str, precision: str, device: str, sizes: dict, epochs: int, keep_log: bool = False) -> dict:
    """Seconds of each epoch (training + validation) of row `name` on avvp's own training path, peak GPU memory.

    Epochs are counted from the row's CM-S start epoch on (when it has one), so every timed epoch runs the
    doubled batch; HAN's phases do not change.
    """
    job = Job.of(variants.get(name), seed=0, epochs=epochs, precision=precision, device=device,
                 cuda_graphs=mode == "graph")
    run = Trainer.of(job, mode=mode)
    train_split, val = random_split("train", sizes["train"], device, 0), random_split("val", sizes["val"], device, 1)
    y = label_sources.stand_in(job.labels, train_split.labels)    # per second for VALOR's source
    first = first_epoch(job)
    secs, logs = [], []
    if device == "cuda":
        torch.cuda.reset_peak_memory_stats()
    for epoch in range(first, first + epochs):
        sync(device)
        t0 = time.perf_counter()
        log = train_epoch(run, job, train_split, y, y, epoch, *label_rule(job))
        run.sched.step()
        scores = score_split(run.model, val, job.gating, device, precision)
        sync(device)
        secs.append(time.perf_counter() - t0)
        assert np.isfinite(log["loss_bce"]) and "type_av" in scores["segment"]
        logs.append({**{k: x for k, x in log.items() if k.startswith("loss_")}, **scores["segment"]})
    peak = torch.cuda.max_memory_allocated() / 2**20 if device == "cuda" else None
    out = {"row": name, "mode": mode, "precision": precision, "seconds": secs, "peak_mb": peak}
    return {**out, "log": logs} if keep_log else out


def label_rule(job: Job) -> tuple:
    """The row's per-batch label rule and what it acts with: a source that reads a per-seed file (JoMoLD's noise
    ratios) gets uniform ratios of 0.2 here (the per-batch work does not depend on their values), one that ships
    its values (CMPAE's released ratios) its own; (None, None) without a rule."""
    rule = label_sources.per_batch(job.labels)
    if rule is None:
        return None, None
    if LABEL_SOURCES.get(job.labels).files:
        return rule, torch.full((2, 25), 0.2, dtype=torch.float64)
    return rule, label_sources.values(job.labels, {})


def first_epoch(job: Job) -> int:
    """The first 0-based epoch timed: the row's CM-S start epoch when it has one (its doubled batch), else 0."""
    return job.recipe["cms"].get("start_epoch", 1) - 1 if "cms" in job.losses else 0


def graph_vs_eager(name: str, precision: str, device: str, steps: int) -> dict:
    """The graphed step against the eager one from the same seed over `steps` full batches of random videos:
    max |weight difference| after them and max |loss difference|. Dropout is off in both (on a GPU a graph
    draws its dropout masks in another order than eager steps); on CPU the graph-shaped path must give 0."""
    out = {}
    for mode in ("eager", "graph"):
        job = Job.of(variants.get(name), seed=0, epochs=1, precision=precision, device=device,
                     cuda_graphs=mode == "graph")
        run = Trainer.of(job, mode=mode)
        for m in run.model.modules():
            if isinstance(m, (torch.nn.Dropout, torch.nn.MultiheadAttention)):
                m.p = m.dropout = 0.0
        data = random_split("train", steps * job.recipe["batch"], device, 0)
        y = label_sources.stand_in(job.labels, data.labels)
        log = train_epoch(run, job, data, y, y, first_epoch(job), *label_rule(job))
        out[mode] = ({k: x for k, x in log.items() if k.startswith("loss_")},
                     [p.detach().float().clone() for p in run.model.parameters()])
    (loss_e, w_e), (loss_g, w_g) = out["eager"], out["graph"]
    return {"weights": max((a - b).abs().max().item() for a, b in zip(w_e, w_g)),
            "losses": max(abs(loss_e[k] - loss_g[k]) for k in loss_e)}


def throughput(k: int, device: str, smoke: bool, epochs: int, mode: str, precision: str) -> dict:
    """K workers training HAN at once on one GPU: runs per hour and peak memory per job.

    A run's time is extrapolated from each worker's epochs: first epoch (start-up, capture) + 39 steady epochs.
    """
    cmd = [sys.executable, __file__, "--worker", "--device", device, "--epochs", str(epochs), "--mode", mode,
           "--precision", precision] + (["--smoke"] if smoke else [])
    procs = [subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(k)]
    outputs = [p.communicate() for p in procs]
    for p, (_, err) in zip(procs, outputs):
        if p.returncode:  # an exception, not SystemExit: attempt() prints FAILED and the table goes on
            last = (err.strip().splitlines() or ["no error output"])[-1]
            raise RuntimeError(f"a throughput worker exited with {p.returncode} (K={k}): {last}")
    results = [json.loads(out.strip().splitlines()[-1]) for out, _ in outputs]
    run_seconds = max(r["seconds"][0] + 39 * steady(r["seconds"]) for r in results)
    return {"k": k, "run_seconds": run_seconds, "runs_per_hour": k * 3600 / run_seconds,
            "peak_mb": max(r["peak_mb"] or 0 for r in results) or None}


def steady(secs: list[float]) -> float:
    """Seconds of an epoch after the first (which pays for capture and warm-up); the first when it is alone."""
    rest = secs[1:] or secs
    return sorted(rest)[len(rest) // 2]


def bf16_emulated(device: str, smoke: bool) -> bool:
    """A smoke run on a CPU that only emulates bf16 (no AVX512-BF16 / AMX; on an AVX2-only EPYC 10-20x slower than
    fp32 at these sizes): there the sections after the rows run in fp32."""
    return smoke and device == "cpu" and not cpu_has_native_bf16()


def precisions(row: str, smoke_cpu: bool) -> tuple[str, ...]:
    """A row's precisions: both on a GPU; a smoke run on a CPU runs bf16 for HAN alone, the same autocast path at a
    fraction of the time (every row kind's bf16 step is tests/test_train.py's strict-mode test)."""
    return ("fp32",) if row != "HAN" and smoke_cpu else ("fp32", "bf16")


def mb(x) -> str:
    return "-" if x is None else f"{x:.0f}"


class Report:
    """The table's lines, printed as they come and rewritten to $OUT/bench_gpu.md after each one, so a run cut
    short (a time limit, a crash) still leaves every figure measured so far."""

    def __init__(self):
        self.lines: list[str] = []
        self.out = Path(os.environ["OUT"]) / "bench_gpu.md" if os.environ.get("OUT") else None

    def add(self, *lines: str) -> None:
        self.lines += lines
        print("\n".join(lines), flush=True)
        if self.out is not None:
            self.out.parent.mkdir(parents=True, exist_ok=True)
            self.out.write_text("\n".join(self.lines) + "\n")


def attempt(report: Report, what: str, fn):
    """fn(), or None with a FAILED line naming `what` and the error: one failure must not cost the other figures."""
    try:
        return fn()
    except Exception as e:  # noqa: BLE001 (a benchmark reports every failure and goes on)
        report.add(f"| FAILED: {what}: {type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''} |")
        return None


def epoch_rows(report: Report, device: str, sizes: dict, epochs: int, smoke_cpu: bool) -> None:
    report.add("| row | step | precision | first epoch s | s/epoch | peak MB |", "|---|---|---|---|---|---|")
    for row in ROWS:
        for mode in ("eager", "graph"):
            for precision in precisions(row, smoke_cpu):
                r = attempt(report, f"{row} {mode} {precision}",
                            lambda: train(row, mode, precision, device, sizes, epochs))
                if r is not None:
                    report.add(f"| {row} | {mode} | {precision} | {r['seconds'][0]:.2f} | "
                               f"{steady(r['seconds']):.3f} | {mb(r['peak_mb'])} |")


def compare_rows(report: Report, device: str, steps: int, smoke_cpu: bool) -> None:
    report.add("", f"Graphed vs eager step, {steps} steps from one seed, dropout off:", "",
               "| row | precision | steps | max abs weight diff | max abs loss diff |", "|---|---|---|---|---|")
    for row in ROWS:
        for precision in precisions(row, smoke_cpu):
            r = attempt(report, f"{row} {precision} graph vs eager",
                        lambda: graph_vs_eager(row, precision, device, steps))
            if r is not None:
                report.add(f"| {row} | {precision} | {steps} | {r['weights']:.3g} | {r['losses']:.3g} |")


def determinism(report: Report, device: str, sizes: dict, epochs: int, precision: str) -> None:
    """Same seed twice with deterministic kernels: identical losses and validation scores? And what the
    deterministic kernels cost (HAN, graph, s/epoch with them off)."""
    runs = [attempt(report, f"determinism run {i + 1}", lambda: train("HAN", "graph", precision, device, sizes, epochs,
                                                                     keep_log=True)) for i in range(2)]
    if all(runs):
        same = runs[0]["log"] == runs[1]["log"]
        report.add(f"Same seed twice (HAN, graph, {precision}, deterministic kernels, {epochs} epochs): "
                   f"{'IDENTICAL' if same else 'DIFFERENT'} losses and validation scores")
    deterministic(False)
    try:
        r = attempt(report, "HAN without deterministic kernels", lambda: train("HAN", "graph", precision, device,
                                                                              sizes, epochs))
    finally:
        deterministic(True)
    if r is not None and runs[0] is not None:
        report.add(f"Deterministic kernels cost: {steady(runs[0]['seconds']):.3f} s/epoch with, "
                   f"{steady(r['seconds']):.3f} without")


def table(device: str, sizes: dict, epochs: int, smoke: bool) -> list[str]:
    """Every section of the benchmark, as Markdown lines (printed as they come: a long run shows progress)."""
    report = Report()
    name = torch.cuda.get_device_name() if device == "cuda" else "CPU"
    report.add(f"# bench_gpu: {name}, torch {torch.__version__}, {sizes['train']} training + {sizes['val']} "
               f"validation videos{' (SMOKE: tiny sizes, not a measurement)' if smoke else ''}", "")
    if device == "cuda":
        deterministic()  # as `avvp train` runs on a GPU (avvp.training.train.fit)
    emulated = bf16_emulated(device, smoke)  # read once: it decides the later sections' precision
    smoke_cpu = smoke and device == "cpu"
    if smoke_cpu:
        report.add("Smoke on a CPU: bf16 for HAN's rows only.", "")
    if emulated:
        report.add("This CPU emulates bf16 (no AVX512-BF16 / AMX): the later sections in fp32.", "")
    late = "fp32" if emulated else "bf16"  # the precision of the sections after the rows
    epoch_rows(report, device, sizes, epochs, smoke_cpu)
    compare_rows(report, device, 2 if smoke else COMPARE_STEPS, smoke_cpu)
    report.add("")
    determinism(report, device, sizes, epochs, late)
    full_epochs = 2 if smoke else 40
    t0 = time.perf_counter()
    r = attempt(report, f"HAN {full_epochs} epochs", lambda: train("HAN", "graph", late, device, sizes, full_epochs))
    if r is not None:
        report.add("", f"HAN, {full_epochs} epochs end to end (graph, {late}): {time.perf_counter() - t0:.1f} s "
                   f"(peak {mb(r['peak_mb'])} MB)")
    report.add("", "| K jobs on one GPU | run s (extrapolated to 40 epochs) | runs per hour | peak MB per job |",
               "|---|---|---|---|")
    for k in ((1, 2) if smoke else (1, 2, 4, 8)):
        t = attempt(report, f"K={k}", lambda: throughput(k, device, smoke, 2 if smoke else 3, "graph", late))
        if t is not None:
            report.add(f"| {k} | {t['run_seconds']:.1f} | {t['runs_per_hour']:.0f} | {mb(t['peak_mb'])} |")
    return report.lines


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--smoke", action="store_true", help="tiny sizes, 1 epoch: checks the script, measures nothing")
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu", choices=["cpu", "cuda"])
    ap.add_argument("--epochs", type=int, help="epochs per timed configuration (default 2; smoke 1)")
    ap.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)  # one throughput job
    ap.add_argument("--mode", default="graph", help=argparse.SUPPRESS)
    ap.add_argument("--precision", default="bf16", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.device == "cuda" and not torch.cuda.is_available():
        raise SystemExit("bench_gpu: --device cuda but torch sees no GPU (use --smoke --device cpu on a CPU)")
    sizes = SMOKE if args.smoke else FULL
    if args.smoke:
        torch.set_num_threads(1)  # tiny tensors: more threads only contend with the other jobs of a CPU test run
    epochs = args.epochs or (1 if args.smoke else 2)
    if args.worker:
        if args.device == "cuda":
            deterministic()
        print(json.dumps(train("HAN", args.mode, args.precision, args.device, sizes, epochs)))
        return
    table(args.device, sizes, epochs, args.smoke)
    if os.environ.get("OUT"):
        print(f"written to {Path(os.environ['OUT']) / 'bench_gpu.md'}")


if __name__ == "__main__":
    main()
