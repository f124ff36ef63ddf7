"""Every model as one composition: input projections -> temporal backbone -> frame head -> MMIL.

`build(spec)` takes a row's model spec (avvp.variants: switches plus the recipe's `dropout`) and returns the
parser of avvp/models/parser.py, whose forward(audio (B,10,128), visual (B,10|80,2048), motion (B,10,512)) gives
the dict of ARCHITECTURE.md "Model interface".

Backbones and frame heads are registries (avvp/registry.py, timm style). An entry is a builder `build(spec, d)` in
its own module, registered by its import path with the switches it reads: per switch a JSON-schema fragment with
its default. The baselines' are registered below; a method's in its folder (avvp/methods/<paper>/). So this file needs no torch, and the spec's checks (`normalise`) and the variants
sheet's schema (`spec_schema`) both come from the registrations: a new backbone or head is its module plus one
registration. Every backbone maps (f_a, f_v) -> (x_a, x_v), (B, T, d) each; every frame head maps
(x_a, x_v[, x]) -> frame_prob (B, T, 2, C), where x, optional, is stack([x_a, x_v], dim=2) already made.
"""

from __future__ import annotations

from avvp import schema
from avvp.registry import BACKBONES, FRAME_HEADS

BACKBONES.register("han", "avvp.models.han:build", switches={
    "layers": {"type": "integer", "minimum": 1, "maximum": 3, "default": 1,
               "description": "hybrid attention layers"},
    "stacking": {"enum": ["chained", "released"], "default": "chained",
                 "description": "released: every layer reads the original inputs, as the released code"},
    # Off: the layer without its cross-modal attention (a forward call may turn it off too, `cross=False`).
    "cross_attention": {"enum": ["on", "off"], "default": "on", "x-omit-default": True,
                        "description": "off: self-attention and feed-forward only, same weights"}})
BACKBONES.register("ave", "avvp.models.ave:build")
BACKBONES.register("avsdn", "avvp.models.avsdn:build")
FRAME_HEADS.register("mmil", "avvp.models.mmil:build")

# The parser's own switches, around those of its backbone and head. `dropout` is the recipe's.
CHOICE = {"backbone": (BACKBONES, "han"), "head": (FRAME_HEADS, "mmil")}
DROPOUT = {"type": "number", "minimum": 0, "exclusiveMaximum": 1, "default": 0.1}
# Dropout on the backbone's visual output before the heads (JoMoLD, docs/methods/jomold.md#jomold). A switch marked
# `x-omit-default` is left out of a normalised spec while it holds its default, so the specs (and job keys) of
# the rows that existed before it are unchanged.
VISUAL_DROPOUT = {"type": "number", "minimum": 0, "exclusiveMaximum": 1, "default": 0.0, "x-omit-default": True,
                  "description": "dropout on the post-backbone visual features feeding the heads"}


def switches(spec: dict) -> dict[str, dict]:
    """Every switch a spec with this backbone and head holds, in order, as name -> schema fragment."""
    out = {}
    for key, (registry, default) in CHOICE.items():
        name = spec.get(key, default)
        out[key] = {"type": "string", "x-choices": registry.plural, "default": default}
        out.update(registry.meta(name).get("switches", {}) if name in registry else {})
    return {**out, "visual_dropout": VISUAL_DROPOUT, "dropout": DROPOUT}


def spec_schema(dropout: bool = True) -> dict:
    """The JSON schema of a model spec: each backbone's and head's switches allowed only beside it.
    Without `dropout` it is a sheet row's `model` (whose dropout is the recipe's)."""
    branches = [{"if": {"properties": {key: {"const": name}}, "required": [key]},
                 "then": {"properties": registry.meta(name).get("switches", {})}}
                for key, (registry, _) in CHOICE.items() for name in registry.names()]
    properties = {key: {"type": "string", "x-choices": registry.plural} for key, (registry, _) in CHOICE.items()}
    properties["visual_dropout"] = VISUAL_DROPOUT
    if dropout:
        properties["dropout"] = DROPOUT
    return {"type": "object", "properties": properties, "allOf": branches, "unevaluatedProperties": False}


def normalise(spec: dict) -> dict:
    """The spec with every switch of its backbone and head, defaults filled in; an AvvpError (one line) names
    any unknown switch or value."""
    spec = {**{key: default for key, (_, default) in CHOICE.items()}, **spec}
    schema.check(spec, spec_schema(), lambda path: "model spec" + "".join(f": {key}" for key in path))
    return {key: spec.get(key, fragment["default"]) for key, fragment in switches(spec).items()
            if not (fragment.get("x-omit-default") and spec.get(key, fragment["default"]) == fragment["default"])}


def build(spec: dict):
    """The parser of `spec` (avvp.models.parser.Parser, an nn.Module)."""
    from avvp.models.parser import build_parser

    return build_parser(normalise(spec))


__all__ = ["BACKBONES", "FRAME_HEADS", "build", "normalise", "spec_schema", "switches"]
