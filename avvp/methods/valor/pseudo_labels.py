"""VALOR's segment-level pseudo-labels (docs/methods/valor.md#valor-pseudo-labels): read as released, or made for
the synthetic data by a simulated teacher; `avvp valor-labels` writes a seed's file of them for training.

Released layout (VALOR's; Hugging Face NTUBarista/valor_features `CLIP.zip`, `CLAP.zip`), one file per video of
every split, `<id>` the filename's first 11 characters:
    DIR/CLIP/segment_pseudo_labels/<id>.npy    visual, integer (10, 25) = (second, class), values 0 or 1
    DIR/CLAP/segment_pseudo_labels/<id>.npy    audio, the same
A pseudo-label is 1 where the teacher (CLIP on the second's frame, CLAP on its audio) puts a class of the video's
weak labels above its threshold: a subset of the weak labels, per second and modality.

On the synthetic data there is no CLIP or CLAP: the teacher is simulated from the truth. The generator's draws of
every split (its per-second truth, training videos included) are drawn again from the packed manifest's preset,
seed and parameters (checked against the packed labels and annotations), restricted to the weak labels, and the
row's teacher (the label source's settings) misses each true second with probability `miss` and adds each false
one of a weak-label class with probability `add`, per modality, independently, from its own `seed`.

The file `avvp valor-labels` writes (pseudo_labels.npz): filenames (the training split's, in order), audio and
visual (N, 10, 25) uint8, and `kind`: "truth" (synthetic: the truth the row's teacher acts on) or "released" (the
teacher's own labels, which no simulated teacher changes).
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import torch

from avvp.constants import NUM_CLASSES, NUM_SEGMENTS, SPLITS
from avvp.data import dataset
from avvp.errors import AvvpError
from avvp.io import read_npz, write_json, write_npz

FOLDERS = {"visual": Path("CLIP") / "segment_pseudo_labels", "audio": Path("CLAP") / "segment_pseudo_labels"}


# ------------------------------------------------------------------------------------------- released files

def read_released(root: str | Path, filenames: list[str]) -> dict[str, np.ndarray]:
    """{"audio", "visual"}: (N, 10, 25) uint8 of these videos from a folder in VALOR's layout; any defect (a missing
    folder or file, a file that is not an integer (10, 25) array of 0 and 1) is one AvvpError line naming it."""
    root = Path(root)
    out = {}
    for modality, folder in FOLDERS.items():
        if not (root / folder).is_dir():
            raise AvvpError(f"{root / folder}: no such folder (VALOR's layout: CLIP/ and CLAP/, each holding "
                            "segment_pseudo_labels/<id>.npy)")
        arrays = []
        missing = [f for f in filenames if not (root / folder / f"{f[:11]}.npy").is_file()]
        if missing:
            raise AvvpError(f"{root / folder / (missing[0][:11] + '.npy')}: missing ({len(missing)} of "
                            f"{len(filenames)} videos have no {modality} pseudo-labels)")
        for f in filenames:
            arrays.append(_one(root / folder / f"{f[:11]}.npy"))
        out[modality] = np.stack(arrays) if arrays else np.zeros((0, NUM_SEGMENTS, NUM_CLASSES), np.uint8)
    return out


def _one(path: Path) -> np.ndarray:
    try:
        a = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as e:
        raise AvvpError(f"{path}: unreadable pseudo-labels ({str(e).splitlines()[0]})") from None
    if not np.issubdtype(a.dtype, np.integer) and a.dtype != bool:
        raise AvvpError(f"{path}: pseudo-labels of dtype {a.dtype}, expected integers (VALOR's are int64)")
    if a.shape != (NUM_SEGMENTS, NUM_CLASSES):
        raise AvvpError(f"{path}: pseudo-labels of shape {a.shape}, expected ({NUM_SEGMENTS}, {NUM_CLASSES})")
    if not np.isin(a, (0, 1)).all():
        others = sorted(set(np.unique(a).tolist()) - {0, 1})[:3]
        raise AvvpError(f"{path}: pseudo-labels hold values other than 0 and 1 ({others})")
    return a.astype(np.uint8)


# ------------------------------------------------------------------------------------------ simulated teacher

def synthetic_truth(packed: str | Path) -> dict[str, dict]:
    """Per split {"filenames", "audio", "visual"} (N, 10, 25) uint8: the generator's per-second truth, drawn again
    from the packed manifest's preset, seed and parameters, checked against the packed weak labels (and the dense
    annotations of val and test): one line when the data is not the generator's."""
    from avvp.data import synth

    manifest = dataset.manifest(packed)
    entry = manifest.get("synthetic")
    if not isinstance(entry, dict):
        raise AvvpError(f"{packed}: not synthetic data: a simulated teacher needs the generator's truth (real LLP: "
                        "pass VALOR's released pseudo-labels, --from DIR)")
    sizes, params = entry["sizes"], dict(synth.PARAMS, **entry.get("params", {}))
    s_names, s_labels, _, _ = np.random.SeedSequence(entry["seed"]).spawn(4)
    names = synth.video_filenames(np.random.default_rng(s_names), sum(sizes.values()))
    rng = np.random.default_rng(s_labels)
    out, start = {}, 0
    for split in SPLITS:
        draw = synth.draw_split(rng, names[start:start + sizes[split]], params)
        start += sizes[split]
        packed_split = dataset.load_split(packed, split)
        same = list(draw.filenames) == packed_split.filenames and np.array_equal(
            draw.labels > 0, packed_split.labels.numpy() > 0)
        if packed_split.gt_audio is not None:
            same = same and np.array_equal(draw.audio > 0, np.asarray(packed_split.gt_audio) > 0) \
                and np.array_equal(draw.visual > 0, np.asarray(packed_split.gt_visual) > 0)
        if not same:
            raise AvvpError(f"{packed}: the {split} split is not what generator version "
                            f"{entry.get('generator_version')} draws from its manifest's seed: no teacher to simulate")
        out[split] = {"filenames": list(draw.filenames),
                      "audio": (draw.audio.transpose(0, 2, 1) > 0).astype(np.uint8),
                      "visual": (draw.visual.transpose(0, 2, 1) > 0).astype(np.uint8),
                      "weak": (draw.labels > 0)}
    return out


def teacher(truth: np.ndarray, weak: np.ndarray, miss: float, add: float, rng: np.random.Generator) -> np.ndarray:
    """A simulated teacher's (N, 10, 25) labels of one modality: within the weak-label classes of each video, a true
    second kept with probability 1 - miss and a false one added with probability `add`; outside them 0."""
    u = rng.random(truth.shape)
    on = np.where(truth > 0, u >= miss, u < add)
    return (on & weak[:, None, :]).astype(np.uint8)


def simulated(labels: dict, settings: dict) -> dict[str, np.ndarray]:
    """The teacher of `settings` ({miss, add, seed}) on a file's truth (audio, visual (N, 10, 25); weak (N, 25))."""
    rng = np.random.default_rng(settings["seed"])
    return {m: teacher(labels[m], labels["weak"], settings["miss"], settings["add"], rng) for m in ("audio", "visual")}


# ------------------------------------------------------------------------------------------- label source

def load(train: dataset.Split, files: dict, settings: dict):
    """The label source `valor`: per-second audio and visual labels (N, 10, 25) of the training split, from its
    file: the released teacher's as they are, or the synthetic truth through the row's simulated teacher."""
    path = Path(files["pseudo_labels"])
    z = read_npz(path, ("filenames", "audio", "visual", "kind"), "pseudo-labels",
                 "make it with: avvp valor-labels")
    if list(map(str, z["filenames"])) != train.filenames:
        raise AvvpError(f"{path}: pseudo-labels of other training videos than the packed dataset's")
    labels = {"audio": z["audio"], "visual": z["visual"], "weak": train.labels.numpy() > 0}
    if str(z["kind"]) == "truth":
        labels.update(simulated(labels, settings))
    return tuple(torch.from_numpy(labels[m].astype(np.float32)) for m in ("audio", "visual"))


# ---------------------------------------------------------------------------------------------- the stage

def quality(pl: dict, truth: dict) -> dict:
    """The pseudo-labels scored as predictions against the truth, the protocol's ten numbers (%), as the field
    reports a teacher's quality (released VALOR on LLP test: segment 80.5 / 61.7 / 55.7 / 66.0 / 74.6)."""
    from avvp.evaluation.metrics import llp_scores

    def as_pred(x):
        return np.ascontiguousarray(x.transpose(0, 2, 1))
    return llp_scores(as_pred(pl["audio"]), as_pred(pl["visual"]), as_pred(truth["audio"]), as_pred(truth["visual"]))


def main(args) -> None:
    """`avvp valor-labels`: the training split's pseudo-label file of a packed dataset, and a summary of the
    teacher's quality on val and test (the recipe's default teacher on the synthetic truth; the release's own)."""
    from avvp.methods.valor import DEFAULT_TEACHER, labels_file, summary_file

    t0 = time.perf_counter()
    out = Path(args.out)
    train = dataset.load_split(args.data, "train")
    summary: dict = {"seed": args.seed, "data": str(Path(args.data).resolve())}
    if args.released:
        kind = "released"
        pl = read_released(args.released, train.filenames)
        summary["source"] = str(Path(args.released).resolve())
        scored = {}
        for split in ("val", "test"):
            s = dataset.load_split(args.data, split)
            released = read_released(args.released, s.filenames)
            gt = {m: np.asarray(getattr(s, f"gt_{m}")).transpose(0, 2, 1) for m in ("audio", "visual")}
            scored[split] = quality(released, gt)
    else:
        kind = "truth"
        truth = synthetic_truth(args.data)
        pl = {m: truth["train"][m] for m in ("audio", "visual")}
        teacher_settings = DEFAULT_TEACHER
        scored = {split: quality(simulated(truth[split], teacher_settings), truth[split]) for split in ("val", "test")}
        summary["teacher"] = teacher_settings
    summary.update({"kind": kind, "quality": scored, "seconds": round(time.perf_counter() - t0, 3)})
    write_json(summary_file(out), summary)
    write_npz(labels_file(out), filenames=np.array(train.filenames), kind=np.array(kind), **pl)   # the marker
    seg = scored["test"]["segment"]
    print(json.dumps({"kind": kind, "test_segment": {k: round(v, 1) for k, v in seg.items()}}))
