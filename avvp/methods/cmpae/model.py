"""CMPAE: cross-modal presence-absence evidence (Gao, Chen, Xu, CVPR 2023; docs/methods/cmpae.md#cmpae).

The row `CMPAE` is HAN's composition with the frame head `cmpae`, which replaces HAN's classifier AND its MMIL
pooling, so it comes with its own parser (registered as the head's `parser`, avvp/models/parser.py):

    inputs      HAN's projections, each followed by ELU (`input_act: elu`)                    -> x_a, x_v
    encoder     the row's HAN layers, run with cross attention on and off and mixed,
                z = ca_mix E_on(x) + (1 - ca_mix) E_off(x) (same weights, independent dropout); a pass with
                cross attention off is z = E_off(x); then dropout `visual_dropout` on z_v    -> z_a, z_v
    evidence    presence e+ = W+ z, absence e- = W- h with h_a = z_a + g_va(z_a + z_v),
                h_v = z_v + g_av(z_a + z_v); W+, W- shared by the modalities
    pooling     Linear(512 -> 25 x 2) on z, a softmax over time per modality, class and evidence type
                (no modality attention): E+ = sum_t w+ e+, E- = sum_t w- e-
    opinion     subjective logic: alpha = ev(E+) + 1, beta = ev(E-) + 1, p = alpha / (alpha + beta),
                u = 2 / (alpha + beta), ev(x) = exp(clip(x, -10, 10) / 0.8); per segment the same map
    global      g(t) = W2(phi(x_a(t)) + phi(x_v(t))) on the PRE-encoder features; p_g = mean_t sigmoid(g),
                U_g = 25 / sum_c (ev(mean_t g_c) + 1). p_g is `global_prob`.

In eval mode with `infer_fuse` f > 0 a forward runs both passes and returns f p_on + (1 - f) p_off for a_prob,
v_prob and frame_prob, so every gating (avvp/evaluation/gatings.py) scores the same fused probabilities.
Outputs beyond the model interface: u_a, u_v (B, 25) uncertainties and U_g (B,) the global branch's.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from avvp.constants import FRAMES_PER_SEGMENT, NUM_CLASSES, NUM_SEGMENTS
from avvp.errors import AvvpError
from avvp.models.inputs import D_MODEL, InputProjection, _check
from avvp.models.layers import Dropout, hybrid_pair
from avvp.models.mmil import probability
from avvp.registry import BACKBONES

EVIDENCE_CLIP = 10.0          # evidence logits are clipped to [-10, 10] before the exponential
EVIDENCE_TEMPERATURE = 0.8


def evidence(x: torch.Tensor) -> torch.Tensor:
    """ev(x) = exp(clip(x, -10, 10) / 0.8): non-negative evidence from a logit."""
    return torch.exp(x.clamp(-EVIDENCE_CLIP, EVIDENCE_CLIP) / EVIDENCE_TEMPERATURE)


def opinion(e_pos: torch.Tensor, e_neg: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Subjective logic's binomial opinion from presence and absence logits: (probability, uncertainty)."""
    alpha, beta = evidence(e_pos) + 1, evidence(e_neg) + 1
    strength = alpha + beta
    return alpha / strength, 2 / strength


class ActivatedInputs(InputProjection):
    """HAN's projections with ELU after each (audio, frames, motion, fusion).

    On 80 frames ELU acts per frame before the mean of each 8, as released. On the per-second means the trainer
    feeds (docs/protocol.md#han-inputs), ELU acts on the projection of the mean: the two no longer agree, since
    ELU is not affine; the harness trains and evaluates on the means (docs/methods/cmpae.md#cmpae).
    """

    def forward(self, audio: torch.Tensor, visual: torch.Tensor, motion: torch.Tensor):
        _check("audio", audio, (NUM_SEGMENTS,), self.fc_a.in_features)
        _check("visual", visual, (NUM_SEGMENTS, NUM_SEGMENTS * FRAMES_PER_SEGMENT), self.fc_v.in_features)
        _check("motion", motion, (NUM_SEGMENTS,), self.fc_st.in_features)
        f_v = F.elu(self.fc_v(visual))
        if f_v.shape[1] != NUM_SEGMENTS:
            b, _, d = f_v.shape
            f_v = f_v.view(b, NUM_SEGMENTS, FRAMES_PER_SEGMENT, d).mean(2)
        f_v = F.elu(self.fc_fusion(torch.cat([f_v, F.elu(self.fc_st(motion))], dim=-1)))
        return F.elu(self.fc_a(audio)), f_v


def _absence_mix(d: int, dropout: float) -> nn.Sequential:
    return nn.Sequential(nn.Linear(d, d), Dropout(dropout), nn.LeakyReLU(0.2))


class EvidenceHead(nn.Module):
    """Presence and absence evidence per segment and their time-softmax pooling (no modality attention)."""

    def __init__(self, d: int = D_MODEL, n_classes: int = NUM_CLASSES, absence_dropout: float = 0.2):
        super().__init__()
        self.fc_presence = nn.Linear(d, n_classes)     # W+
        self.fc_absence = nn.Linear(d, n_classes)      # W-
        self.mix_va = _absence_mix(d, absence_dropout)  # g_va: the audio's absence context
        self.mix_av = _absence_mix(d, absence_dropout)  # g_av: the visual's
        self.fc_att = nn.Linear(d, 2 * n_classes)      # class-major: (presence, absence) of class 0, then 1, ...

    def forward(self, z_a: torch.Tensor, z_v: torch.Tensor) -> dict:
        """z_a, z_v (B, T, d), z_v after its dropout -> probabilities, uncertainties and segment opinions."""
        z = torch.stack([z_a, z_v], dim=2)                                      # (B, T, 2, d)
        both = z_a + z_v
        h = z + torch.stack([self.mix_va(both), self.mix_av(both)], dim=2)
        e_pos, e_neg = self.fc_presence(z), self.fc_absence(h)                 # (B, T, 2, C)
        b, t, m, _ = z.shape
        att_logit = self.fc_att(z).view(b, t, m, -1, 2)
        w = torch.softmax(att_logit, dim=1)                                    # over the T segments
        p, u = opinion((w[..., 0] * e_pos).sum(1), (w[..., 1] * e_neg).sum(1))  # (B, 2, C)
        frame_prob, _ = opinion(e_pos, e_neg)
        return {"a_prob": p[:, 0], "v_prob": p[:, 1], "u_a": u[:, 0], "u_v": u[:, 1],
                "frame_prob": frame_prob, "frame_att_logit": att_logit[..., 0]}


class GlobalBranch(nn.Module):
    """The mutual-learning branch on the pre-encoder features: p_g (B, C) and its uncertainty U_g (B,)."""

    def __init__(self, d: int = D_MODEL, n_classes: int = NUM_CLASSES):
        super().__init__()
        self.phi = nn.Linear(d, d)                     # shared by the modalities
        self.fc = nn.Linear(d, n_classes)              # W2

    def forward(self, x_a: torch.Tensor, x_v: torch.Tensor) -> dict:
        g = self.fc(F.leaky_relu(self.phi(x_a), 0.2) + F.leaky_relu(self.phi(x_v), 0.2))   # (B, T, C)
        u_g = g.shape[-1] / (evidence(g.mean(1)) + 1).sum(-1)
        # The sigmoid in float32 (`probability`): in bf16 a logit above ~6.2 gives exactly 1.0, and the clamped BCE
        # and JML would have no gradient there.
        return {"global_prob": probability(g).mean(1), "U_g": u_g}


FUSED = ("a_prob", "v_prob", "frame_prob")


class CMPAEParser(nn.Module):
    """CMPAE on the row's HAN backbone: forward(audio, visual, motion, cross=None) -> the interface's dict."""

    def __init__(self, backbone: nn.Module, spec: dict, d: int = D_MODEL):
        super().__init__()
        self.ca_mix, self.infer_fuse = float(spec["ca_mix"]), float(spec["infer_fuse"])
        self.backbone = backbone
        self.evidence = EvidenceHead(d, absence_dropout=float(spec["absence_dropout"]))
        self.global_branch = GlobalBranch(d)
        self.visual_drop = Dropout(float(spec.get("visual_dropout", 0.0)))   # the parser's switch (0.5 in CMPAE)
        self.inputs = ActivatedInputs(d=d) if spec["input_act"] == "elu" else InputProjection(d=d)

    def encode(self, x_a: torch.Tensor, x_v: torch.Tensor, cross: bool):
        """The HAN layers with cross attention on or off (the same weights; the row's stacking)."""
        z_a, z_v = x_a, x_v
        for layer in self.backbone.layers:
            if self.backbone.stacking == "released":
                z_a, z_v = hybrid_pair(layer, x_a, x_v, cross=cross)
            else:
                z_a, z_v = hybrid_pair(layer, z_a, z_v, cross=cross)
        return z_a, z_v

    def one_pass(self, x_a: torch.Tensor, x_v: torch.Tensor, ca: bool) -> dict:
        if ca:
            on = self.encode(x_a, x_v, True)
            if self.ca_mix < 1:
                off = self.encode(x_a, x_v, False)
                on = tuple(self.ca_mix * z1 + (1 - self.ca_mix) * z0 for z1, z0 in zip(on, off))
            z_a, z_v = on
        else:
            z_a, z_v = self.encode(x_a, x_v, False)
        out = self.evidence(z_a, self.visual_drop(z_v))
        out.update(x_a=z_a, x_v=z_v)
        return out

    def forward(self, audio: torch.Tensor, visual: torch.Tensor, motion: torch.Tensor,
                cross: bool | None = None) -> dict:
        """`cross`: cross attention for this call (None: on). On, the encoder mixes both passes; in eval mode
        the on and off passes are also fused (`infer_fuse`)."""
        ca = cross is None or cross
        x_a, x_v = self.inputs(audio, visual, motion)
        out = self.one_pass(x_a, x_v, ca)
        if ca and not self.training and self.infer_fuse < 1:
            off = self.one_pass(x_a, x_v, False)
            out.update({k: self.infer_fuse * out[k] + (1 - self.infer_fuse) * off[k] for k in FUSED})
        out.update(self.global_branch(x_a, x_v), v_in=x_v)
        return out


def build(spec: dict, d: int):
    raise AvvpError("head 'cmpae' replaces the MMIL pooling too: it is built with its parser (build_parser)")


def build_parser(spec: dict) -> CMPAEParser:
    """The CMPAE parser of a normalised spec; its encoder is a HAN backbone (the only one with the switch)."""
    if spec["backbone"] != "han":
        raise AvvpError(f"model spec: head 'cmpae' needs backbone 'han' (got '{spec['backbone']}')")
    return CMPAEParser(BACKBONES.get("han")(spec, D_MODEL), spec)
