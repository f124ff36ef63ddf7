"""`avvp diagnose`: what the ten LLP numbers hide, per class and per modality, for every row of a table.

From each evaluated run's test predictions (`<results>/runs/<slug>/seed<S>/test/predictions.npz`), mean over
seeds, it writes to --out:

- per_class_f.csv / per_class_diff.png: per-class F (definition below) at segment and event level for audio,
  visual and audio-visual; the figure shows each row's difference from its base row (tables.yaml `base`).
- leak.csv / leak.png: the modality leak. For modality m, among the test (video, class) pairs where the class
  is a weak video label but absent from m's annotation, the share the row predicts in m for at least one
  second; and the mirror, present in m but never predicted in m ("miss"). The weak labels are the packed test
  split's (`<packed>/test/labels.npy`, --data or the runs' run.json `data`); only without packed data, every
  class present in gt_audio or gt_visual (on real LLP 81 test videos differ). Column `weak_labels` says which.
- cooccurrence.csv / cooccurrence_matrices.csv / cooccurrence.png: per second, every predicted audio class
  paired with every predicted visual class, counted into a 25 x 25 matrix, normalised to sum 1, against the
  ground truth's; the summary number is the total variation distance 0.5 * sum |P - Q| (0 = the truth's
  co-occurrences, 1 = disjoint; 1 also when the row predicts no audio-visual pair at all).
- refinement.csv / refinement.png: the label quality of the rows' label stages (each a per-seed stage that
  declares a file of it, avvp/stages.py SeedFile.quality: MA's refinement): precision and recall of its removals
  against the synthetic truth (training videos) and against the dense annotations of val and test
  (avvp/evaluation/label_quality.py), column `stage` naming the stage.

Per-class F of class c: the LLP per-video F_c = 2TP / (2TP + FP + FN) (metrics.segment_counts/event_counts),
averaged over the videos where c is active (predicted or present) in that modality. For data with a single
class whose every video is active, it is the metrics module's number.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pandas as pd

from avvp import outputs, paths, sheets, variants
from avvp.constants import CLASSES, NUM_CLASSES
from avvp.errors import AvvpError
from avvp.evaluation.metrics import class_f, event_counts, segment_counts
from avvp.io import read_json, write_text
from avvp.registry import STAGES
from avvp.reporting.diagnose_plots import cooccurrence_figure, diff_figure, leak_figure, refinement_figure
from avvp.stages import DIAGNOSTICS, quality_file, quality_stages

MODALITIES = ("audio", "visual", "audio_visual")
LEVEL_COUNTS = {"segment": segment_counts, "event": event_counts}
REFINEMENT_COLUMNS = ["stage", "seed", "scored_on", "modality", "class", "removals", "correct_removals", "should_remove",
                      "precision", "recall"]


# --------------------------------------------------------------------------------------------- measures

def per_class_f(pred_a, pred_v, gt_a, gt_v) -> dict:
    """{(level, modality): ((25,) mean F over active videos, NaN if none), (25,) active video count}}."""
    pred_a, pred_v, gt_a, gt_v = (np.asarray(x, dtype=bool) for x in (pred_a, pred_v, gt_a, gt_v))
    pairs = {"audio": (pred_a, gt_a), "visual": (pred_v, gt_v), "audio_visual": (pred_a & pred_v, gt_a & gt_v)}
    out = {}
    for level, counts in LEVEL_COUNTS.items():
        for m, (pred, gt) in pairs.items():
            f, active = class_f(*counts(pred, gt))
            n_active = active.sum(0)
            mean = np.divide(f.sum(0), n_active, out=np.full(NUM_CLASSES, np.nan), where=n_active > 0)
            out[(level, m)] = (mean, n_active)
    return out


def leak_counts(pred_a, pred_v, gt_a, gt_v, labels=None) -> dict:
    """{(modality, kind): (hits (25,), pairs (25,))}, kind 'leak' or 'miss' (see the module text).

    labels (N, 25): the weak video labels; by default every class present in either annotation.
    """
    gt_a, gt_v = np.asarray(gt_a, dtype=bool).any(-1), np.asarray(gt_v, dtype=bool).any(-1)
    weak = (gt_a | gt_v) if labels is None else np.asarray(labels) > 0
    out = {}
    for m, pred, gt in (("audio", pred_a, gt_a), ("visual", pred_v, gt_v)):
        predicted = np.asarray(pred, dtype=bool).any(-1)
        absent, present = weak & ~gt, gt
        out[(m, "leak")] = ((absent & predicted).sum(0), absent.sum(0))
        out[(m, "miss")] = ((present & ~predicted).sum(0), present.sum(0))
    return out


def cooccurrence(audio, visual) -> np.ndarray:
    """(25, 25) counts: entry [ca, cv] = seconds where audio class ca and visual class cv are both on."""
    return np.einsum("nat,nvt->av", np.asarray(audio, dtype=np.int64), np.asarray(visual, dtype=np.int64))


def normalised(m: np.ndarray) -> np.ndarray:
    total = m.sum()
    return m / total if total else np.zeros(m.shape)


def tv_distance(pred: np.ndarray, truth: np.ndarray) -> float:
    """Total variation between the normalised matrices; 1.0 when the prediction has no pair at all."""
    if pred.sum() == 0:
        return 1.0
    return 0.5 * float(np.abs(normalised(pred) - normalised(truth)).sum())


# --------------------------------------------------------------------------------------------- one row

def diagnostic(name: str, out: str | Path) -> Path:
    """One of `avvp diagnose`'s files in its --out folder, by its DIAGNOSTICS name (avvp/stages.py)."""
    return Path(out) / DIAGNOSTICS[name]


def test_predictions(results: Path, row: variants.Variant, seed: int) -> dict:
    """The arrays of one evaluated run's test predictions (the row's runs), as bool (N, 25, 10)."""
    run = variants.run_dir(row, seed, results)
    path = paths.predictions_npz(run, "test")
    arrays = outputs.predictions(run, outputs.BINARY)
    out = {k: a if k == "filenames" else a.astype(bool) for k, a in arrays.items()}
    shape = out["gt_audio"].shape
    if len(shape) != 3 or shape[1] != NUM_CLASSES or any(out[k].shape != shape for k in outputs.BINARY[1:]):
        raise AvvpError(f"{path}: audio, visual, gt_audio, gt_visual must share one (N, 25, T) shape")
    out["path"] = path
    return out


def _check_same_videos(run: dict, ref: dict) -> None:
    """Every run must be scored on the same test videos and annotations, or rows cannot be compared."""
    same = (np.array_equal(run["filenames"], ref["filenames"]) and np.array_equal(run["gt_audio"], ref["gt_audio"])
            and np.array_equal(run["gt_visual"], ref["gt_visual"]))
    if not same:
        raise AvvpError(f"{run['path']}: other test videos or annotations than {ref['path']}")


def weak_labels(packed: Path, filenames: np.ndarray) -> np.ndarray:
    """(N, 25) bool weak labels of the packed test split, in the order of the predictions' filenames."""
    folder = Path(packed) / "test"
    try:
        names = np.load(folder / "filenames.npy", allow_pickle=False)
        labels = np.load(folder / "labels.npy", allow_pickle=False) > 0
    except (OSError, ValueError) as e:
        raise AvvpError(f"{folder}: no readable filenames.npy/labels.npy of a packed test split ({e})") from None
    index = {str(f): i for i, f in enumerate(names)}
    missing = [str(f) for f in filenames if str(f) not in index]
    if missing:
        raise AvvpError(f"{folder / 'filenames.npy'}: test video {missing[0]} of the predictions is not in it "
                        f"({len(missing)} missing): other packed data than the runs'")
    return labels[[index[str(f)] for f in filenames]]


def packed_of_runs(results: Path, row: variants.Variant, seed: int) -> Path | None:
    """The packed folder the run trained on (run.json `data`), if it still exists."""
    try:
        data = outputs.run_info(variants.run_dir(row, seed, results)).get("data")
    except AvvpError:
        return None
    return Path(data) if data and Path(data, "test", "labels.npy").is_file() else None


def diagnose_row(results: Path, row_: variants.Variant, seeds: list[int], ref: dict | None,
                 weak: np.ndarray | None = None) -> tuple[dict, dict]:
    """Every measure of one row, each seed's (F, leak counts, co-occurrence) kept for the seed mean.

    weak: the (N, 25) weak test labels for the leak (None: the union of the annotations)."""
    f, leaks, cooc, tv, truth = [], [], [], [], None
    for seed in seeds:
        run = test_predictions(results, row_, seed)
        ref = ref or run
        _check_same_videos(run, ref)
        args = (run["audio"], run["visual"], run["gt_audio"], run["gt_visual"])
        f.append(per_class_f(*args))
        leaks.append(leak_counts(*args, labels=weak))
        if truth is None:  # the same annotations in every run (checked above): count them once
            truth = cooccurrence(run["gt_audio"], run["gt_visual"])
        counts = cooccurrence(run["audio"], run["visual"])
        cooc.append(normalised(counts))
        tv.append(tv_distance(counts, truth))
    with warnings.catch_warnings():  # a class inactive in every seed stays NaN, without a warning
        warnings.simplefilter("ignore", RuntimeWarning)
        mean_f = {k: np.nanmean(np.stack([s[k][0] for s in f]), axis=0) for k in f[0]}
    row = {"f": mean_f, "active": {k: f[0][k][1] for k in f[0]},
           # The denominators depend on the labels only, equal across seeds: hits averaged over seeds / pairs
           # is the mean of the seeds' shares, and `pairs` stays a count of test (video, class) pairs.
           "leak": {k: (sum(s[k][0] for s in leaks) / len(leaks), leaks[0][k][1]) for k in leaks[0]},
           "cooc": np.mean(cooc, axis=0), "tv": np.array(tv)}
    return row, ref


# --------------------------------------------------------------------------------------------- refinement

def _refinement_rows(stage: str, seed: int, scored_on: str, scores: dict) -> list[dict]:
    rows = []
    for m in ("audio", "visual"):
        s = scores.get(m)  # absent when the split was skipped (the summary says why)
        if s is None:
            continue
        rows.append({"stage": stage, "seed": seed, "scored_on": scored_on, "modality": m, "class": "all",
                     **{k: s[k] for k in REFINEMENT_COLUMNS[5:]}})
        for c, pc in s.get("per_class", {}).items():
            rows.append({"stage": stage, "seed": seed, "scored_on": scored_on, "modality": m, "class": c,
                         **{k: pc[k] for k in REFINEMENT_COLUMNS[5:]}})
    return rows


def gather_refinement(results: Path, seeds: list[int], stages: list[str]) -> pd.DataFrame:
    """One row per (stage, seed, scored_on, modality, class|'all') from each stage's quality file of each seed.

    scored_on: 'synthetic_train' (against_truth, synthetic data only), 'val', 'test' (against_annotations,
    avvp/evaluation/label_quality.py's scores written by the stage).
    """
    rows = []
    for stage in stages:
        for seed in seeds:
            path = quality_file(stage, seed, results)
            info = read_json(path, "label quality", f"make it with: avvp {STAGES.get(stage).command} (snakemake "
                                                    f"makes it for the rows on its labels)")
            if "against_truth" in info:
                rows += _refinement_rows(stage, seed, "synthetic_train", info["against_truth"])
            for split, scores in info.get("against_annotations", {}).items():
                rows += _refinement_rows(stage, seed, split, scores)
    return pd.DataFrame(rows, columns=REFINEMENT_COLUMNS)


# --------------------------------------------------------------------------------------------- tables

def per_class_frame(rows: dict) -> pd.DataFrame:
    """Long table: variant, level, modality, class, f (%, mean over seeds), active_videos (first seed)."""
    records = [{"variant": name, "level": level, "modality": m, "class": c, "f": 100 * float(f),
                "active_videos": int(n)}
               for name, row in rows.items() for (level, m), mean in row["f"].items()
               for c, f, n in zip(CLASSES, mean, row["active"][(level, m)])]
    return pd.DataFrame(records)


def leak_frame(rows: dict) -> pd.DataFrame:
    """Long table: variant, modality, kind (leak|miss), class ('all' = every class pooled), share, pairs."""
    records = []
    for name, row in rows.items():
        for (m, kind), (hits, pairs) in row["leak"].items():
            for c, h, p in [("all", hits.sum(), pairs.sum())] + list(zip(CLASSES, hits, pairs)):
                records.append({"variant": name, "modality": m, "kind": kind, "class": c,
                                "share": float(h / p) if p else np.nan, "pairs": int(p)})
    return pd.DataFrame(records)


def cooccurrence_frames(rows: dict, truth: np.ndarray) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(summary: variant, tv_distance mean/std over seeds; matrices: variant, audio_class, visual_class, share).

    The matrices table holds the ground truth as variant 'ground truth' and only non-zero entries.
    """
    summary = pd.DataFrame([{"variant": name, "tv_distance": float(r["tv"].mean()),
                             "tv_distance_std": float(r["tv"].std()), "seeds": len(r["tv"])}
                            for name, r in rows.items()])
    records = []
    for name, matrix in [("ground truth", truth)] + [(n, r["cooc"]) for n, r in rows.items()]:
        for a, v in zip(*np.nonzero(matrix)):
            records.append({"variant": name, "audio_class": CLASSES[a], "visual_class": CLASSES[v],
                            "share": float(matrix[a, v])})
    return summary, pd.DataFrame(records, columns=["variant", "audio_class", "visual_class", "share"])


def write_csv(path: Path, frame: pd.DataFrame) -> None:
    write_text(path, frame.to_csv(index=False, float_format="%.6g"))


# --------------------------------------------------------------------------------------------- command

def diagnose(results: Path, table_rows: list[dict], resolved: dict, seeds: list[int], out: Path,
             label_quality: bool = True, packed: Path | None = None) -> dict:
    """Every CSV and PNG of --out; returns the co-occurrence distances and overall leaks (printed).

    resolved: the table's rows by name (variants.resolve); packed: the packed dataset whose test weak labels
    define the leak; None: the first run's run.json `data`, else the union of the annotations."""
    head = resolved[table_rows[0]["variant"]]
    first = test_predictions(results, head, seeds[0])
    packed = packed or packed_of_runs(results, head, seeds[0])
    weak = None if packed is None else weak_labels(packed, first["filenames"])
    rows, ref = {}, first
    for r in table_rows:
        rows[r["variant"]], ref = diagnose_row(results, resolved[r["variant"]], seeds, ref, weak)
    stages = quality_stages(list(resolved.values())) if label_quality else []
    refinement = gather_refinement(results, seeds, stages) if label_quality else None
    truth = normalised(cooccurrence(ref["gt_audio"], ref["gt_visual"]))
    per_class = per_class_frame(rows)
    leaks = leak_frame(rows)
    leaks["weak_labels"] = "gt_audio|gt_visual" if packed is None else str(Path(packed) / "test" / "labels.npy")
    summary, matrices = cooccurrence_frames(rows, truth)
    for name, frame in (("per_class_f", per_class), ("leak", leaks), ("cooccurrence", summary),
                        ("cooccurrence_matrices", matrices)):
        write_csv(diagnostic(name, out), frame)
    labels = {r["variant"]: r.get("label", r["variant"]) for r in table_rows}
    bases = {r["variant"]: r.get("base") for r in table_rows if r.get("base") in rows}
    diff_figure(per_class, bases, labels, diagnostic("per_class_diff", out))
    leak_figure(leaks, labels, diagnostic("leak_figure", out))
    cooccurrence_figure(truth, {labels[n]: r["cooc"] for n, r in rows.items()},
                        {labels[n]: float(r["tv"].mean()) for n, r in rows.items()},
                        diagnostic("cooccurrence_figure", out))
    if refinement is not None:
        write_csv(diagnostic("label_quality", out), refinement)
        refinement_figure(refinement, diagnostic("label_quality_figure", out))
    overall = leaks[leaks["class"] == "all"]
    return {"weak_labels": leaks["weak_labels"].iloc[0],
            "tv_distance": dict(zip(summary["variant"], summary["tv_distance"].round(4))),
            "leak": {f"{v} {m} {k}": round(s, 4) for v, m, k, s in
                     overall[["variant", "modality", "kind", "share"]].itertuples(index=False)}}


def main(args) -> None:
    spec = sheets.table(args.table, args.tables, args.variants_file)
    rows = spec["rows"]
    if args.methods:
        unknown = sorted(set(args.methods) - {r["variant"] for r in rows})
        if unknown:
            raise AvvpError(f"--methods: {', '.join(unknown)} not a row of {args.table} in {args.tables}")
        rows = [r for r in rows if r["variant"] in args.methods]
    results = Path(args.results)
    resolved = variants.resolve([r["variant"] for r in rows], args.variants_file)
    found = diagnose(results, rows, resolved, args.seeds, Path(args.out), not args.no_label_quality,
                     Path(args.data) if args.data else None)
    print(f"leak: weak labels from {found['weak_labels']}")
    for name, tv in found["tv_distance"].items():
        print(f"{name}: co-occurrence TV distance {tv}")
