"""A synthetic LLP dataset in the official layout (`avvp synth`): a documented simulation of the task.

Generative model (every number below is a parameter recorded in `synth_manifest.json`):

1. Labels. A video's weak label set has 1-3 classes. Its distribution over label sets (all singles,
   every pair and every triple whose pairs co-occur in LLP) is the non-negative least-squares fit of
   the per-class video counts and the pairwise co-occurrence counts of the real val+test annotations
   (`resources/llp_class_stats.csv`, `llp_cooccurrence.csv`); the fit is exact, so the marginals and
   co-occurrences of the synthetic labels match the real ones up to sampling error.
2. Modality. Each label of a video is, independently, audio-only, visual-only, both or neither (a weak
   label with no evidence, as in LLP) with the class's real proportions (`p_audio_only`, ...).
   Speech, for example, is audio-only 76% of the time: copying the weak labels onto the visual track
   is wrong for it.
3. Events. In each modality where a class is present it has k = 1 + Poisson(mean_events - 1) events
   (at most 5) covering L = k + Binomial(11 - 2k, p) of the 10 seconds, one p per class chosen so that
   E[L] is the class's mean active seconds (Speech about 5 s, Car about 9 s). The lengths of the k
   events and the silent seconds around them (at least one between two events) are compositions of L
   and of the rest, cut at sorted uniform points. k and L are drawn by inverting their distributions.
   When a class is in both modalities, with probability `av_overlap_iou` of the class the visual track
   reuses the audio track's uniforms (for k, L and the cuts): each modality keeps its own statistics
   but the events line up, so the mean audio-visual IoU per class follows the file's (docs/synthetic-data.md
   says how closely).
4. Features (float32, real shapes). Each feature kind (audio 128-d, visual 2048-d, motion 512-d) has a
   prototype per class: `s * (sqrt(family_share) * F_family + sqrt(1 - family_share) * I_class)` with
   F and I random unit vectors, so that related classes (voices, instruments, engines, animals) share a
   component and are confusable; a class outside every family has `s * I_class`. The norm is
   s = snr * (dim / 128) ** 0.25: a direction in 2048 dimensions is harder to learn from the same number
   of seconds than one in 128, and this keeps the three kinds about equally informative. Per video a
   background vector `background * N(0, I)` per kind and an amplitude U(amplitude) per (class,
   modality). Then, per second t:
     audio[t]  = bg_a + sum_{c audible at t} amp_ac * P_a[c] + N(0, I)
     motion[t] = bg_m + sum_{c visible at t} amp_vc * P_m[c] + N(0, I)
     frame[t, j] (8 frames per second) = bg_v + sum_{c visible at t} amp_vc * P_v[c] + e_t
                                          + frame_jitter * N(0, I),  e_t ~ N(0, I) shared by the 8 frames.
   `snr` is thus (for the 128-d audio) the distance, in noise standard deviations, between a second with
   and without one class at unit amplitude. The default (8) leaves most of the signal in the features,
   not all (amplitudes as low as 0.6, backgrounds, shared family components), so that the modality of
   a weak label, not the features, is the difficulty; what a probe and the trained rows reach on it is
   measured in docs/synthetic-data.md.

The weak CSVs hold each video's label set; the dense CSVs (val + test) hold the events of item 3;
`AVVP_train_truth.csv` holds the true modality of every training label (which exists only here) for
measuring label refinement. It is a simulation of the difficulties of LLP, not tuned to favour a method.
The same preset and seed give byte-identical files.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import math
import sys
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.optimize import nnls

from avvp.constants import CLASSES, DENSE_CSV, FEATURES, FRAMES_PER_SEGMENT, NUM_CLASSES, NUM_SEGMENTS, SPLITS, WEAK_CSV
from avvp.data.llp import SYNTH_MANIFEST, TRAIN_TRUTH_CSV
from avvp.errors import AvvpError
from avvp.io import atomic_dir

# Videos per split of each preset (`full` is the size of LLP itself). Why `default` has 2,000 training videos, not
# fewer: docs/getting-started.md#the-quick-default-and-real-llp.
SIZES = {
    "tiny": {"train": 64, "val": 24, "test": 24},
    "default": {"train": 2000, "val": 200, "test": 300},
    "full": {"train": 10000, "val": 649, "test": 1200},
}

# Related classes share a prototype component, so they are confusable.
FAMILIES = {
    "voices": ["Speech", "Singing", "Cheering", "Baby_laughter", "Baby_cry_infant_cry", "Clapping"],
    "instruments": ["Cello", "Banjo", "Violin_fiddle", "Accordion", "Acoustic_guitar"],
    "engines": ["Car", "Motorcycle", "Lawn_mower", "Chainsaw", "Helicopter", "Vacuum_cleaner", "Blender"],
    "animals": ["Dog", "Cat", "Chicken_rooster"],
}

PARAMS = {
    "snr": 8.0,                 # prototype norm in noise standard deviations (the difficulty knob)
    "family_share": 0.5,        # fraction of a prototype's energy in its family component
    "background": 0.5,          # per-video background, standard deviation per dimension
    "amplitude": [0.6, 1.4],    # per (video, class, modality) event amplitude, uniform
    "frame_jitter": 0.5,        # per-frame noise on top of the per-second noise (visual frames)
    "max_events": 5,
    "max_labels": 3,
}
GENERATOR_VERSION = 2            # 2: no BLAS (label sets shipped, features summed class by class)
CHUNK = 64                      # videos generated at once (bounded memory: ~45 MB of frames)
MODALITY_KINDS = ("audio_only", "visual_only", "both", "neither")
ID_ALPHABET = np.array(list("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-"))


# -------------------------------------------------------------------------------------- statistics
def _resource(name: str) -> bytes:
    return resources.files("avvp").joinpath(f"resources/{name}").read_bytes()


@lru_cache(maxsize=1)
def class_stats() -> pd.DataFrame:
    """Per-class statistics of the real val+test annotations, in the official class order."""
    import io
    df = pd.read_csv(io.BytesIO(_resource("llp_class_stats.csv"))).set_index("cls")
    return df.loc[CLASSES]


@lru_cache(maxsize=1)
def cooccurrence() -> np.ndarray:
    """(25, 25) counts of real val+test videos holding both classes."""
    import io
    df = pd.read_csv(io.BytesIO(_resource("llp_cooccurrence.csv")), index_col=0)
    return df.loc[CLASSES, CLASSES].to_numpy(dtype=np.int64)


LABEL_SETS = "llp_label_sets.csv"


@lru_cache(maxsize=1)
def label_set_distribution() -> tuple[list[tuple[int, ...]], np.ndarray]:
    """Label sets of size 1-3 and their probabilities: the fit of `fit_label_set_distribution`, as shipped in
    avvp/resources/llp_label_sets.csv (`python -m avvp.data.pins --label-sets` rewrites it).

    Read, not fitted at generation: the NNLS runs on LAPACK/BLAS, whose kernels differ by CPU (OpenBLAS takes
    Haswell's on AMD Zen, SkylakeX's on AVX512 Intel) in the last bits, and the active set it ends on, hence the
    sets and every label drawn from them, followed those bits (generator version 1)."""
    import io
    df = pd.read_csv(io.BytesIO(_resource(LABEL_SETS)), dtype={"set": str})
    sets = [tuple(int(c) for c in text.split()) for text in df["set"]]
    return sets, df["probability"].to_numpy(dtype=np.float64)


def label_sets_csv() -> str:
    """The text of llp_label_sets.csv: each set's classes (indices in the official order, space-separated) and
    its probability, exactly (repr)."""
    sets, prob = fit_label_set_distribution()
    rows = [f"{' '.join(map(str, s))},{float(p)!r}" for s, p in zip(sets, prob)]
    return "set,probability\n" + "\n".join(rows) + "\n"


def fit_label_set_distribution() -> tuple[list[tuple[int, ...]], np.ndarray]:
    """Label sets of size 1-3 and their probabilities, fitted to the real marginals and co-occurrences.

    Unknowns: one weight per candidate set (singles, co-occurring pairs, triples whose three pairs all
    co-occur). Equations: per class, the weights of the sets holding it sum to its video count; per
    pair, to its co-occurrence count; all weights sum to the number of videos. Solved by NNLS.
    """
    n = class_stats()["videos"].to_numpy(dtype=float)
    co = cooccurrence()
    pairs = [p for p in itertools.combinations(range(NUM_CLASSES), 2) if co[p] > 0]
    triples = [t for t in itertools.combinations(range(NUM_CLASSES), 3)
               if all(co[p] > 0 for p in itertools.combinations(t, 2))]
    sets = [(c,) for c in range(NUM_CLASSES)] + pairs + triples
    a = np.zeros((NUM_CLASSES + len(pairs) + 1, len(sets)))
    for k, s in enumerate(sets):
        a[list(s), k] = 1
        for p, pair in enumerate(pairs):
            a[NUM_CLASSES + p, k] = set(pair) <= set(s)
        a[-1, k] = 1
    total_videos = _real_video_count()
    b = np.concatenate([n, [co[p] for p in pairs], [total_videos]])
    w, _ = nnls(a, b)
    keep = w > 1e-9
    return [s for s, k in zip(sets, keep) if k], w[keep] / w[keep].sum()


def _real_video_count() -> int:
    """Videos the statistics were computed on: the real val + test splits (docs/protocol.md#llp-statistics)."""
    return SIZES["full"]["val"] + SIZES["full"]["test"]


def target_statistics() -> dict:
    """What the generator aims at, per video, as frequencies (for tests and the README)."""
    n_videos = _real_video_count()
    return {"label_freq": class_stats()["videos"].to_numpy(float) / n_videos,
            "pair_freq": cooccurrence() / n_videos}


# ------------------------------------------------------------------------------------------ labels
def sample_labels(rng: np.random.Generator, n: int) -> np.ndarray:
    """(n, 25) uint8 weak labels: label sets drawn from the fitted distribution."""
    sets, prob = label_set_distribution()
    pick = rng.choice(len(sets), size=n, p=prob)
    labels = np.zeros((n, NUM_CLASSES), dtype=np.uint8)
    for i, k in enumerate(pick):
        labels[i, list(sets[k])] = 1
    return labels


def sample_modalities(rng: np.random.Generator, labels: np.ndarray) -> np.ndarray:
    """(n, 25) int8: for each label its kind (index into MODALITY_KINDS), -1 where no label."""
    st = class_stats()
    p = st[["p_audio_only", "p_visual_only", "p_both", "p_neither"]].to_numpy(float)
    p /= p.sum(axis=1, keepdims=True)
    cum = np.cumsum(p, axis=1)
    u = rng.random(labels.shape)
    kind = (u[..., None] >= cum[None, :, :-1]).sum(axis=2).astype(np.int8)
    return np.where(labels > 0, kind, -1).astype(np.int8)


# ------------------------------------------------------------------------------------------ events
def event_count_distribution(mean_events: float, max_events: int) -> np.ndarray:
    """P(k = 1..max_events): 1 + Poisson(mean_events - 1), the tail folded onto max_events."""
    from scipy.stats import poisson
    lam = max(mean_events - 1.0, 0.0)
    p = poisson.pmf(np.arange(max_events), lam)
    p[-1] += poisson.sf(max_events - 1, lam)
    return p


@lru_cache(maxsize=None)
def length_probability(mean_segs: float, mean_events: float, max_events: int) -> float:
    """The p of L = k + Binomial(11 - 2k, p) that makes E[L] the class's mean active seconds."""
    pk = event_count_distribution(mean_events, max_events)
    k = np.arange(1, max_events + 1)
    free = np.maximum(NUM_SEGMENTS + 1 - 2 * k, 0)
    # math.fsum, not a BLAS dot product: the same float on every CPU.
    mean_k, mean_free = math.fsum(pk * k), math.fsum(pk * free)
    return float(np.clip((mean_segs - mean_k) / mean_free, 0.0, 1.0))


@lru_cache(maxsize=None)
def shape_cdfs(mean_segs: float, mean_events: float, max_events: int) -> tuple[np.ndarray, list]:
    """Cumulative distributions of k and, for each k, of L (see `event_shape`)."""
    from scipy.stats import binom
    p = length_probability(mean_segs, mean_events, max_events)
    cdf_l = []
    for k in range(1, max_events + 1):
        free = max(NUM_SEGMENTS + 1 - 2 * k, 0)            # L ranges over [k, 11 - k]
        cdf_l.append(np.cumsum(binom.pmf(np.arange(free + 1), free, p)))
    return np.cumsum(event_count_distribution(mean_events, max_events)), cdf_l


def event_shape(u_k: float, u_l: float, mean_segs: float, mean_events: float,
                max_events: int) -> tuple[int, int]:
    """Number of events k and active seconds L, by inversion of their distributions at u_k, u_l.

    k = 1 + Poisson(mean_events - 1) (tail folded onto max_events), L = k + Binomial(11 - 2k, p).
    Inversion lets audio and visual share u_k, u_l (quantile coupling): each keeps its own marginal
    distribution while a long audio event goes with a long visual one.
    """
    cdf_k, cdf_l = shape_cdfs(mean_segs, mean_events, max_events)
    k = 1 + min(int(np.searchsorted(cdf_k, u_k, side="right")), max_events - 1)
    extra = min(int(np.searchsorted(cdf_l[k - 1], u_l, side="right")), len(cdf_l[k - 1]) - 1)
    return k, k + extra


def composition(total: int, parts: int, u: np.ndarray) -> np.ndarray:
    """`total` split into `parts` non-negative integers at the sorted points floor(u * (total + 1)).

    Monotone in the uniforms `u` (parts - 1 of them): two masks placed with the same uniforms stay
    aligned even when their lengths differ, which is how audio and visual events are coupled.
    """
    cuts = np.sort(np.floor(u[:parts - 1] * (total + 1)).astype(int))
    return np.diff(np.concatenate([[0], cuts, [total]]))


def place_events(k: int, length: int, u: np.ndarray) -> np.ndarray:
    """(10,) uint8 mask of k events covering `length` seconds, placed by the uniforms `u` (21 values).

    Event lengths: 1 + a composition of the `length - k` extra seconds into k parts; silent seconds: a
    composition of the rest into k + 1 gaps, the k - 1 inner ones at least one second long.
    """
    parts = 1 + composition(length - k, k, u[:10])
    gaps = composition(NUM_SEGMENTS - length - (k - 1), k + 1, u[10:])
    mask = np.zeros(NUM_SEGMENTS, dtype=np.uint8)
    t = 0
    for i in range(k):
        t += int(gaps[i]) + (1 if i > 0 else 0)
        mask[t:t + parts[i]] = 1
        t += parts[i]
    return mask


def sample_events(rng: np.random.Generator, kinds: np.ndarray, max_events: int) -> tuple[np.ndarray, np.ndarray]:
    """(n, 25, 10) uint8 audio and visual activity of every label, from its modality kind."""
    st = {k: v.to_numpy(float) for k, v in class_stats().items()}
    n = kinds.shape[0]
    audio = np.zeros((n, NUM_CLASSES, NUM_SEGMENTS), dtype=np.uint8)
    visual = np.zeros_like(audio)
    for i, c in zip(*np.nonzero(kinds >= 0)):
        kind = MODALITY_KINDS[kinds[i, c]]
        u_a = rng.random(23)                      # k, L, then 21 for the placement
        coupled = rng.random() < st["av_overlap_iou"][c]
        u_v = u_a if coupled else rng.random(23)
        if kind in ("audio_only", "both"):
            shape = event_shape(u_a[0], u_a[1], st["mean_audio_segs"][c], st["mean_audio_events"][c], max_events)
            audio[i, c] = place_events(*shape, u_a[2:])
        if kind in ("visual_only", "both"):
            shape = event_shape(u_v[0], u_v[1], st["mean_visual_segs"][c], st["mean_visual_events"][c],
                                max_events)
            visual[i, c] = place_events(*shape, u_v[2:])
    return audio, visual


# ---------------------------------------------------------------------------------------- features
def family_of(cls: str) -> str | None:
    return next((f for f, members in FAMILIES.items() if cls in members), None)


def prototypes(rng: np.random.Generator, dim: int, params: dict) -> np.ndarray:
    """(25, dim) float32 class prototypes; related classes share their family component."""
    def unit(k):
        v = rng.standard_normal((k, dim))
        return v / np.linalg.norm(v, axis=1, keepdims=True)
    family = dict(zip(FAMILIES, unit(len(FAMILIES))))
    own = unit(NUM_CLASSES)
    share = params["family_share"]
    p = np.empty((NUM_CLASSES, dim))
    for c, name in enumerate(CLASSES):
        f = family_of(name)
        p[c] = own[c] if f is None else np.sqrt(share) * family[f] + np.sqrt(1 - share) * own[c]
    # The norm grows with the fourth root of the dimension: in 2048 dimensions a probe learnt from the
    # same number of seconds needs a larger signal to find its direction as reliably as in 128.
    return (params["snr"] * (dim / 128) ** 0.25 * p).astype(np.float32)


def signal(act: np.ndarray, protos: np.ndarray) -> np.ndarray:
    """act @ protos ((..., 25) x (25, dim)), summed class by class in the classes' order.

    Not a matmul: BLAS kernels (which OpenBLAS picks by CPU) sum in other orders and round differently, so the
    features would depend on the machine. Elementwise products and sums round the same everywhere; classes with
    no activity in the chunk add exact zeros and are skipped."""
    out = np.zeros((*act.shape[:-1], protos.shape[1]), dtype=np.float32)
    for c in np.flatnonzero(act.reshape(-1, act.shape[-1]).any(axis=0)):
        out += act[..., c, None] * protos[c]
    return out


def features(rng: np.random.Generator, audio: np.ndarray, visual: np.ndarray, protos: dict,
             params: dict) -> dict[str, np.ndarray]:
    """Audio (n,10,128), visual frames (n,80,2048) and motion (n,10,512) of a chunk of videos."""
    n = audio.shape[0]
    lo, hi = params["amplitude"]
    amp_a = rng.uniform(lo, hi, (n, NUM_CLASSES)).astype(np.float32)
    amp_v = rng.uniform(lo, hi, (n, NUM_CLASSES)).astype(np.float32)
    # (n, 10, 25) activity weighted by amplitude: the signal is this times the prototypes.
    act_a = audio.transpose(0, 2, 1).astype(np.float32) * amp_a[:, None, :]
    act_v = visual.transpose(0, 2, 1).astype(np.float32) * amp_v[:, None, :]
    out = {}
    for kind, act in (("audio", act_a), ("motion", act_v)):
        dim = protos[kind].shape[1]
        x = rng.standard_normal((n, NUM_SEGMENTS, dim), dtype=np.float32)
        x += params["background"] * rng.standard_normal((n, 1, dim), dtype=np.float32)
        x += signal(act, protos[kind])
        out[kind] = x
    dim = protos["visual"].shape[1]
    second = rng.standard_normal((n, NUM_SEGMENTS, dim), dtype=np.float32)
    second += params["background"] * rng.standard_normal((n, 1, dim), dtype=np.float32)
    second += signal(act_v, protos["visual"])
    frames = rng.standard_normal((n, NUM_SEGMENTS, FRAMES_PER_SEGMENT, dim), dtype=np.float32)
    frames *= params["frame_jitter"]
    frames += second[:, :, None, :]
    out["visual"] = frames.reshape(n, NUM_SEGMENTS * FRAMES_PER_SEGMENT, dim)
    return out


# --------------------------------------------------------------------------------------- the files
def video_filenames(rng: np.random.Generator, n: int) -> list[str]:
    """Distinct real-looking filenames: an 11-char YouTube-like id, then `_<start>_<start+10>`."""
    names: list[str] = []
    seen: set[str] = set()
    while len(names) < n:
        ids = ["".join(r) for r in ID_ALPHABET[rng.integers(0, len(ID_ALPHABET), (n - len(names), 11))]]
        starts = rng.integers(0, 600, n - len(names))
        for vid, s in zip(ids, starts):
            if vid not in seen:
                seen.add(vid)
                names.append(f"{vid}_{s}_{s + NUM_SEGMENTS}")
    return names


def join_classes(row: np.ndarray) -> str:
    return ",".join(CLASSES[c] for c in np.flatnonzero(row))


def events_of(mask: np.ndarray) -> list[tuple[int, int]]:
    """Maximal runs of ones of a (10,) mask as [onset, offset) pairs."""
    d = np.diff(np.concatenate([[0], mask.astype(np.int8), [0]]))
    return list(zip(np.flatnonzero(d == 1).tolist(), np.flatnonzero(d == -1).tolist()))


def write_tsv(path: Path, header: list[str], rows: list[list]) -> None:
    lines = ["\t".join(header)] + ["\t".join(str(v) for v in r) for r in rows]
    path.write_text("\n".join(lines) + "\n")


@dataclass
class SplitDraw:
    """Everything drawn for one split except the features."""

    filenames: list[str]
    labels: np.ndarray
    audio: np.ndarray       # (n, 25, 10) true audio activity
    visual: np.ndarray


def draw_split(rng: np.random.Generator, filenames: list[str], params: dict) -> SplitDraw:
    labels = sample_labels(rng, len(filenames))
    kinds = sample_modalities(rng, labels)
    audio, visual = sample_events(rng, kinds, params["max_events"])
    return SplitDraw(filenames, labels, audio, visual)


def write_annotations(out: Path, draws: dict) -> None:
    """The official annotation files of the drawn splits, and the training set's true modalities."""
    for split in SPLITS:
        d = draws[split]
        write_tsv(out / WEAK_CSV[split], ["filename", "event_labels"],
                  [[f, join_classes(y)] for f, y in zip(d.filenames, d.labels)])
    for modality, attr in (("audio", "audio"), ("visual", "visual")):
        rows = []
        for split in ("val", "test"):
            d = draws[split]
            for i, f in enumerate(d.filenames):
                for c in range(NUM_CLASSES):
                    rows += [[f, on, off, CLASSES[c]] for on, off in events_of(getattr(d, attr)[i, c])]
        write_tsv(out / DENSE_CSV[modality], ["filename", "onset", "offset", "event_labels"], rows)
    t = draws["train"]
    write_tsv(out / TRAIN_TRUTH_CSV, ["filename", "audio_labels", "visual_labels"],
              [[f, join_classes(a.any(axis=1)), join_classes(v.any(axis=1))]
               for f, a, v in zip(t.filenames, t.audio, t.visual)])



def generate(out: Path, preset: str, seed: int, params: dict | None = None, progress: bool = True) -> dict:
    """Write the whole dataset into `out` (an empty folder); returns the manifest."""
    from tqdm import tqdm
    params = dict(PARAMS, **(params or {}))
    sizes = SIZES[preset]
    root = np.random.SeedSequence(seed)
    s_names, s_labels, s_protos, s_feats = root.spawn(4)
    names = video_filenames(np.random.default_rng(s_names), sum(sizes.values()))
    label_rng = np.random.default_rng(s_labels)
    proto_rng = np.random.default_rng(s_protos)
    protos = {k: prototypes(proto_rng, FEATURES[k][1][-1], params) for k in ("audio", "visual", "motion")}
    feat_rng = np.random.default_rng(s_feats)
    dirs = {k: out / "feats" / FEATURES[k][0] for k in FEATURES}
    for d in dirs.values():
        d.mkdir(parents=True, exist_ok=True)

    draws, start = {}, 0
    for split in SPLITS:
        draws[split] = draw_split(label_rng, names[start:start + sizes[split]], params)
        start += sizes[split]

    bar = tqdm(total=len(names), desc=f"synth {preset}", unit="video", disable=not progress, mininterval=1)
    for split in SPLITS:
        d = draws[split]
        for lo in range(0, len(d.filenames), CHUNK):
            hi = min(lo + CHUNK, len(d.filenames))
            feats = features(feat_rng, d.audio[lo:hi], d.visual[lo:hi], protos, params)
            for j, name in enumerate(d.filenames[lo:hi]):
                for kind, arr in feats.items():
                    np.save(dirs[kind] / f"{name[:11]}.npy", arr[j])
            bar.update(hi - lo)
    bar.close()

    write_annotations(out, draws)

    manifest = {
        "generator": "avvp.data.synth", "generator_version": GENERATOR_VERSION,
        "preset": preset, "seed": seed, "sizes": sizes, "params": params, "families": FAMILIES,
        "statistics": {name: hashlib.sha256(_resource(name)).hexdigest()
                       for name in ("llp_class_stats.csv", "llp_cooccurrence.csv")},
        "chunk": CHUNK,
    }
    (out / SYNTH_MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")
    return manifest


def run(args) -> None:
    """`avvp synth`: generate into a temporary sibling folder, renamed into place when complete."""
    out = Path(args.out)
    if out.exists() and any(out.iterdir()) and not (out / SYNTH_MANIFEST).exists():
        raise AvvpError(f"{out}: exists and is not a synthetic dataset; refusing to overwrite it")
    with atomic_dir(out, "synthetic dataset", feature_bytes(args.preset)) as tmp:
        generate(tmp, args.preset, args.seed)
    # What was written, against the pins of this generator version (avvp/data/pins.py): one line when it differs.
    from avvp.data import pins
    problem = pins.check_written(out, args.preset, args.seed)
    if problem:
        print(f"avvp synth: warning: {problem}", file=sys.stderr)


def feature_bytes(preset: str) -> int:
    """What a preset's feature files take on disk (float32 .npy, 128-byte headers), checked before generating."""
    per_video = sum(4 * int(np.prod(shape)) + 128 for _, shape in FEATURES.values())
    return sum(SIZES[preset].values()) * per_video
