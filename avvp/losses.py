"""The training losses: HAN's MMIL BCE, MA's temporal contrast, and the paper's CM-S.

Each function takes whatever batch it is given and computes in float32 (also under bf16 autocast): building targets (label smoothing, refined labels) and
CM-S's batch doubling (each video's visual track paired with another video's audio) are the trainer's job.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

EPS = 1e-7


def _bce(p: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    # In float32 and outside autocast: 1 - 1e-7 rounds to 1 in bf16, and CUDA autocast refuses this op.
    with torch.autocast(p.device.type, enabled=False):
        return F.binary_cross_entropy(p.float().clamp(EPS, 1 - EPS), y.float())


def mmil_bce(out: dict, target_audio: torch.Tensor, target_visual: torch.Tensor,
             target_global: torch.Tensor) -> torch.Tensor:
    """HAN's weakly-supervised loss (SPEC 3; the BCE on Eq. 3's pooled predictions, also Eq. 6's).

    BCE(a_prob, target_audio) + BCE(v_prob, target_visual) + BCE(global_prob, target_global), each the mean
    over videos and classes, with probabilities clamped to [1e-7, 1 - 1e-7]. Targets are (B, 25) floats.
    """
    return (_bce(out["a_prob"], target_audio) + _bce(out["v_prob"], target_visual)
            + _bce(out["global_prob"], target_global))


def ma_contrast(x_a: torch.Tensor, v_in: torch.Tensor, temperature: float = 0.2,
                smoothing: float = 0.1) -> torch.Tensor:
    """MA's temporal contrastive term (Wu & Yang, CVPR 2021; SPEC 4; not an equation of this paper).

    Within each video, audio segment t after the temporal layer (x_a, (B, T, d)) is scored against every
    fused visual segment s before it (v_in, (B, T, d)) by cosine similarity / temperature; cross-entropy
    over the T segments with target s = t and label smoothing, averaged over videos and segments.
    """
    b, t, _ = x_a.shape
    x_a, v_in = x_a.float(), v_in.float()
    logits = torch.bmm(F.normalize(x_a, dim=-1), F.normalize(v_in, dim=-1).transpose(1, 2)) / temperature
    target = torch.arange(t, device=x_a.device).repeat(b)
    return F.cross_entropy(logits.reshape(b * t, t), target, label_smoothing=smoothing)


def attentive_pool(x: torch.Tensor, att_logit: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Eq. 7: a video's feature pooled over time with weights softmax_t(sum_c att_logit[t, c] * y[c]).

    x: (B, T, d); att_logit: (B, T, C) pre-softmax MMIL temporal attention; y: (B, C) labels.
    Returns the L2-normalised pooled features (B, d).
    """
    w = torch.softmax(torch.einsum("btc,bc->bt", att_logit, y.to(att_logit.dtype)), dim=1)
    return F.normalize(torch.einsum("bt,btd->bd", w, x), dim=-1)


def cms_loss(x_a: torch.Tensor, x_v: torch.Tensor, att_logit_a: torch.Tensor, att_logit_v: torch.Tensor,
             y_a: torch.Tensor, y_v: torch.Tensor, tau: float = 1.0) -> torch.Tensor:
    """CM-S, shared cross-modality semantics across videos (Section 3.3, Eqs. 7-8; SPEC 5).

    Audio of video i and visual of video j are pooled by Eq. 7 (with i's audio labels y_a and j's visual
    labels y_v), s_ij = a_i . v_j / tau over all pairs of the batch; j is a positive of anchor i when the
    audio labels of i and the visual labels of j share a class. Loss = mean over anchors with at least one
    positive of the average over its positives of -log softmax_j(s_i).

    Eq. 8 as printed takes -log of the SUMMED softmax mass of the positives; the released code (SPEC 5)
    averages -log softmax over the positives, and we follow the code. A batch where no anchor has a
    positive gives 0 (still attached to the graph).
    """
    a = attentive_pool(x_a.float(), att_logit_a.float(), y_a)
    v = attentive_pool(x_v.float(), att_logit_v.float(), y_v)
    log_p = torch.log_softmax(a @ v.T / tau, dim=1)
    positive = ((y_a.float() @ y_v.float().T) > 0).to(log_p.dtype)        # (B, B)
    n_pos = positive.sum(dim=1)
    has_pos = (n_pos > 0).to(log_p.dtype)
    # Written without a data-dependent branch (no device sync); clamps only guard the 0/0 cases.
    per_anchor = -(log_p * positive).sum(dim=1) / n_pos.clamp(min=1)
    return (per_anchor * has_pos).sum() / has_pos.sum().clamp(min=1)
