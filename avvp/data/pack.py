"""`avvp pack`: validate an LLP folder once and write the packed layout of ARCHITECTURE.md.

Every annotation file is read and checked first (`avvp.data.llp`), then every feature file is loaded,
checked and streamed into memory-mapped .npy arrays of a temporary sibling of --out, which is renamed
into place only when everything is valid and written: a bad input leaves nothing at --out. The space of every
array is known from the shapes: it is checked against the free space first, then reserved (posix_fallocate)
for all arrays before the first video is read, so a full disk is one line at once, never a SIGBUS of the maps.

    P/manifest.json  (what the data is: hashes, versions, counts; no paths)   P/source.json  (where it was read)
    P/<split>/filenames.npy labels.npy audio.npy visual.npy [frames.npy] motion.npy
    P/val|test/gt_audio.npy gt_visual.npy          P/train/true_audio.npy true_visual.npy (synthetic)
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
from tqdm import tqdm

from avvp import io
from avvp.constants import FEATURES, FRAMES_PER_SEGMENT, NUM_SEGMENTS, SPLITS
from avvp.data.llp import LLPAnnotations, LLPPaths, load_feature, read_annotations, video_id
from avvp.errors import AvvpError
from avvp.paths import manifest_json

FORMAT = 2           # 2: the source paths moved to source.json; generator version and feature hashes added
SOURCE_JSON = "source.json"
BLOCK = 256          # videos between two re-openings of the output maps


def paths_from_args(args) -> LLPPaths:
    return LLPPaths.from_root(
        args.data, train_csv=args.train_csv, val_csv=args.val_csv, test_csv=args.test_csv,
        eval_audio_csv=args.eval_audio_csv, eval_visual_csv=args.eval_visual_csv,
        audio_dir=args.audio_dir, visual_dir=args.visual_dir, motion_dir=args.motion_dir)


def segment_means(frames: np.ndarray) -> np.ndarray:
    """(80, D) frame features -> (10, D): the mean of each second's 8 frames."""
    return frames.reshape(NUM_SEGMENTS, FRAMES_PER_SEGMENT, -1).mean(axis=1)


class StreamedArray:
    """A .npy file created with open_memmap, its blocks reserved at once, and filled block by block.

    The reservation (posix_fallocate over the whole file) makes a full disk fail here, before any video is read,
    instead of as SIGBUS when a page of the map is first written. The map is closed and reopened every `BLOCK`
    videos so that written pages go back to the file and the resident memory stays small even for the 6.5 GB of
    frames of the full dataset.
    """

    def __init__(self, path: Path, shape: tuple[int, ...]):
        self.path = path
        self.array = np.lib.format.open_memmap(path, "w+", np.float32, shape)
        with open(path, "r+b") as f:
            io.reserve(f.fileno(), os.fstat(f.fileno()).st_size)

    def __setitem__(self, i: int, value: np.ndarray) -> None:
        self.array[i] = value
        if (i + 1) % BLOCK == 0:
            self.close()
            self.array = np.lib.format.open_memmap(self.path, "r+")

    def close(self) -> None:
        self.array.flush()
        del self.array


def feature_shapes(videos: int, frames: bool) -> dict[str, tuple[int, ...]]:
    """The float32 arrays of a split of `videos` videos."""
    shapes = {"audio": (videos, *FEATURES["audio"][1]),
              "visual": (videos, NUM_SEGMENTS, FEATURES["visual"][1][1]),
              "motion": (videos, *FEATURES["motion"][1])}
    if frames:
        shapes["frames"] = (videos, *FEATURES["visual"][1])
    return shapes


NPY_HEADER = 128    # bytes: numpy's header of a packed array (format 1.0, padded to 64)


def packed_bytes(ann: LLPAnnotations, frames: bool) -> int:
    """What the packed arrays take on disk, from their shapes (headers included), before writing any."""
    total = 0
    for split in ann.splits.values():
        small = [np.array(split.filenames, dtype=str), split.labels, split.gt_audio, split.gt_visual]
        arrays = [np.dtype(np.float32).itemsize * int(np.prod(s)) for s in feature_shapes(len(split.filenames),
                                                                                          frames).values()]
        total += sum(arrays) + sum(a.nbytes for a in small if a is not None) + NPY_HEADER * (len(arrays) + 4)
    if ann.train_truth is not None:
        total += sum(a.nbytes + NPY_HEADER for a in ann.train_truth)
    return total


def allocate(tmp: Path, ann: LLPAnnotations, frames: bool, out: Path, needed: int) -> dict:
    """Every split's feature arrays in `tmp` (split -> name -> StreamedArray), created and reserved before any is
    filled: a disk that cannot hold them all fails now, not after minutes of packing, in one line naming the
    array at `out` and the `needed` bytes of the whole pack."""
    arrays: dict[str, dict[str, StreamedArray]] = {}
    for split in SPLITS:
        (tmp / split).mkdir()
        arrays[split] = {}
        for k, shape in feature_shapes(len(ann.splits[split].filenames), frames).items():
            with io.space_errors(out / split / f"{k}.npy", "packed arrays", needed):
                arrays[split][k] = StreamedArray(tmp / split / f"{k}.npy", shape)
    return arrays


def pack_split(split: str, ann, paths: LLPPaths, out: Path, arrays: dict[str, StreamedArray]) -> None:
    """Stream one split's features into its reserved arrays, checking every file on the way."""
    for i, name in enumerate(tqdm(ann.filenames, desc=f"pack {split}", unit="video", mininterval=1)):
        arrays["audio"][i] = load_feature(paths.features["audio"], name, "audio")
        arrays["motion"][i] = load_feature(paths.features["motion"], name, "motion")
        f = load_feature(paths.features["visual"], name, "visual")
        arrays["visual"][i] = segment_means(f)
        if "frames" in arrays:
            arrays["frames"][i] = f
    for a in arrays.values():
        a.close()
    np.save(out / "filenames.npy", np.array(ann.filenames, dtype=str))
    np.save(out / "labels.npy", ann.labels)
    if ann.gt_audio is not None:
        np.save(out / "gt_audio.npy", ann.gt_audio)
        np.save(out / "gt_visual.npy", ann.gt_visual)


def feature_hashes(paths: LLPPaths, ann: LLPAnnotations) -> dict[str, str]:
    """Per feature kind, `io.folder_hash` over the files of the dataset's videos (what pack reads): for a
    synthetic folder, which holds exactly those, the pinned hash of the folder."""
    names = [n for split in ann.splits.values() for n in split.filenames]
    out = {}
    for kind, folder in paths.features.items():
        files = {f"{video_id(n)}.npy": Path(folder) / f"{video_id(n)}.npy" for n in names}
        out[kind] = io.folder_hash({name: io.sha256_file(p) for name, p in files.items()})
    return out


def manifest(ann: LLPAnnotations, frames: bool, features: dict[str, str]) -> dict:
    """What the packed arrays were made from, and nothing about where: the same data packed anywhere gives the
    same bytes, so its sha256 (the runs' `data` input hash, the tables' header) names the data alone."""
    synthetic = ann.synthetic if isinstance(ann.synthetic, dict) else None
    return {
        "format": FORMAT,
        "annotation_version": ann.version,
        "generator_version": synthetic.get("generator_version") if synthetic else None,
        "hashes": ann.hashes,
        "feature_hashes": features,
        "splits": {s: len(a.filenames) for s, a in ann.splits.items()},
        "frames": frames,
        "train_truth": ann.train_truth is not None,
        "quirks": ann.quirks,
        "synthetic": ann.synthetic,
    }


def manifest_text(m: dict) -> str:
    return json.dumps(m, indent=2) + "\n"


def manifest_of(paths: LLPPaths, frames: bool = True) -> dict:
    """The manifest `pack` writes for `paths`, without packing (the pins record its sha256)."""
    ann = read_annotations(paths)
    return manifest(ann, frames, feature_hashes(paths, ann))


def source(paths: LLPPaths) -> dict:
    """Where the data was read (SOURCE_JSON, beside the manifest and outside its hash)."""
    return {"data": str(paths.root.resolve()),
            "weak": {s: str(p.resolve()) for s, p in paths.weak.items()},
            "eval_audio": str(paths.eval_audio.resolve()),
            "eval_visual": str(paths.eval_visual.resolve()),
            "features": {k: str(Path(p).resolve()) for k, p in paths.features.items()}}


def is_packed_layout(out: Path) -> bool:
    """Whether `out` holds only what `avvp pack` writes (its manifest, or the splits' arrays of a pack whose
    manifest.json Snakemake removed as the output of a job it saw killed), so it may be replaced."""
    if manifest_json(out).exists():
        return True
    entries = list(out.iterdir())
    return all((e.name in SPLITS and e.is_dir() and all(f.suffix == ".npy" for f in e.iterdir()))
               or (e.name == SOURCE_JSON and e.is_file()) for e in entries)


def pack(paths: LLPPaths, out: Path, frames: bool = True) -> dict:
    """Validate and pack; the result appears at `out` only when complete. Returns the manifest."""
    for kind, folder in paths.features.items():
        if not folder.is_dir():
            raise AvvpError(f"{folder}: {kind} feature folder not found")
    out = Path(out)
    if out.exists() and any(out.iterdir()) and not is_packed_layout(out):
        raise AvvpError(f"{out}: exists and is not a packed dataset; refusing to overwrite it")
    ann = read_annotations(paths)
    needed = packed_bytes(ann, frames)
    with io.atomic_dir(out, "packed arrays", needed) as tmp:
        arrays = allocate(tmp, ann, frames, out, needed)
        for split in SPLITS:
            pack_split(split, ann.splits[split], paths, tmp / split, arrays[split])
        if ann.train_truth is not None:
            np.save(tmp / "train" / "true_audio.npy", ann.train_truth[0])
            np.save(tmp / "train" / "true_visual.npy", ann.train_truth[1])
        m = manifest(ann, frames, feature_hashes(paths, ann))
        (tmp / SOURCE_JSON).write_text(json.dumps(source(paths), indent=2) + "\n")
        manifest_json(tmp).write_text(manifest_text(m))
    return m


def main(args) -> None:
    m = pack(paths_from_args(args), Path(args.out), frames=not args.no_frames)
    quirks = ", ".join(f"{k} {v['count']}" for k, v in m["quirks"].items()) or "none"
    print(f"packed {m['splits']} (annotations {m['annotation_version']}) into {args.out}; quirks: {quirks}")
