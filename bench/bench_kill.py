"""Kill the workflow with SIGKILL at a random moment in each stage, run the same command again: same tables.

    python bench/bench_kill.py [--target results/table2.md] [--stages synth pack refine train evaluate table]
                               [--seed 0] [--cores 2] [--out DIR] [--config KEY=VALUE ...] [--reuse-reference]

First the target is made once without interruption (the reference) in a copy of the workflow in DIR/work, then
moved to DIR/reference. Then, in a fresh copy in DIR/work, for each stage in turn: start the command, wait until
a job of that stage runs, wait a random time (a fraction of 0.05-0.5 of the stage's job duration in the
reference run; the stage's next job if that one ends first), and SIGKILL Snakemake and all its jobs at once
(their whole process group: no cleanup runs, as in a power cut); the next stage's round starts the same command
again. After the last kill the command runs to its end. The script prints, per kill, what ran when it landed and
what it left on disk (avvp temporaries, Snakemake's locks and incomplete markers) and what the next run said
about it, then the sha256 of every table's CSV and of its markdown less the git-commit line, in both runs, and
exits 1 unless they, every evaluation output and the refined labels are equal and nothing is left behind.

Default: results/table2.md with --config "dataset={preset: tiny}" seeds=[0] epochs=2 (Table 1 needs AVSDN,
whose LSTM fails under bf16 on some CPUs: a oneDNN error that has nothing to do with kills).
"""

from __future__ import annotations

import argparse
import hashlib
import os
import random
import re
import shutil
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
WORKFLOW_FILES = ["Snakefile", "workflow", "config", "profiles"]
STAGES = {"synth": "synth", "pack": "pack", "refine": "refine", "train": "train", "evaluate": "evaluate",
          "table": "table"}            # stage -> the avvp subcommand its jobs run
BENCHMARK_DIR = {"synth": "synthesize"}   # stage -> results/benchmarks/<rule> when the rule is named otherwise
TINY = ["dataset={preset: tiny}", "seeds=[0]", "epochs=2"]
RECOVERY = re.compile(r"lock\(s\) of a killed run|unreadable|resuming|starting the run over|incomplete", re.I)


def copy_workflow(dest: Path) -> Path:
    dest.mkdir(parents=True, exist_ok=True)
    for name in WORKFLOW_FILES:
        src = REPO / name
        if src.is_dir():
            shutil.copytree(src, dest / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(src, dest / name)
    return dest


def command(workdir: Path, target: str, cores: int, config: list[str]) -> list[str]:
    return [sys.executable, "-m", "snakemake", "--directory", str(workdir), "--snakefile", str(workdir / "Snakefile"),
            "--cores", str(cores), "--config", *config, "--", target]


def start(cmd: list[str], workdir: Path, log: Path) -> subprocess.Popen:
    """Snakemake in a process group of its own (its jobs join it), output to `log`."""
    return subprocess.Popen(cmd, cwd=workdir, stdout=open(log, "w"), stderr=subprocess.STDOUT, start_new_session=True)


def group_commands(pgid: int) -> list[str]:
    """The command lines of the live processes of process group `pgid` (from /proc)."""
    out = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
            fields = stat[stat.rindex(")") + 2:].split()
            if int(fields[2]) == pgid and fields[0] != "Z":
                out.append(Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode().strip())
        except (OSError, ValueError):
            continue
    return out


def running(pgid: int, stage: str) -> bool:
    return any(f"avvp {STAGES[stage]} " in c for c in group_commands(pgid))


def reference_seconds(reference: Path, stage: str) -> float:
    """The median duration of the stage's jobs in the reference run (Snakemake's benchmark files)."""
    folder = reference / "results" / "benchmarks" / BENCHMARK_DIR.get(stage, stage)
    times = [float(f.read_text().splitlines()[1].split("\t")[0]) for f in folder.rglob("*.tsv")]
    return statistics.median(times) if times else 1.0


def leftovers(workdir: Path) -> dict:
    """What a kill left on disk: avvp temporaries, Snakemake's locks and incomplete-job markers."""
    temps = [str(p.relative_to(workdir)) for folder in ("results", "data") if (workdir / folder).exists()
             for p in (workdir / folder).rglob(".*.tmp")]
    locks = list((workdir / ".snakemake" / "locks").glob("*.lock"))
    incomplete = [p for p in (workdir / ".snakemake" / "incomplete").rglob("*") if p.is_file()]
    return {"temporaries": temps, "snakemake_locks": len(locks), "incomplete_jobs": len(incomplete)}


def kill_in(stage: str, cmd, workdir: Path, reference: Path, rng: random.Random, log: Path,
            window: tuple[float, float] = (0.05, 0.5)) -> dict:
    """One round: start `cmd`, SIGKILL its group at a random moment of a `stage` job (a fraction in `window` of
    the stage's reference job duration); when that job ends first, the stage's next job is aimed at instead, if
    one starts within 2 s. What happened, and what the kill left on disk."""
    proc = start(cmd, workdir, log)
    t0 = time.monotonic()
    while not running(proc.pid, stage):
        if proc.poll() is not None:
            return {"stage": stage, "killed": False, "note": f"the run ended (exit {proc.returncode}) before a "
                                                             f"{stage} job started"}
        time.sleep(0.01)
    duration, started, last_seen, was_alive = reference_seconds(reference, stage), time.monotonic(), 0.0, False
    while proc.poll() is None:
        now, alive = time.monotonic(), running(proc.pid, stage)
        if alive and not was_alive:   # a job of the stage starts: aim at a random moment of it
            started, delay = now, rng.uniform(*window) * duration
        if alive and now >= started + delay:
            break
        if alive:
            last_seen = now
        elif now - last_seen > 2:     # it ended first and no other job of the stage follows: kill anyway
            break
        was_alive = alive
        time.sleep(0.01)
    jobs = [c for c in group_commands(proc.pid) if re.search(r"/avvp \w+ ", c)]   # the jobs, not their shells
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    return {"stage": stage, "killed": True, "after_s": round(time.monotonic() - t0, 1),
            "in_stage": stage in stages_of(jobs), "jobs_killed": [short(c) for c in jobs],
            **leftovers(workdir)}


def stages_of(commands: list[str]) -> set[str]:
    return {stage for c in commands for stage, sub in STAGES.items() if f"avvp {sub} " in c}


def short(cmd: str) -> str:
    m = re.search(r"avvp (\w+).*?(--variant \S+(?: \S+)*? --seed \d+|--split \w+|--table \w+|--out \S+)", cmd)
    return f"avvp {m.group(1)} {m.group(2)}" if m else cmd[-80:]


def finish(cmd, workdir: Path, log: Path) -> tuple[int, float]:
    t0 = time.monotonic()
    rc = start(cmd, workdir, log).wait()
    return rc, time.monotonic() - t0


def recovery_lines(log: Path, workdir: Path | None = None, since: float = 0.0) -> list[str]:
    """What a run said about the faults it found (stale locks, unreadable outputs), in Snakemake's output `log`
    and in the logs of its jobs (results/logs) written since `since` (time.time()): resumed runs."""
    logs = [log] + ([p for p in (workdir / "results" / "logs").rglob("*.log") if p.stat().st_mtime >= since]
                    if workdir is not None and (workdir / "results" / "logs").exists() else [])
    return [line.strip() for p in logs for line in p.read_text().splitlines() if RECOVERY.search(line)]


def outputs(workdir: Path) -> dict[str, str]:
    """sha256 of each table's CSV and of its markdown without the git-commit line, and of every evaluation
    output and refined labels."""
    out = {}
    results = workdir / "results"
    for csv in sorted(results.glob("table*.csv")):
        out[csv.name] = hashlib.sha256(csv.read_bytes()).hexdigest()
        md = csv.with_suffix(".md").read_text().splitlines()
        body = "\n".join(line for line in md if "git commit" not in line)
        out[f"{csv.stem}.md (body)"] = hashlib.sha256(body.encode()).hexdigest()
    for pattern in ("runs/*/seed*/*/*.json", "runs/*/seed*/*/*.npz", "refine/seed*/refined_labels.npz"):
        for f in sorted(results.glob(pattern)):
            out[str(f.relative_to(results))] = hashlib.sha256(f.read_bytes()).hexdigest()
    return out


def run(target: str, stages: list[str], seed: int, cores: int, out: Path, config: list[str], say=print,
        window: tuple[float, float] = (0.05, 0.5), reuse_reference: bool = False) -> dict:
    """The reference run, one killed round per stage, the final run; what each did, and the outputs of both.
    `reuse_reference`: keep OUT/reference from an earlier call with the same target and config."""
    say(f"target {target}, config {' '.join(config)}, kill seed {seed}, cores {cores}")
    # Both runs in the same folder, OUT/work (the reference is moved to OUT/reference when done): the manifest
    # records the data's absolute path, so runs in two folders would differ there and only there.
    reference, killed = out / "reference", out / "work"
    if reuse_reference and (reference / target).exists():
        shutil.rmtree(killed, ignore_errors=True)
        rc, seconds = 0, float("nan")
    else:
        shutil.rmtree(out, ignore_errors=True)
        copy_workflow(killed)
        rc, seconds = finish(command(killed, target, cores, config), killed, out / "reference.log")
        killed.rename(reference)
    copy_workflow(killed)
    say(f"reference (uninterrupted): exit {rc}, {seconds:.0f} s" + (" (reused)" if seconds != seconds else ""))
    report = {"reference_rc": rc, "kills": [], "killed_dir": killed}
    if rc != 0:
        return report
    cmd, rng = command(killed, target, cores, config), random.Random(seed)
    for i, stage in enumerate(stages):
        log, since = out / f"killed-{i + 1}-{stage}.log", time.time()
        kill = kill_in(stage, cmd, killed, reference, rng, log, window)
        if i:
            kill["said_on_start"] = recovery_lines(log, killed, since)
        report["kills"].append(kill)
        say(f"kill {i + 1} ({stage}): {kill}")
    since = time.time()
    rc, seconds = finish(cmd, killed, out / "killed-final.log")
    report.update(final_rc=rc, final_said=recovery_lines(out / "killed-final.log", killed, since),
                  left=leftovers(killed),
                  reference=outputs(reference), killed=outputs(killed))
    say(f"final run (the same command): exit {rc}, {seconds:.0f} s; said: {report['final_said']}")
    say(f"left on disk after it: {report['left']}")
    return report


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--target", default="results/table2.md")
    ap.add_argument("--stages", nargs="+", default=list(STAGES), choices=list(STAGES))
    ap.add_argument("--seed", type=int, default=0, help="seed of the random kill moments")
    ap.add_argument("--cores", type=int, default=2)
    ap.add_argument("--out", default="/tmp/avvp-bench-kill")
    ap.add_argument("--config", nargs="+", default=TINY)
    ap.add_argument("--reuse-reference", action="store_true", help="keep OUT/reference of an earlier call")
    args = ap.parse_args(argv)
    report = run(args.target, args.stages, args.seed, args.cores, Path(args.out), args.config,
                 reuse_reference=args.reuse_reference)
    ref, got = report.get("reference", {}), report.get("killed", {})
    for name in sorted(set(ref) | set(got)):
        if name.startswith("table"):
            print(f"  {name:18s} reference {ref.get(name, '-')[:16]}  killed {got.get(name, '-')[:16]}  "
                  f"{'equal' if ref.get(name) == got.get(name) else 'DIFFERENT'}")
    same = sum(ref.get(k) == got.get(k) for k in ref)
    print(f"  all outputs compared (tables, evaluation outputs, refined labels): {same} of {len(ref)} equal, "
          f"{len(set(got) - set(ref))} only in the killed run")
    ok = (report.get("final_rc") == 0 and ref == got and bool(ref) and all(k["killed"] for k in report["kills"])
          and not report["left"]["temporaries"] and not report["left"]["snakemake_locks"])
    print("tables equal, nothing left behind" if ok else "FAILED")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
