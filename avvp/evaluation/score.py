"""`avvp score`: the ten LLP numbers of a prediction file against the official annotations.

    avvp score --annotations DIR --split val|test --predictions FILE.npz [--out FILE.json]

DIR holds the official CSVs (read by avvp.data.llp). FILE.npz holds `filenames` (the CSV's `filename`
values, any order), `audio` and `visual` ((N, 25, 10) 0/1, class x second). The prediction file must
cover the split exactly: a missing, unknown or duplicated video, a wrong shape or a value other than 0/1
is an AvvpError naming the file and the video. The scores are printed as JSON and, with --out, written
atomically: {"segment": {"audio", "visual", "audio_visual", "type_av", "event_av"}, "event": {...}},
in percent, unrounded.
"""

from __future__ import annotations

import json
import sys
import zipfile
from pathlib import Path

import numpy as np

from avvp.constants import CLASSES, NUM_CLASSES, NUM_SEGMENTS, WEAK_CSV
from avvp.data.llp import read_split_annotations
from avvp.errors import AvvpError
from avvp.evaluation.metrics import llp_scores
from avvp.io import write_json

PREDICTION_ARRAYS = ("filenames", "audio", "visual")


def main(args) -> None:
    ann = read_split_annotations(args.annotations, args.split)
    report_quirks(ann.quirks)
    where = f"the {args.split} split ({WEAK_CSV[args.split]})"
    audio, visual = read_predictions(args.predictions, ann.filenames, where)
    scores = llp_scores(audio, visual, ann.gt_audio, ann.gt_visual)
    if args.out:
        write_json(args.out, scores)
    print(json.dumps(scores, indent=2))


def report_quirks(quirks: dict) -> None:
    """One line on stderr per kind of annotation quirk the reader handled (never silently)."""
    for kind, q in quirks.items():
        example = f", e.g. {q['examples'][0]}" if q["examples"] else ""
        print(f"avvp score: annotation quirk {kind}: {q['count']}{example}", file=sys.stderr)


def read_predictions(path, filenames: list[str], where: str) -> tuple[np.ndarray, np.ndarray]:
    """The file's audio and visual predictions as (N, 25, 10) uint8, reordered to `filenames`' order."""
    path = Path(path)
    arrays = load_npz(path)
    names = arrays["filenames"]
    n = len(names)
    for key in ("audio", "visual"):
        if arrays[key].shape != (n, NUM_CLASSES, NUM_SEGMENTS):
            raise AvvpError(f"{path}: '{key}' has shape {arrays[key].shape}, expected "
                            f"({n}, {NUM_CLASSES}, {NUM_SEGMENTS}) for its {n} filenames")
    row = match_videos(path, names.tolist(), filenames, where)
    out = []
    for key in ("audio", "visual"):
        x = arrays[key]
        binary = (x == 0) | (x == 1)
        if not binary.all():
            i = int(np.flatnonzero(~binary.all(axis=(1, 2)))[0])
            c, t = np.argwhere(~binary[i])[0]
            raise AvvpError(f"{path}: video '{names[i]}': '{key}' holds {str(x[i, c, t])} at class {c} "
                            f"({CLASSES[c]}), second {t} (expected 0 or 1)")
        out.append(x[row].astype(np.uint8))
    return out[0], out[1]


def load_npz(path: Path) -> dict[str, np.ndarray]:
    """The three arrays of a prediction file (no pickles: filenames must be a string array)."""
    if not path.is_file():
        raise AvvpError(f"{path}: prediction file not found")
    if not zipfile.is_zipfile(path):   # e.g. a plain .npy, or text
        raise AvvpError(f"{path}: not an .npz archive (expected arrays {', '.join(PREDICTION_ARRAYS)})")
    arrays = {}
    try:
        with np.load(path, allow_pickle=False) as npz:
            missing = [k for k in PREDICTION_ARRAYS if k not in npz.files]
            if missing:
                raise AvvpError(f"{path}: missing array(s) {', '.join(missing)} "
                                f"(has: {', '.join(npz.files) or 'none'})")
            for key in PREDICTION_ARRAYS:
                try:
                    arrays[key] = npz[key]
                except ValueError as e:
                    if "allow_pickle" in str(e):   # an object array, e.g. a list of Python strings
                        raise AvvpError(f"{path}: '{key}' is an object (pickled) array; save it as a "
                                        f"plain array, e.g. np.array(names, dtype=str)") from None
                    raise
    except (OSError, EOFError, ValueError, zipfile.BadZipFile) as e:
        raise AvvpError(f"{path}: cannot read as .npz ({_reason(e)})") from None
    names = arrays["filenames"]
    if names.ndim != 1 or names.dtype.kind not in "US":
        raise AvvpError(f"{path}: 'filenames' must be a 1-D string array, got dtype {names.dtype} "
                        f"shape {names.shape}")
    if names.dtype.kind == "S":
        arrays["filenames"] = names.astype(str)
    for key in ("audio", "visual"):
        if arrays[key].dtype.kind not in "biuf":
            raise AvvpError(f"{path}: '{key}' has non-numeric dtype {arrays[key].dtype}")
    return arrays


def _reason(e: Exception) -> str:
    return str(e).splitlines()[0] if str(e) else type(e).__name__


def match_videos(path: Path, names: list[str], filenames: list[str], where: str) -> np.ndarray:
    """For each video of the split, its entry in the prediction file; every video exactly once."""
    entry: dict[str, int] = {}
    for i, name in enumerate(names):
        if name in entry:
            raise AvvpError(f"{path}: video '{name}' appears twice (entries {entry[name]} and {i})")
        entry[name] = i
    wanted = set(filenames)
    unknown = [name for name in names if name not in wanted]
    if unknown:
        raise AvvpError(f"{path}: video '{unknown[0]}' is not in {where} "
                        f"({len(unknown)} unknown video(s) in all)")
    missing = [name for name in filenames if name not in entry]
    if missing:
        raise AvvpError(f"{path}: no prediction for video '{missing[0]}' of {where} "
                        f"({len(missing)} missing in all)")
    return np.array([entry[name] for name in filenames], dtype=np.intp)
