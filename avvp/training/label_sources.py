"""Label sources: what a row's audio and visual targets are made from (config/variants.yaml `labels`).

A registry (avvp/registry.py LABEL_SOURCES). A source names the per-seed files it trains on, each by the stage
that makes it (a `SeedFile` stage, avvp/stages.py: the workflow's inputs of a training job come from it, and
`avvp train` takes each as `--<option> PATH`), and loads the (N, 25) audio and visual label arrays of the
training split from them. Targets are then built per batch by the recipe (avvp.training.train.targets).

A source may also act on every training batch, inside the step: its `per_batch` rule (JoMoLD's denoising,
avvp/methods/jomold/) gets the values the source declares (`values`: its files -> a tensor, e.g. per-class
ratios), spread over each epoch's batches by the rule's `schedule` as its recipe settings say, and changes the
batch's targets with the model being trained (`apply`). The settings are the recipe's entry of the rule's
`key`, validated by the rule's own schema fragment (as an extra loss declares its settings).

Only the video-level labels are registered here; every other source lives in its method's folder. Importing
this module needs no torch.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

from avvp.errors import AvvpError
from avvp.paths import run_folder, slug
from avvp.registry import LABEL_SOURCES, STAGES, resolve


@dataclass(frozen=True)
class PerBatchRule:
    """A label rule applied to each training batch inside the training step.

    `schedule(values, settings, iterations, epoch)` -> an (iterations, ...) tensor: what is in force at each batch
    of 0-based `epoch` (computed on the host once an epoch, copied to the device once: a captured step reads its
    row, Batch.in_force); `apply(model, job, batch, epoch)` -> the batch with its targets changed.
    Both may be "module:function", imported when training starts."""
    key: str                         # the recipe key of its settings
    settings: dict                   # their JSON schema
    schedule: Callable | str
    apply: Callable | str


@dataclass(frozen=True)
class LabelSource:
    load: Callable | str             # (training split, {option: path}[, settings]) -> (audio labels, visual labels)
    files: dict[str, str] = field(default_factory=dict)    # `avvp train` option -> the stage making its file
    per_batch: PerBatchRule | None = None
    values: Callable | str | None = None   # ({option: path}) -> the tensor its per-batch rule acts with
    description: str = ""
    # The schema of its settings, the recipe key of its name (given to `load` as a third argument); None: none.
    settings: dict | None = None
    per_second: bool = False         # its labels are per second, (N, T, C) (else per video, (N, C))


def weak(train, files: dict):
    """Both modalities get the video-level labels (HAN)."""
    return train.labels, train.labels


LABEL_SOURCES.register("weak", LabelSource(load=weak, description="the video-level labels, for both modalities"))


def seed_file(option: str, seed) -> str:
    """The workflow's file for a label source's option and a seed: its stage's `out` file."""
    stage = STAGES.get(option_stage(option))
    return stage.output(stage.out, seed=seed)


def option_stage(option: str) -> str:
    """The stage that makes the file of a label-source option (the first source declaring it)."""
    for source in LABEL_SOURCES.values():
        if option in source.files:
            return source.files[option]
    raise AvvpError(f"no label source takes a file --{option}")


def options() -> list[str]:
    """Every `avvp train` option of a label source's file, once, in registration order."""
    return list(dict.fromkeys(option for source in LABEL_SOURCES.values() for option in source.files))


def how_to_make(option: str, data: str, seed) -> str:
    """The commands that make a label file by hand: train its stage's row, then run the stage on that run."""
    stage = STAGES.get(option_stage(option))
    out = stage.output(stage.out, seed=seed)
    out = out if stage.out_file else out.rsplit("/", 1)[0]
    if stage.row is None:                     # made from the data alone
        return f"avvp {stage.command} --data {data} --seed {seed} --out {out}"
    run = run_folder(slug(stage.row), seed)
    return (f"avvp train --variant '{stage.row}' --data {data} --seed {seed} --out {run} && "
            f"avvp {stage.command} --run {run} --data {data} --seed {seed} --out {out}")


def load(labels: str, train, given: dict, where: str, data: str, seed: int, recipe: dict | None = None):
    """(audio, visual) label arrays of the training split from source `labels` ((N, C), or per second (N, T, C));
    `given`: option -> path or None (the command's options); `recipe`: the row's, whose key of the source's name
    holds its settings. An AvvpError says which file is missing and how to make it."""
    source = LABEL_SOURCES.get(labels)
    for option in source.files:
        if not given.get(option):
            raise AvvpError(f"{where} trains on {labels} labels: make them with `{how_to_make(option, data, seed)}` "
                            f"and pass --{option.replace('_', '-')} {seed_file(option, seed)}")
    files = {option: given[option] for option in source.files}
    if source.settings is None:
        return resolve(source.load)(train, files)
    return resolve(source.load)(train, files, (recipe or {})[labels])


def stand_in(labels: str, weak_labels, seconds: int = 10):
    """Labels of source `labels`' shape without its files, for benchmarks and tests: the weak labels (N, C), and for
    a per-second source every second of them (N, T, C). A step's work does not depend on their values."""
    if LABEL_SOURCES.get(labels).per_second:
        return weak_labels[:, None, :].expand(-1, seconds, -1).contiguous()
    return weak_labels


def per_batch(labels: str) -> PerBatchRule | None:
    """The per-batch rule of source `labels` (its functions imported), or None."""
    rule = LABEL_SOURCES.get(labels).per_batch
    if rule is None:
        return None
    return PerBatchRule(rule.key, rule.settings, resolve(rule.schedule), resolve(rule.apply))


def values(labels: str, given: dict):
    """The tensor a source's per-batch rule acts with (its `values` of the given files), or None without one."""
    source = LABEL_SOURCES.get(labels)
    if source.values is None:
        return None
    return resolve(source.values)({option: given.get(option) for option in source.files})
