"""CM-S, the paper's shared cross-modality semantics across videos (Section 3.3, Eqs. 7-8; docs/methods/cvcms.md#cm-s):
its loss, the cross-video batch augmentation it trains on, and its extra-loss entry."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from avvp.training.losses import Batch, ExtraLoss


def attentive_pool(x: torch.Tensor, att_logit: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Eq. 7: a video's feature pooled over time with weights softmax_t(sum_c att_logit[t, c] * y[c]).

    x: (B, T, d); att_logit: (B, T, C) pre-softmax MMIL temporal attention; y: (B, C) labels.
    Returns the L2-normalised pooled features (B, d).
    """
    w = torch.softmax(torch.einsum("btc,bc->bt", att_logit, y.to(att_logit.dtype)), dim=1)
    return F.normalize(torch.einsum("bt,btd->bd", w, x), dim=-1)


def cms_loss(x_a: torch.Tensor, x_v: torch.Tensor, att_logit_a: torch.Tensor, att_logit_v: torch.Tensor,
             y_a: torch.Tensor, y_v: torch.Tensor, tau: float = 1.0) -> torch.Tensor:
    """CM-S, shared cross-modality semantics across videos (Section 3.3, Eqs. 7-8; docs/methods/cvcms.md#cm-s).

    Audio of video i and visual of video j are pooled by Eq. 7 (with i's audio labels y_a and j's visual
    labels y_v), s_ij = a_i . v_j / tau over all pairs of the batch; j is a positive of anchor i when the
    audio labels of i and the visual labels of j share a class. Loss = mean over ALL anchors of the average
    over its positives of -log softmax_j(s_i), an anchor with no positive counting 0 (as released).

    Eq. 8 as printed takes -log of the SUMMED softmax mass of the positives; the released code
    (docs/methods/cvcms.md#cm-s) averages -log softmax over the positives, and we follow the code. A batch where no anchor has a
    positive gives 0 (still attached to the graph).
    """
    a = attentive_pool(x_a.float(), att_logit_a.float(), y_a)
    v = attentive_pool(x_v.float(), att_logit_v.float(), y_v)
    log_p = torch.log_softmax(a @ v.T / tau, dim=1)
    positive = ((y_a.float() @ y_v.float().T) > 0).to(log_p.dtype)        # (B, B)
    n_pos = positive.sum(dim=1)
    # Written without a data-dependent branch (no device sync); an anchor without a positive has a zero
    # numerator, and the clamp only guards its 0/0. The mean is over every anchor, as released.
    per_anchor = -(log_p * positive).sum(dim=1) / n_pos.clamp(min=1)
    return per_anchor.mean()


def cms_partners(n: int, gen: torch.Generator, device) -> torch.Tensor:
    """Each video's CM-S partner (docs/methods/cvcms.md#cm-s, as released): j = (i + k) mod n with k uniform in
    1..n-1, drawn independently per video, so j is uniform among the OTHER videos (with replacement) and never i.

    Drawn on `device` so that a CUDA-graphed step draws on the device (no host RNG, no copy): on CPU from `gen`
    (the run's host generator), on a GPU always from the device's default generator (seeded by the run's
    torch.manual_seed), the one torch.cuda.graph registers with a capture: a non-default device generator would
    not be, and every replay would draw the captured numbers again. A one-video batch (an epoch's last, at
    worst) has no other video: its partner is itself.
    """
    device = torch.device(device)
    own = gen if device.type == "cpu" and gen.device.type == "cpu" else None
    k = torch.randint(1, max(n, 2), (n,), generator=own, device=device)
    return (torch.arange(n, device=device) + k) % n


def cms_augment(batch: Batch, gen: torch.Generator) -> Batch:
    """CM-S batch augmentation (docs/methods/cvcms.md#cm-s): rows n..2n pair video i's audio with its partner j's
    visual (and motion) track, with i's audio labels and j's visual labels; only rows < n get the BCE losses."""
    j = cms_partners(batch.n, gen, batch.audio.device)
    return Batch(audio=torch.cat([batch.audio, batch.audio]), visual=torch.cat([batch.visual, batch.visual[j]]),
                 motion=torch.cat([batch.motion, batch.motion[j]]), y=batch.y,
                 y_a=torch.cat([batch.y_a, batch.y_a]), y_v=torch.cat([batch.y_v, batch.y_v[j]]),
                 step=batch.step)


def _cms_term(out: dict, first: dict, batch: Batch, cfg: dict) -> torch.Tensor:
    att = out["frame_att_logit"]
    return cfg["weight"] * cms_loss(out["x_a"], out["x_v"], att[:, :, 0], att[:, :, 1], batch.y_a, batch.y_v,
                                    cfg["tau"])


CMS = ExtraLoss(term=_cms_term, augment=cms_augment)
