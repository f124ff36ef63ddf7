"""GPU benchmark: seconds per epoch (eager vs graphed, fp32 vs bf16), a 40-epoch HAN run, K jobs per GPU.

    python bench/bench_gpu.py            # on a GPU machine: the whole table in one call (budget: under 10 minutes)
    python bench/bench_gpu.py --smoke    # on a CPU: tiny sizes, 1 epoch, no CUDA-only parts (is it broken?)

Needs only torch, numpy, pyyaml and this package's pure-Python modules (models, losses, graphs, variants): no
Snakemake, pandas or thop. Training speed does not depend on feature values, so the `full` preset's split sizes
(10,000 training, 649 validation videos) are filled with random tensors of the real shapes, made on the device.
An epoch is every training step plus the validation forward pass in one batch, synchronised before the clock
stops. The step is avvp's loss (MMIL BCE, + CM-S with its batch doubled, as from CM-S's start epoch) under
avvp.graphs.StepRunner. Throughput: K worker processes train HAN at once on the GPU; runs per hour are
extrapolated from their epochs to 40. Prints a Markdown table; also writes it to $OUT/bench_gpu.md when OUT is set.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import torch

from avvp import losses, variants
from avvp.graphs import StepRunner, capturable_adam, make_step
from avvp.models import build

FULL = {"train": 10000, "val": 649}   # avvp/data/synth.py SIZES["full"] (not imported: it needs pandas)
SMOKE = {"train": 40, "val": 12}
ROWS = ["HAN", "HAN + CM-Co", "MA* + Ours"]


def random_data(n: int, device: str, seed: int) -> list[torch.Tensor]:
    g = torch.Generator(device=device).manual_seed(seed)
    y = (torch.rand(n, 25, generator=g, device=device) < 0.1).float()
    return [torch.randn(n, 10, 128, generator=g, device=device),
            torch.randn(n, 10, 2048, generator=g, device=device).abs(),
            torch.randn(n, 10, 512, generator=g, device=device).abs(), y]


def loss_fn_for(row, precision: str, device: str, cms_on: bool):
    """avvp's training loss for `row` in a CM-S phase; the permutation is device RNG, so a graph can replay it."""
    def loss_fn(model, batch):
        audio, visual, motion, y = batch
        n = y.shape[0]
        y_a = y_v = y
        if cms_on:
            perm = torch.rand(n, device=audio.device).argsort()
            audio, visual, motion = torch.cat([audio, audio[perm]]), torch.cat([visual, visual]), torch.cat([motion, motion])
            y_a, y_v = torch.cat([y, y[perm]]), torch.cat([y, y])
        with torch.autocast(device, dtype=torch.bfloat16, enabled=precision == "bf16", cache_enabled=False):
            out = model(audio, visual, motion)
        out = {k: v.float() for k, v in out.items()}
        first = {k: v[:n] for k, v in out.items()}
        loss = losses.mmil_bce(first, y, 0.9 * y + 0.05, y)
        if cms_on:
            att, cfg = out["frame_att_logit"], row.recipe["cms"]
            loss = loss + cfg["weight"] * losses.cms_loss(out["x_a"], out["x_v"], att[:, :, 0], att[:, :, 1],
                                                          y_a, y_v, cfg["tau"])
        return loss, {"loss": loss.detach()}
    return loss_fn


def sync(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


def train(name: str, mode: str, precision: str, device: str, sizes: dict, epochs: int) -> dict:
    """Seconds of each epoch (training + validation) of row `name`, and the peak GPU memory."""
    row = variants.get(name)
    torch.manual_seed(0)
    model = build(row.model).to(device)
    optim = capturable_adam(model.parameters(), row.recipe["lr"], device)
    sched = torch.optim.lr_scheduler.StepLR(optim, step_size=row.recipe["step_size"], gamma=row.recipe["gamma"])
    data, val = random_data(sizes["train"], device, 0), random_data(sizes["val"], device, 1)
    runner = StepRunner(model, optim, mode=mode)
    cms_on = "cms" in row.losses
    step = make_step(model, optim, loss_fn_for(row, precision, device, cms_on))
    batch, n, secs = row.recipe["batch"], sizes["train"], []
    if device == "cuda":
        torch.cuda.reset_peak_memory_stats()
    for _ in range(epochs):
        sync(device)
        t0 = time.perf_counter()
        model.train()
        order = torch.randperm(n, device=device)
        total = torch.zeros((), device=device)
        for start in range(0, n, batch):
            idx = order[start:start + batch]
            total += runner(step, [t[idx] for t in data], key=cms_on)["loss"]
        sched.step()
        model.eval()
        with torch.no_grad(), torch.autocast(device, dtype=torch.bfloat16, enabled=precision == "bf16"):
            probs = model(*val[:3])["frame_prob"].float().cpu()  # the metrics read it on the host
        sync(device)
        secs.append(time.perf_counter() - t0)
        assert torch.isfinite(total).item() and probs.shape[0] == sizes["val"]
    peak = torch.cuda.max_memory_allocated() / 2**20 if device == "cuda" else None
    return {"row": name, "mode": mode, "precision": precision, "seconds": secs, "peak_mb": peak}


def throughput(k: int, device: str, smoke: bool, epochs: int, mode: str, precision: str) -> dict:
    """K workers training HAN at once on one GPU: runs per hour and peak memory per job.

    A run's time is extrapolated from each worker's epochs: first epoch (start-up, capture) + 39 steady epochs.
    """
    cmd = [sys.executable, __file__, "--worker", "--device", device, "--epochs", str(epochs), "--mode", mode,
           "--precision", precision] + (["--smoke"] if smoke else [])
    procs = [subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True) for _ in range(k)]
    results = [p.communicate()[0].strip().splitlines() for p in procs]
    if any(p.returncode for p in procs):
        raise SystemExit(f"a throughput worker failed (K={k})")
    results = [json.loads(lines[-1]) for lines in results]
    run_seconds = max(r["seconds"][0] + 39 * steady(r["seconds"]) for r in results)
    return {"k": k, "run_seconds": run_seconds, "runs_per_hour": k * 3600 / run_seconds,
            "peak_mb": max(r["peak_mb"] or 0 for r in results) or None}


def steady(secs: list[float]) -> float:
    """Seconds of an epoch after the first (which pays for capture and warm-up); the first when it is alone."""
    rest = secs[1:] or secs
    return sorted(rest)[len(rest) // 2]


def mb(x) -> str:
    return "-" if x is None else f"{x:.0f}"


def table(device: str, sizes: dict, epochs: int, smoke: bool) -> list[str]:
    """Every section of the benchmark, as Markdown lines (printed as they come: a long run shows progress)."""
    name = torch.cuda.get_device_name() if device == "cuda" else "CPU"
    lines = [f"# bench_gpu: {name}, torch {torch.__version__}, {sizes['train']} training + {sizes['val']} "
             f"validation videos{' (SMOKE: tiny sizes, not a measurement)' if smoke else ''}", "",
             "| row | step | precision | first epoch s | s/epoch | peak MB |", "|---|---|---|---|---|---|"]
    print("\n".join(lines), flush=True)
    for row in ROWS:
        for mode in ("eager", "graph"):
            for precision in ("fp32", "bf16"):
                r = train(row, mode, precision, device, sizes, epochs)
                lines.append(f"| {row} | {mode} | {precision} | {r['seconds'][0]:.2f} | {steady(r['seconds']):.3f}"
                             f" | {mb(r['peak_mb'])} |")
                print(lines[-1], flush=True)
    full_epochs = 2 if smoke else 40
    t0 = time.perf_counter()
    r = train("HAN", "graph", "bf16", device, sizes, full_epochs)
    lines += ["", f"HAN, {full_epochs} epochs end to end (graph, bf16): {time.perf_counter() - t0:.1f} s "
              f"(peak {mb(r['peak_mb'])} MB)", "",
              "| K jobs on one GPU | run s (extrapolated to 40 epochs) | runs per hour | peak MB per job |",
              "|---|---|---|---|"]
    print("\n".join(lines[-5:]), flush=True)
    for k in ((1, 2) if smoke else (1, 2, 4, 8)):
        t = throughput(k, device, smoke, 2 if smoke else 3, "graph", "bf16")
        lines.append(f"| {k} | {t['run_seconds']:.1f} | {t['runs_per_hour']:.0f} | {mb(t['peak_mb'])} |")
        print(lines[-1], flush=True)
    return lines


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
        print(json.dumps(train("HAN", args.mode, args.precision, args.device, sizes, epochs)))
        return
    lines = table(args.device, sizes, epochs, args.smoke)
    if os.environ.get("OUT"):
        out = Path(os.environ["OUT"]) / "bench_gpu.md"
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text("\n".join(lines) + "\n")
        print(f"written to {out}")


if __name__ == "__main__":
    main()
