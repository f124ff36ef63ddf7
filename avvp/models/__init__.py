"""Every model of the paper as one composition: input projections -> temporal backbone -> frame head -> MMIL.

`build(spec)` takes a row's model spec (avvp.variants: switches plus the recipe's `dropout`) and returns the
parser of avvp/models/parser.py, whose forward(audio (B,10,128), visual (B,10|80,2048), motion (B,10,512)) gives
the dict of ARCHITECTURE.md "Model interface".

Backbones and frame heads are registries (avvp.registry, timm style). An entry is a builder `build(spec, d)` in
its own module, registered below by its import path with the switches it reads: per switch a JSON-schema
fragment with its default. So this file needs no torch, and the spec's checks (`normalise`) and the variants
sheet's schema (`spec_schema`) both come from the registrations: a new backbone or head is its module plus one
registration. Every backbone maps (f_a, f_v) -> (x_a, x_v), (B, T, d) each; every frame head maps
(x_a, x_v[, x]) -> frame_prob (B, T, 2, C), where x, optional, is stack([x_a, x_v], dim=2) already made.
"""

from __future__ import annotations

from avvp import schema
from avvp.registry import Registry

BACKBONES = Registry("backbone")
FRAME_HEADS = Registry("frame head")
schema.known(BACKBONES, FRAME_HEADS)

BACKBONES.register("han", "avvp.models.han:build", switches={
    "layers": {"type": "integer", "minimum": 1, "maximum": 3, "default": 1,
               "description": "hybrid attention layers"},
    "stacking": {"enum": ["chained", "released"], "default": "chained",
                 "description": "released: every layer reads the original inputs, as the released code"},
    # JoMoLD's switch (docs/protocol.md#jomold); a forward call may still turn it off (`cross=False`).
    "cross_attention": {"enum": ["on", "off"], "default": "on", "x-omit-default": True,
                        "description": "off: self-attention and feed-forward only, same weights"}})
BACKBONES.register("ave", "avvp.models.ave:build")
BACKBONES.register("avsdn", "avvp.models.avsdn:build")
BACKBONES.register("mmpyr", "avvp.models.mmpyr:build", switches={
    "levels": {"type": "integer", "minimum": 1, "maximum": 4, "default": 4,
               "description": "pyramid levels; level i attends within +-2^i segments"},
    "stream_order": {"enum": ["released", "fixed"], "default": "released",
                     "description": "released: the head's audio index holds the visual-rooted stream, as released"},
    "init": {"enum": ["released", "independent"], "default": "released",
             "description": "released: the release's copied initial weights (equal projections and blocks)"}})
FRAME_HEADS.register("mmil", "avvp.models.mmil:build")
FRAME_HEADS.register("cmco", "avvp.models.cmco:build", switches={
    "cmco_mode": {"enum": ["cm", "av", "a_only", "v_only"], "default": "cm",
                  "description": "Table 3's ablations (our reading of the paper)"}})
# CMPAE's head replaces the MMIL pooling as well, so it brings its own parser (docs/protocol.md#cmpae).
FRAME_HEADS.register("cmpae", "avvp.models.cmpae:build", parser="avvp.models.cmpae:build_parser", switches={
    "input_act": {"enum": ["elu", "none"], "default": "elu", "description": "ELU after each input projection"},
    "ca_mix": {"type": "number", "exclusiveMinimum": 0, "maximum": 1, "default": 0.8,
               "description": "z = ca_mix E_on + (1 - ca_mix) E_off when cross attention is on (1: E_on)"},
    "infer_fuse": {"type": "number", "exclusiveMinimum": 0, "maximum": 1, "default": 0.7,
                   "description": "eval: p = f p_on + (1 - f) p_off (1: the cross-attention pass alone)"},
    "absence_dropout": {"type": "number", "minimum": 0, "exclusiveMaximum": 1, "default": 0.2,
                        "description": "dropout inside the absence evidence's cross-modal mix"}})

# The parser's own switches, around those of its backbone and head. `dropout` is the recipe's.
CHOICE = {"backbone": (BACKBONES, "han"), "head": (FRAME_HEADS, "mmil")}
DROPOUT = {"type": "number", "minimum": 0, "exclusiveMaximum": 1, "default": 0.1}
# Dropout on the backbone's visual output before the heads (JoMoLD, docs/protocol.md#jomold). A switch marked
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
