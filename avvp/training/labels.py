"""Label sources: what a row's audio and visual targets are made from (config/variants.yaml `labels`).

A registry (avvp.registry). A source names the files of earlier stages it needs per seed (the workflow's inputs
of a training job come from them, and `avvp train` takes each as `--<name> PATH`), and loads the (N, 25) audio
and visual label arrays of the training split from them. Targets are then built per batch by the recipe
(avvp.training.train.targets); a source that also acts per batch (JoMoLD: denoising labels on the fly from the
model's losses) names the per-class ratios it needs (`ratios`: the files -> a (2, C) tensor), and the trainer runs
its per-batch step (avvp.training.train.denoise_step). Importing this module needs no torch.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from avvp import paths, schema
from avvp.errors import AvvpError
from avvp.registry import Registry

LABEL_SOURCES = Registry("label source")
schema.known(LABEL_SOURCES)


@dataclass(frozen=True)
class LabelFile:
    """A per-seed file an earlier stage makes: where the workflow keeps it, what it is, and how to make it."""
    path: Callable[[int], Path]      # seed -> the workflow's file (results/...)
    help: str
    make: str                        # a command; {data}, {seed}, {file} are filled in


@dataclass(frozen=True)
class LabelSource:
    load: Callable                   # (training split, {file name: path}) -> (audio labels, visual labels)
    files: dict[str, LabelFile] = field(default_factory=dict)
    # Per-batch denoising: ({file name: path}) -> (2, C) float64 tensor of audio and visual noise ratios.
    ratios: Callable | None = None


def _weak(train, files: dict):
    """Both modalities get the video-level labels (HAN)."""
    return train.labels, train.labels


def _refined(train, files: dict):
    """MA's modality-aware labels from `avvp refine` (aligned to the split by filename)."""
    from avvp.data import dataset

    return dataset.load_refined(files["refined"], train)


LABEL_SOURCES.register("weak", LabelSource(load=_weak))
LABEL_SOURCES.register("refined", LabelSource(load=_refined, files={"refined": LabelFile(
    path=paths.refined_labels, help="refined_labels.npz from `avvp refine` (rows with `labels: refined`)",
    make="avvp refine --data {data} --seed {seed} --out {folder}")}))


def _jomold_ratios(files: dict):
    """JoMoLD's per-class noise ratios (stage 2's file), as (2, C): audio, visual."""
    import torch

    from avvp.training.denoise import read_ratios

    return torch.stack(read_ratios(files["ratios"]))


# JoMoLD (docs/protocol.md#jomold): weak labels, denoised per batch by the model being trained, with the noise
# ratios of stage 2 (made from the stage-1 estimator, paths.ESTIMATOR_ROW).
LABEL_SOURCES.register("jomold", LabelSource(load=_weak, ratios=_jomold_ratios, files={"ratios": LabelFile(
    path=paths.noise_ratios, help="noise_ratios.json from `avvp noise-ratios` (rows with `labels: jomold`)",
    make=(f"avvp train --variant '{paths.ESTIMATOR_ROW}' --data {{data}} --seed {{seed}} --out {{folder}}/estimator"
          " && avvp noise-ratios --run {folder}/estimator --data {data} --seed {seed} --out {file}"))}))


def _cmpae_released_ratios(files: dict):
    """The 2 x 25 ratios CMPAE ships, estimated on real LLP (avvp/resources/cmpae_ratios.csv and its source)."""
    import csv
    import io
    from importlib import resources

    import torch

    rows = list(csv.DictReader(io.StringIO(resources.files("avvp.resources").joinpath("cmpae_ratios.csv").read_text())))
    return torch.tensor([[float(r["r_a"]) for r in rows], [float(r["r_v"]) for r in rows]], dtype=torch.float64)


# CMPAE's control (docs/protocol.md#cmpae): JoMoLD's per-batch denoising with the ratios CMPAE ships, not those
# estimated on the data at hand (they describe real LLP; on other data the row measures that mismatch).
LABEL_SOURCES.register("cmpae_released", LabelSource(load=_weak, ratios=_cmpae_released_ratios))


def files() -> dict[str, LabelFile]:
    """Every file a label source takes, by name (each is an `avvp train` option `--<name>`)."""
    out: dict[str, LabelFile] = {}
    for source in LABEL_SOURCES.names():
        for name, file in LABEL_SOURCES.get(source).files.items():
            out.setdefault(name, file)
    return out


def load(labels: str, train, given: dict, where: str, data: str, seed: int):
    """(audio, visual) label arrays of the training split from source `labels`; `given`: file name -> path or
    None (the command's options). An AvvpError says which file is missing and how to make it."""
    source = LABEL_SOURCES.get(labels)
    for name, file in source.files.items():
        if not given.get(name):
            wanted = file.path(seed)
            make = file.make.format(data=data, seed=seed, file=wanted, folder=wanted.parent)
            raise AvvpError(f"{where} trains on {labels} labels: make them with `{make}` "
                            f"and pass --{name} {wanted}")
    return source.load(train, {name: given[name] for name in source.files})


def ratios(labels: str, given: dict):
    """The (2, C) noise ratios a denoising source acts with (None for a source that does not denoise)."""
    source = LABEL_SOURCES.get(labels)
    return None if source.ratios is None else source.ratios({name: given[name] for name in source.files})
