"""Reader and validator of the LLP dataset in its official on-disk layout (docs/protocol.md#llp-data).

Layout of a root folder (every path can be overridden)::

    AVVP_train.csv  AVVP_val_pd.csv  AVVP_test_pd.csv        weak labels: filename, event_labels
    AVVP_eval_audio.csv  AVVP_eval_visual.csv                dense events of val+test: filename, onset,
                                                             offset, event_labels (one class per row)
    feats/vggish/<id>.npy (10,128)  feats/res152/<id>.npy (80,2048)  feats/r2plus1d_18/<id>.npy (10,512)

The CSVs are tab-separated with a header; `filename` is `<11-char YouTube id>_<start>_<end>` and the
feature files are keyed by the id (its first 11 characters).

Two kinds of problems are told apart:

* quirks of the real release, which are handled and REPORTED (kind -> count and examples), never
  dropped silently: dense rows whose filename matches no video, dense rows with offset <= onset,
  val/test videos with no event in one modality, videos whose dense classes differ from their weak
  labels (and dense intervals reaching outside [0, 10], clipped);
* hard errors, which raise `AvvpError` with ONE line naming the file and the row (as its line number in
  the file, header = line 1) or the video: a missing column, an empty split, an unknown class name, a
  duplicate video id, a malformed onset/offset, a missing / unreadable feature file, a wrong shape,
  non-finite values.
"""

from __future__ import annotations

import csv
import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from avvp.constants import CLASS_INDEX, CLASSES, DENSE_CSV, FEATURES, NUM_CLASSES, NUM_SEGMENTS, SPLITS, WEAK_CSV
from avvp.errors import AvvpError
from avvp.io import sha256_file

ID_LENGTH = 11                      # YouTube ids: the key of the feature files
MAX_EXAMPLES = 5                    # examples kept per quirk kind
SYNTH_MANIFEST = "synth_manifest.json"
TRAIN_TRUTH_CSV = "AVVP_train_truth.csv"
# The 2020 AVVP_eval_audio.csv still holds this malformed filename (a stray backtick); the 2024 fix does not.
MALFORMED_2020_FILENAME = "KvIjsmANkxI_10_20`"

WEAK_COLUMNS = ("filename", "event_labels")
DENSE_COLUMNS = ("filename", "onset", "offset", "event_labels")
TRUTH_COLUMNS = ("filename", "audio_labels", "visual_labels")
EVAL_SPLITS = ("val", "test")       # the splits with dense ground truth


# --------------------------------------------------------------------------------------------- quirks
class Quirks:
    """Counts and a few examples of every handled irregularity, by kind."""

    def __init__(self):
        self.kinds: dict[str, dict] = {}

    def add(self, kind: str, example: str) -> None:
        q = self.kinds.setdefault(kind, {"count": 0, "examples": []})
        q["count"] += 1
        if len(q["examples"]) < MAX_EXAMPLES:
            q["examples"].append(example)

    def as_dict(self) -> dict:
        return {k: {"count": v["count"], "examples": list(v["examples"])} for k, v in self.kinds.items()}


# ------------------------------------------------------------------------------------------ CSV level
def read_table(path: str | os.PathLike, columns: tuple[str, ...]) -> pd.DataFrame:
    """A tab-separated annotation file as strings, with its required columns checked."""
    path = Path(path)
    try:
        df = pd.read_csv(path, sep="\t", dtype=str, keep_default_na=False, quoting=csv.QUOTE_NONE,
                         encoding="utf-8-sig")
    except FileNotFoundError:
        raise AvvpError(f"{path}: annotation file not found") from None
    except (OSError, UnicodeDecodeError, pd.errors.ParserError, pd.errors.EmptyDataError) as e:
        raise AvvpError(f"{path}: cannot read as a tab-separated file ({str(e).splitlines()[0]})") from None
    df.columns = [str(c).strip() for c in df.columns]
    for col in columns:
        if col not in df.columns:
            raise AvvpError(f"{path}: missing column '{col}' (header: {', '.join(df.columns)})")
    for col in columns:
        df[col] = df[col].str.strip()
    return df


def line_of(row: int) -> int:
    """The line number in the file of data row `row` (0-based; the header is line 1)."""
    return row + 2


def class_indices(text: str, path: Path, row: int, *, allow_empty: bool = False) -> list[int]:
    """Indices of a comma-joined list of class names; an unknown name is a hard error."""
    names = [n.strip() for n in text.split(",") if n.strip()]
    if not names and not allow_empty:
        raise AvvpError(f"{path}: line {line_of(row)}: no event label")
    out = []
    for name in names:
        if name not in CLASS_INDEX:
            raise AvvpError(f"{path}: line {line_of(row)}: unknown class name '{name}'")
        out.append(CLASS_INDEX[name])
    return out


def read_weak(path: str | os.PathLike) -> tuple[list[str], np.ndarray]:
    """Filenames (CSV order) and (N, 25) uint8 video-level labels of one weak CSV."""
    path = Path(path)
    df = read_table(path, WEAK_COLUMNS)
    if len(df) == 0:
        raise AvvpError(f"{path}: empty split (no video rows)")
    filenames = df["filename"].tolist()
    labels = np.zeros((len(df), NUM_CLASSES), dtype=np.uint8)
    seen: dict[str, int] = {}
    for row, (name, text) in enumerate(zip(filenames, df["event_labels"])):
        if len(name) < ID_LENGTH:
            raise AvvpError(f"{path}: line {line_of(row)}: filename '{name}' is shorter than an 11-char id")
        vid = video_id(name)
        if vid in seen:
            raise AvvpError(f"{path}: line {line_of(row)}: duplicate video id '{vid}' "
                            f"(first on line {line_of(seen[vid])})")
        seen[vid] = row
        labels[row, class_indices(text, path, row)] = 1
    return filenames, labels


def video_id(filename: str) -> str:
    return filename[:ID_LENGTH]


def read_dense(path: str | os.PathLike) -> pd.DataFrame:
    """The dense event rows with integer onset/offset and class index; malformed values are errors."""
    path = Path(path)
    df = read_table(path, DENSE_COLUMNS)
    bounds = {}
    for col in ("onset", "offset"):
        values = pd.to_numeric(df[col], errors="coerce").to_numpy(dtype=float)
        bad = np.flatnonzero(~np.isfinite(values) | (values != np.round(values)))
        if len(bad):
            row = int(bad[0])
            raise AvvpError(f"{path}: line {line_of(row)}: {col} '{df[col].iat[row]}' is not an integer")
        bounds[col] = values.astype(np.int64)
    cls = np.empty(len(df), dtype=np.int64)
    for row, text in enumerate(df["event_labels"]):
        idx = class_indices(text, path, row)
        if len(idx) != 1:
            raise AvvpError(f"{path}: line {line_of(row)}: a dense row holds exactly one class, got '{text}'")
        cls[row] = idx[0]
    return pd.DataFrame({"filename": df["filename"], "onset": bounds["onset"],
                         "offset": bounds["offset"], "cls": cls})


def dense_ground_truth(path: str | os.PathLike, modality: str, videos: dict[str, dict[str, int]],
                       known_elsewhere: set[str], quirks: Quirks) -> dict[str, np.ndarray]:
    """(N, 25, 10) uint8 ground truth per split, ones on [onset, offset) of each row.

    `videos` maps split -> {filename: row}; rows of `known_elsewhere` filenames (another split's video,
    not asked for) are skipped quietly, rows matching no video at all are reported.
    """
    path = Path(path)
    df = read_dense(path)
    gt = {s: np.zeros((len(v), NUM_CLASSES, NUM_SEGMENTS), dtype=np.uint8) for s, v in videos.items()}
    where = {name: (s, i) for s, v in videos.items() for name, i in v.items()}
    for row, (name, on, off, c) in enumerate(df.itertuples(index=False, name=None)):
        here = f"{path.name} line {line_of(row)}: {name}"
        if name not in where:
            if name not in known_elsewhere:
                quirks.add(f"{modality}_rows_unknown_video", f"{here} (matches no video)")
            continue
        if off <= on:
            quirks.add(f"{modality}_rows_empty_interval", f"{here} onset {on} offset {off}")
            continue
        if on < 0 or off > NUM_SEGMENTS:
            quirks.add(f"{modality}_rows_clipped_to_0_10", f"{here} onset {on} offset {off}")
            on, off = max(on, 0), min(off, NUM_SEGMENTS)
            if off <= on:
                continue
        split, i = where[name]
        gt[split][i, c, on:off] = 1
    return gt


def annotation_version(eval_audio_csv: str | os.PathLike, root: str | os.PathLike | None) -> str:
    """'synthetic' (a synth manifest in the root), '2020' (the malformed row is there) or '2024'."""
    if root is not None and (Path(root) / SYNTH_MANIFEST).exists():
        return "synthetic"
    with open(eval_audio_csv, "rb") as f:
        text = f.read().decode("utf-8", errors="replace")
    return "2020" if MALFORMED_2020_FILENAME in text else "2024"


# ---------------------------------------------------------------------------------------- split level
@dataclass
class SplitAnnotations:
    """One split's annotations: weak labels and, for val/test, dense ground truth."""

    split: str
    filenames: list[str]
    labels: np.ndarray                       # (N, 25) uint8
    gt_audio: np.ndarray | None = None       # (N, 25, 10) uint8, val/test only
    gt_visual: np.ndarray | None = None
    quirks: dict = field(default_factory=dict)


def report_video_quirks(split: str, ann: SplitAnnotations, quirks: Quirks) -> None:
    """Videos with no event in one modality, and videos whose dense classes differ from the weak ones."""
    has_a = ann.gt_audio.any(axis=2)
    has_v = ann.gt_visual.any(axis=2)
    for i, name in enumerate(ann.filenames):
        if not has_a[i].any():
            quirks.add("videos_without_audio_event", f"{split}: {name}")
        if not has_v[i].any():
            quirks.add("videos_without_visual_event", f"{split}: {name}")
        dense = has_a[i] | has_v[i]
        weak = ann.labels[i].astype(bool)
        if (dense != weak).any():
            only_dense = [CLASSES[c] for c in np.flatnonzero(dense & ~weak)]
            only_weak = [CLASSES[c] for c in np.flatnonzero(weak & ~dense)]
            quirks.add("dense_classes_differ_from_weak",
                       f"{split}: {name} dense only {only_dense}, weak only {only_weak}")


def read_eval_splits(weak_csvs: dict[str, Path], eval_audio_csv: Path, eval_visual_csv: Path,
                     quirks: Quirks, known_elsewhere: set[str] = frozenset()) -> dict[str, SplitAnnotations]:
    """Weak labels and dense ground truth of the val/test splits named in `weak_csvs`, together."""
    out = {s: SplitAnnotations(s, *read_weak(p)) for s, p in weak_csvs.items()}
    videos = {s: {name: i for i, name in enumerate(a.filenames)} for s, a in out.items()}
    gt_a = dense_ground_truth(eval_audio_csv, "audio", videos, known_elsewhere, quirks)
    gt_v = dense_ground_truth(eval_visual_csv, "visual", videos, known_elsewhere, quirks)
    for s, a in out.items():
        a.gt_audio, a.gt_visual = gt_a[s], gt_v[s]
        report_video_quirks(s, a, quirks)
    return out


def read_split_annotations(annotations_dir, split, *, weak_csv=None, eval_audio_csv=None,
                           eval_visual_csv=None) -> SplitAnnotations:
    """One split's weak labels (and dense ground truth for val/test) from the official CSVs.

    Dense rows of the other evaluation split are recognised through its weak CSV in `annotations_dir`
    (when present) so that they are not reported as rows matching no video.
    """
    root = Path(annotations_dir)
    if split not in SPLITS:
        raise AvvpError(f"{root}: unknown split '{split}' (expected one of {', '.join(SPLITS)})")
    weak = Path(weak_csv) if weak_csv else root / WEAK_CSV[split]
    quirks = Quirks()
    if split == "train":
        ann = SplitAnnotations(split, *read_weak(weak))
        ann.quirks = quirks.as_dict()
        return ann
    other = "test" if split == "val" else "val"
    other_csv = root / WEAK_CSV[other]
    known = set(read_table(other_csv, WEAK_COLUMNS)["filename"]) if other_csv.exists() else set()
    ann = read_eval_splits({split: weak}, Path(eval_audio_csv or root / DENSE_CSV["audio"]),
                           Path(eval_visual_csv or root / DENSE_CSV["visual"]), quirks, known)[split]
    ann.quirks = quirks.as_dict()
    return ann


# -------------------------------------------------------------------------------------- dataset level
@dataclass
class LLPPaths:
    """Every input path of one LLP folder, defaults from the official layout, each overridable."""

    root: Path
    weak: dict[str, Path]
    eval_audio: Path
    eval_visual: Path
    features: dict[str, Path]                # "audio" | "visual" | "motion" -> folder

    @classmethod
    def from_root(cls, root, *, train_csv=None, val_csv=None, test_csv=None, eval_audio_csv=None,
                  eval_visual_csv=None, audio_dir=None, visual_dir=None, motion_dir=None) -> "LLPPaths":
        root = Path(root)
        given = {"train": train_csv, "val": val_csv, "test": test_csv}
        dirs = {"audio": audio_dir, "visual": visual_dir, "motion": motion_dir}
        return cls(
            root=root,
            weak={s: Path(given[s]) if given[s] else root / WEAK_CSV[s] for s in SPLITS},
            eval_audio=Path(eval_audio_csv) if eval_audio_csv else root / DENSE_CSV["audio"],
            eval_visual=Path(eval_visual_csv) if eval_visual_csv else root / DENSE_CSV["visual"],
            features={k: Path(dirs[k]) if dirs[k] else root / "feats" / FEATURES[k][0] for k in FEATURES},
        )

    def annotation_files(self) -> dict[str, Path]:
        files = {p.name: p for p in (*self.weak.values(), self.eval_audio, self.eval_visual)}
        truth = self.root / TRAIN_TRUTH_CSV
        if truth.exists():
            files[truth.name] = truth
        return files


@dataclass
class LLPAnnotations:
    """All splits of one LLP folder, validated, with what was found on the way."""

    splits: dict[str, SplitAnnotations]
    quirks: dict
    version: str
    hashes: dict[str, str]
    synthetic: dict | None
    train_truth: tuple[np.ndarray, np.ndarray] | None      # (N, 25) true audio, true visual labels


def read_annotations(paths: LLPPaths) -> LLPAnnotations:
    """Read and validate every annotation file of a folder (features are checked by `load_feature`)."""
    for p in paths.annotation_files().values():
        if not p.exists():
            raise AvvpError(f"{p}: annotation file not found")
    quirks = Quirks()
    splits = {"train": SplitAnnotations("train", *read_weak(paths.weak["train"]))}
    splits.update(read_eval_splits({s: paths.weak[s] for s in EVAL_SPLITS}, paths.eval_audio,
                                   paths.eval_visual, quirks))
    check_disjoint(splits, paths)
    for a in splits.values():
        a.quirks = {}                       # read together: the quirks are the dataset's, below
    truth_csv = paths.root / TRAIN_TRUTH_CSV
    truth = read_train_truth(truth_csv, splits["train"]) if truth_csv.exists() else None
    manifest = paths.root / SYNTH_MANIFEST
    synthetic = None
    if manifest.exists():
        try:
            synthetic = json.loads(manifest.read_text())
        except (OSError, ValueError) as e:
            raise AvvpError(f"{manifest}: cannot read synth manifest ({e})") from None
    return LLPAnnotations(
        splits=splits, quirks=quirks.as_dict(),
        version=annotation_version(paths.eval_audio, paths.root),
        hashes={name: sha256_file(p) for name, p in sorted(paths.annotation_files().items())},
        synthetic=synthetic, train_truth=truth)


def check_disjoint(splits: dict[str, SplitAnnotations], paths: LLPPaths) -> None:
    """A video id in two splits is a duplicate (its features would be shared: a leak)."""
    owner: dict[str, str] = {}
    for s, a in splits.items():
        for row, name in enumerate(a.filenames):
            vid = video_id(name)
            if vid in owner:
                raise AvvpError(f"{paths.weak[s]}: line {line_of(row)}: duplicate video id '{vid}' "
                                f"(also in split {owner[vid]})")
            owner[vid] = s


def read_train_truth(path: Path, train: SplitAnnotations) -> tuple[np.ndarray, np.ndarray]:
    """The true modality of each training label (synthetic data): (N, 25) audio and visual."""
    df = read_table(path, TRUTH_COLUMNS)
    rows = {name: i for i, name in enumerate(df["filename"])}
    n = len(train.filenames)
    audio = np.zeros((n, NUM_CLASSES), dtype=np.uint8)
    visual = np.zeros((n, NUM_CLASSES), dtype=np.uint8)
    for i, name in enumerate(train.filenames):
        if name not in rows:
            raise AvvpError(f"{path}: no row for training video '{name}'")
        row = rows[name]
        audio[i, class_indices(df["audio_labels"].iat[row], path, row, allow_empty=True)] = 1
        visual[i, class_indices(df["visual_labels"].iat[row], path, row, allow_empty=True)] = 1
        if ((audio[i] | visual[i]) & ~train.labels[i]).any():
            raise AvvpError(f"{path}: line {line_of(row)}: true labels of '{name}' are not among its weak labels")
    if len(df) != n:
        raise AvvpError(f"{path}: {len(df)} rows for {n} training videos")
    return audio, visual


# -------------------------------------------------------------------------------------- feature level
def load_feature(folder: Path, filename: str, kind: str) -> np.ndarray:
    """One video's feature array as float32, checked: present, readable, right shape, finite."""
    shape = FEATURES[kind][1]
    path = Path(folder) / f"{video_id(filename)}.npy"
    try:
        x = np.load(path, allow_pickle=False)
    except FileNotFoundError:
        raise AvvpError(f"{path}: missing {kind} feature file of video '{filename}'") from None
    except (OSError, ValueError, EOFError) as e:
        raise AvvpError(f"{path}: unreadable .npy of video '{filename}' ({str(e).splitlines()[0]})") from None
    if not isinstance(x, np.ndarray) or x.shape != shape:
        got = getattr(x, "shape", type(x).__name__)
        raise AvvpError(f"{path}: video '{filename}': {kind} shape {got}, expected {shape}")
    if not np.issubdtype(x.dtype, np.number) or np.issubdtype(x.dtype, np.complexfloating):
        raise AvvpError(f"{path}: video '{filename}': non-numeric dtype {x.dtype}")
    x = x.astype(np.float32, copy=False)
    if not np.isfinite(x).all():
        bad = np.argwhere(~np.isfinite(x))[0].tolist()
        raise AvvpError(f"{path}: video '{filename}': non-finite value at index {bad}")
    return x
