"""JoMoLD (Cheng, Liu, Zhou, Qian, Wu, Wang, ECCV 2022): joint-modal label denoising (docs/methods/jomold.md).

Its three stages: the noise estimator (the row ESTIMATOR_ROW, trained like any row), the per-class noise ratios
of it (the stage `noise-ratios`, a per-seed file), and training on the weak labels denoised per batch by the model
being trained (the label source `jomold`: the per-batch rule DENOISE with those ratios). Also its contrast (an
extra loss), its release's selection rule, and `denoise-quality` (the removals scored as MA's refinement is).
Registrations only: nothing here imports torch.
"""

from __future__ import annotations

from avvp import paths
from avvp.registry import EXTRA_LOSSES, LABEL_SOURCES, SELECTION_RULES, STAGES
from avvp.stages import RunPass, SeedFile, seed_pass_args
from avvp.training import POSITIVE, settings
from avvp.training.label_sources import LabelSource, PerBatchRule, weak
from avvp.training.selection import Number, Rule

# Stage 1: the estimator, a row of config/variants.yaml (cross attention off, weights 1/1/1/1, its selection).
ESTIMATOR_ROW = "JoMoLD noise estimator"
SMOOTHING = {"type": "number", "minimum": 0, "exclusiveMaximum": 1}


def ratios_file(seed, results=paths.RESULTS):
    """Stage 2's per-class noise ratios of a seed (avvp/methods/jomold/denoise.py's format)."""
    return paths.seed_folder("jomold", seed, results) / "noise_ratios.json"


def quality_file(slug, seed, results=paths.RESULTS):
    """The removals of a `labels: jomold` run scored as MA's refinement (`avvp denoise-quality`)."""
    return paths.diagnostics_dir(results) / "denoise_quality" / f"{slug}-{paths.seed_name(seed)}.json"


EXTRA_LOSSES.register("jomold_contrast", "avvp.methods.jomold.losses:JOMOLD_CONTRAST", settings=settings(
    weight={"type": "number", "minimum": 0}, temperature=POSITIVE, smoothing=SMOOTHING))

# The release keeps the best VALIDATION event-level audio F, a tie keeping the later epoch, no early stop: its
# released preset, and the estimator's rule under both protocols.
SELECTION_RULES.register("val_audio_event", Rule(split="val", metric=Number("event", "audio"), later_wins_tie=True))

# Stage 3's per-batch rule (also CMPAE's): the ratios warmed up over each epoch, the loss-rank removals.
DENOISE = PerBatchRule(
    key="denoise", settings={
        "type": "object", "additionalProperties": False, "required": ["warmup", "warmup_epochs"], "properties": {
            "warmup": {"enum": ["released", "ramp"], "description": "released: nothing removed in epoch 1, the "
                       "full ratios from epoch 2; ramp: r min(1, t / (warmup_epochs I))"},
            "warmup_epochs": POSITIVE}},
    schedule="avvp.methods.jomold.denoise:schedule", apply="avvp.methods.jomold.denoise:denoise_batch")
LABEL_SOURCES.register("jomold", LabelSource(
    load=weak, files={"ratios": "noise-ratios"}, per_batch=DENOISE, values="avvp.methods.jomold.denoise:ratios_of",
    description="weak labels, denoised per batch with the noise ratios of JoMoLD's estimator"))


def _noise_ratios(p):
    seed_pass_args(p, run=f"the estimator's run folder (`avvp train --variant '{ESTIMATOR_ROW}'`)",
                   seed="seed of the pass's batch order (the row's seed)",
                   out="the ratios file to write (noise_ratios.json)")


def _denoise_quality(p):
    seed_pass_args(p, run="a trained `labels: jomold` run folder", out="the JSON file to write",
                   seed="seed of the pass's batch order and dropout masks")
    p.add_argument("--ratios", required=True, help="its noise_ratios.json")


STAGES.register("noise-ratios", SeedFile(
    command="noise-ratios", help="JoMoLD's stage 2: per-class noise ratios of a trained noise estimator",
    arguments=_noise_ratios, main="avvp.methods.jomold.noise_ratios:main", row=ESTIMATOR_ROW,
    files={"ratios": str(ratios_file("{seed}"))}, outputs=("ratios",), rebuildable={"ratios": ()}, out="ratios",
    out_file=True, minutes=(10, 30)))
STAGES.register("denoise-quality", RunPass(
    command="denoise-quality", help="JoMoLD's removals scored as MA's refinement (truth, annotations)",
    arguments=_denoise_quality, main="avvp.methods.jomold.denoise_quality:main",
    files={"quality": str(quality_file("{slug}", "{seed}"))}, outputs=("quality",), out="quality", out_file=True,
    seed=True, precision=True, label_files=("ratios",), target="denoise_diagnostics", minutes=(10, 30)))
