"""The training losses: HAN's MMIL BCE, MA's temporal contrast, the paper's CM-S, JoMoLD's contrast.

Each loss function takes whatever tensors it is given and computes in float32 (also under bf16 autocast);
building targets (label smoothing, refined labels) is the trainer's job. The extra terms a row may add beside
the BCE are a registry by name, `avvp.training.EXTRA_LOSSES` (config/variants.yaml `losses`): each reads its
settings from the recipe key of its name, may augment the batch before the forward (CM-S pairs each video's
audio with another video's visual track), and is active from the recipe's `start_epoch` (1 when absent).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch
import torch.nn.functional as F

from avvp.errors import AvvpError
from avvp.training import EXTRA_LOSSES

EPS = 1e-7


def _bce(p: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    # In float32 and outside autocast: 1 - 1e-7 rounds to 1 in bf16, and CUDA autocast refuses this op.
    with torch.autocast(p.device.type, enabled=False):
        return F.binary_cross_entropy(p.float().clamp(EPS, 1 - EPS), y.float())


def mmil_bce(out: dict, target_audio: torch.Tensor, target_visual: torch.Tensor,
             target_global: torch.Tensor, weights: dict | None = None) -> torch.Tensor:
    """HAN's weakly-supervised loss (docs/protocol.md#han-recipe; the BCE on Eq. 3's pooled predictions, also Eq. 6's).

    BCE(a_prob, target_audio) + BCE(v_prob, target_visual) + BCE(global_prob, target_global), each the mean
    over videos and classes, with probabilities clamped to [1e-7, 1 - 1e-7]. Targets are (B, 25) floats.
    `weights` (the recipe's `loss_weights`: audio, visual, global; JoMoLD's 2/1/1) scale the three terms;
    without them the sum is unweighted (and computed exactly as before the option existed).
    """
    if weights is None:
        return (_bce(out["a_prob"], target_audio) + _bce(out["v_prob"], target_visual)
                + _bce(out["global_prob"], target_global))
    return (weights["audio"] * _bce(out["a_prob"], target_audio) + weights["visual"] * _bce(out["v_prob"], target_visual)
            + weights["global"] * _bce(out["global_prob"], target_global))


def ma_contrast(x_a: torch.Tensor, v_in: torch.Tensor, temperature: float = 0.2,
                smoothing: float = 0.1) -> torch.Tensor:
    """MA's temporal contrastive term (Wu & Yang, CVPR 2021; not an equation of this paper;
    docs/protocol.md#ma-contrast).

    Within each video, audio segment t after the temporal layer (x_a, (B, T, d)) is scored against every
    fused visual segment s before it (v_in, (B, T, d)) by cosine similarity / temperature; a soft-target
    cross-entropy over the T segments, averaged over videos and segments.

    The soft target smooths as MA's code does: 1 - smoothing on s = t and smoothing / (T - 1) on each other
    segment (0.9 and 0.1/9 for T = 10). PyTorch's `label_smoothing` would spread the mass over all T segments
    (0.91 and 0.01), so the target is built explicitly.
    """
    b, t, _ = x_a.shape
    x_a, v_in = x_a.float(), v_in.float()
    logits = torch.bmm(F.normalize(x_a, dim=-1), F.normalize(v_in, dim=-1).transpose(1, 2)) / temperature
    eye = torch.eye(t, device=x_a.device)
    soft = eye * (1 - smoothing) + (1 - eye) * (smoothing / (t - 1))
    return -(soft * torch.log_softmax(logits, dim=-1)).sum(dim=-1).mean()


def jomold_contrast(x_a: torch.Tensor, x_v: torch.Tensor, temperature: float = 0.2,
                    smoothing: float = 0.1) -> torch.Tensor:
    """JoMoLD's temporal contrast (docs/protocol.md#jomold): post-HAN audio against post-HAN visual segments.

    Per video s(t, u) = cos(x_a(t), x_v(u)) / temperature, p_t = softmax_u s(t, .), q_t = 1 - smoothing on
    u = t and smoothing / (T - 1) elsewhere, and the loss is -mean over (video, t) of log(sum_u q_t(u) p_t(u)):
    the log of an expected probability (an NCE form), not MA's cross-entropy -sum_u q_t(u) log p_t(u).
    Computed as a logsumexp of log q + log p, so a tiny p never underflows to log 0.
    """
    b, t, _ = x_a.shape
    x_a, x_v = x_a.float(), x_v.float()
    logits = torch.bmm(F.normalize(x_a, dim=-1), F.normalize(x_v, dim=-1).transpose(1, 2)) / temperature
    eye = torch.eye(t, device=x_a.device)
    soft = eye * (1 - smoothing) + (1 - eye) * (smoothing / (t - 1))
    return -torch.logsumexp(torch.log(soft) + torch.log_softmax(logits, dim=-1), dim=-1).mean()


def jml_loss(out: dict, y: torch.Tensor, odd: bool | torch.Tensor, lam: float = 1.0,
             floor: float = 0.9) -> torch.Tensor:
    """CMPAE's joint-modal mutual learning (docs/protocol.md#cmpae-losses), averaged over videos x classes.

    With U = max(U_g, floor) per video, p_max = max(p_a, p_v) and u_max the uncertainty of that modality (audio
    on a tie), p_mean and u_mean the modalities' means, and the raw weak labels y:
      odd steps, the global branch learns:   U (1-u_max) (p_g - sg(p_max))^2 y + lam U (1-u_mean) (p_g - sg(p_mean))^2 (1-y)
      even steps, the modalities learn:  (1-U) (1-u_max) (sg(p_g) - p_max)^2 y + lam (1-U) (1-u_mean) (...)^2 (1-y)
    Only the probabilities inside sg() are detached: U, u_max and u_mean keep their gradients, as released.
    `odd`: a bool, or a bool tensor (the trainer's step derives it from its device-side step count).
    """
    p_a, p_v, u_a, u_v, p_g = (out[k].float() for k in ("a_prob", "v_prob", "u_a", "u_v", "global_prob"))
    y = y.float()
    u = out["U_g"].float().clamp(min=floor).unsqueeze(1)            # max(U_g, floor): no gradient below it
    audio_wins = p_a >= p_v
    p_max, u_max = torch.where(audio_wins, p_a, p_v), torch.where(audio_wins, u_a, u_v)
    p_mean, u_mean = (p_a + p_v) / 2, (u_a + u_v) / 2

    def half(global_learns: bool) -> torch.Tensor:
        if global_learns:
            weight, g, p_top, p_avg = u, p_g, p_max.detach(), p_mean.detach()
        else:
            weight, g, p_top, p_avg = 1 - u, p_g.detach(), p_max, p_mean
        present = weight * (1 - u_max) * (g - p_top) ** 2 * y
        absent = lam * weight * (1 - u_mean) * (g - p_avg) ** 2 * (1 - y)
        return (present + absent).mean()
    if isinstance(odd, bool):
        return half(odd)
    # Inside a (CUDA-graphed) step the parity is a device tensor: a Python branch on it would freeze the captured
    # step's first parity. Both halves are computed and one kept; the other's gradient is exactly 0.
    return torch.where(odd, half(True), half(False))


def attentive_pool(x: torch.Tensor, att_logit: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Eq. 7: a video's feature pooled over time with weights softmax_t(sum_c att_logit[t, c] * y[c]).

    x: (B, T, d); att_logit: (B, T, C) pre-softmax MMIL temporal attention; y: (B, C) labels.
    Returns the L2-normalised pooled features (B, d).
    """
    w = torch.softmax(torch.einsum("btc,bc->bt", att_logit, y.to(att_logit.dtype)), dim=1)
    return F.normalize(torch.einsum("bt,btd->bd", w, x), dim=-1)


def cms_loss(x_a: torch.Tensor, x_v: torch.Tensor, att_logit_a: torch.Tensor, att_logit_v: torch.Tensor,
             y_a: torch.Tensor, y_v: torch.Tensor, tau: float = 1.0) -> torch.Tensor:
    """CM-S, shared cross-modality semantics across videos (Section 3.3, Eqs. 7-8; docs/protocol.md#cm-s).

    Audio of video i and visual of video j are pooled by Eq. 7 (with i's audio labels y_a and j's visual
    labels y_v), s_ij = a_i . v_j / tau over all pairs of the batch; j is a positive of anchor i when the
    audio labels of i and the visual labels of j share a class. Loss = mean over ALL anchors of the average
    over its positives of -log softmax_j(s_i), an anchor with no positive counting 0 (as released).

    Eq. 8 as printed takes -log of the SUMMED softmax mass of the positives; the released code (docs/protocol.md#cm-s)
    averages -log softmax over the positives, and we follow the code. A batch where no anchor has a
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


@dataclass(frozen=True)
class Batch:
    """One training batch. Rows [0, n) are real videos, n = len(y); an augmentation may append rows (CM-S's
    mixed pairs) that carry audio and visual labels only, so the weak labels `y` cover the real videos."""
    audio: torch.Tensor
    visual: torch.Tensor
    motion: torch.Tensor
    y: torch.Tensor          # weak video-level labels (n, C)
    y_a: torch.Tensor        # audio label source (weak or refined), one row per batch row
    y_v: torch.Tensor        # visual label source
    ratios: torch.Tensor | None = None   # (2, C) audio and visual noise ratios in force (labels: jomold)
    # The batch's index within its epoch, from 0 (CMPAE's mutual learning alternates on it): an int, or inside the
    # trainer's step a 0-dim int64 tensor on the batch's device (the step counts itself; avvp.training.train).
    step: int | torch.Tensor = 0

    @property
    def n(self) -> int:
        return self.y.shape[0]


@dataclass(frozen=True)
class ExtraLoss:
    """An extra loss term: `term(out, first, batch, cfg)` is the weighted term, from the model's outputs on
    every row (`out`) or on the real videos only (`first`, rows < n); `augment(batch, gen)` (optional) reshapes
    the batch before the forward; `cfg` is the recipe's entry of the loss's name."""
    term: Callable[[dict, dict, Batch, dict], torch.Tensor]
    augment: Callable[[Batch, torch.Generator], Batch] | None = None
    reads_step: bool = False   # the term reads Batch.step (the trainer then counts its steps on the device)


def _ma_contrast_term(out: dict, first: dict, batch: Batch, cfg: dict) -> torch.Tensor:
    return cfg["weight"] * ma_contrast(first["x_a"], first["v_in"], cfg["temperature"], cfg["smoothing"])


def _jomold_contrast_term(out: dict, first: dict, batch: Batch, cfg: dict) -> torch.Tensor:
    # x_v is the backbone's output, before the visual dropout that feeds the heads (docs/protocol.md#jomold).
    return cfg["weight"] * jomold_contrast(first["x_a"], first["x_v"], cfg["temperature"], cfg["smoothing"])


def _jml_term(out: dict, first: dict, batch: Batch, cfg: dict) -> torch.Tensor:
    if "U_g" not in first:
        raise AvvpError("loss 'jml' needs the uncertainties of head 'cmpae' (u_a, u_v, U_g); this row's head has none")
    return cfg["weight"] * jml_loss(first, batch.y, batch.step % 2 == 1, cfg["lambda"], cfg["floor"])


def cms_partners(n: int, gen: torch.Generator, device) -> torch.Tensor:
    """Each video's CM-S partner (docs/protocol.md#cm-s, as released): j = (i + k) mod n with k uniform in 1..n-1, drawn
    independently per video, so j is uniform among the OTHER videos (with replacement) and never i.

    Drawn on `device` so that a CUDA-graphed step draws on the device (no host RNG, no copy): from `gen` when
    it lives there, else from the device's default generator (seeded by the run's torch.manual_seed). A
    one-video batch (an epoch's last, at worst) has no other video: its partner is itself.
    """
    device = torch.device(device)
    own = gen if gen.device.type == device.type else None
    k = torch.randint(1, max(n, 2), (n,), generator=own, device=device)
    return (torch.arange(n, device=device) + k) % n


def cms_augment(batch: Batch, gen: torch.Generator) -> Batch:
    """CM-S batch augmentation (docs/protocol.md#cm-s): rows n..2n pair video i's audio with its partner j's visual (and
    motion) track, with i's audio labels and j's visual labels; only rows < n get the BCE losses."""
    j = cms_partners(batch.n, gen, batch.audio.device)
    return Batch(audio=torch.cat([batch.audio, batch.audio]), visual=torch.cat([batch.visual, batch.visual[j]]),
                 motion=torch.cat([batch.motion, batch.motion[j]]), y=batch.y,
                 y_a=torch.cat([batch.y_a, batch.y_a]), y_v=torch.cat([batch.y_v, batch.y_v[j]]),
                 step=batch.step)


def _cms_term(out: dict, first: dict, batch: Batch, cfg: dict) -> torch.Tensor:
    att = out["frame_att_logit"]
    return cfg["weight"] * cms_loss(out["x_a"], out["x_v"], att[:, :, 0], att[:, :, 1], batch.y_a, batch.y_v,
                                    cfg["tau"])


# The entries of avvp.training.EXTRA_LOSSES (registered there by these names).
MA_CONTRAST = ExtraLoss(term=_ma_contrast_term)
CMS = ExtraLoss(term=_cms_term, augment=cms_augment)
JOMOLD_CONTRAST = ExtraLoss(term=_jomold_contrast_term)
JML = ExtraLoss(term=_jml_term, reads_step=True)


def active_extras(names, recipe: dict, epoch: int) -> list[tuple[str, ExtraLoss, dict]]:
    """The extra losses in force in 0-based `epoch`, in EXTRA_LOSSES order, with their settings."""
    return [(name, EXTRA_LOSSES.get(name), recipe[name]) for name in EXTRA_LOSSES.names()
            if name in names and epoch + 1 >= recipe[name].get("start_epoch", 1)]
