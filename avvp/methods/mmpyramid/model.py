"""MM-Pyramid's backbone (Yu, Cheng, Zhao, Feng, Zhang, ACM MM 2022), as released (docs/methods/mmpyramid.md#mm-pyramid).

A pyramid of `levels` levels over the 10 segments, on HAN's input projections and feeding HAN's MMIL head. Level
i (window w_i = 2^i) maps its inputs (v, a) to the next level's:
  1. windowed attention, every score outside |t - s| <= w_i masked: visual self-attention S_v, audio
     self-attention S_a, and ONE cross-attention layer X for both directions: v_x = X(v, a, a), a_x = X(a, v, v);
  2. gates: v_g = sigmoid(W1 [v_sa; v_x]) * v_sa + sigmoid(W2 [v_sa; v_x]) * v_x (audio alike, W3, W4);
  3. a dilated temporal block per modality: y = relu(x + C2(relu(C1(x)))), C1 kernel 3, dilation 2^i.
Then, per segment and modality, one unmasked layer over the sequence of the level outputs and a sigmoid-gated sum
(unnormalised) over levels. Even the top level (w = 8) is not global: segment 0 never sees segment 9.

Its transformer layer normalises only the QUERY (pre-norm); keys and values enter raw, also in self-attention:
q' = q + D(MHA(LN(q), k, v)), out = q' + D(FFN(LN(q'))). The attention is built of plain Linear layers (so thop,
the paper-convention counter, sees its projections) around torch's scaled-dot-product attention.

Switches (docs/methods/mmpyramid.md#mm-pyramid-switches):
- `stream_order: released` gives the head stack(v_out, a_out), as the released code does: modality index 0, which
  the MMIL head pools into a_prob and the evaluation scores against the AUDIO ground truth, is the stream rooted
  in the visual input. `fixed` gives stack(a_out, v_out), the natural order. Every reader of the backbone's
  output (the head, the losses, the predictions) reads index 0 as audio, so under `released` x_a IS the
  visual-rooted stream.
- `init: released` starts the attentions' four projections equal, every level's feed-forward blocks equal and the
  two fusion layers equal, as the released code's copies do; `independent` draws each module's own weights.

The window masks are built once per (length, window, device) (`window_mask`, cached) and never per call.
"""

from __future__ import annotations

import functools

import torch
import torch.nn.functional as F
from torch import nn

from avvp.models.layers import Dropout

HEADS = 8
ATTENTION_DROPOUT = 0.1      # on the attention weights, whatever the recipe's dropout


@functools.lru_cache(maxsize=None)
def window_mask(length: int, window: int, device: torch.device) -> torch.Tensor:
    """(length, length) bool, True where query t may attend to key s: |t - s| <= window. One tensor per shape.

    Boolean, so it serves any compute dtype (bf16 under autocast); a masked score is -inf where the release adds
    -1e9, which gives the same softmax since every query sees at least itself."""
    with torch.inference_mode(False):     # a normal tensor even if first asked for under inference mode
        t = torch.arange(length, device=device)
        return (t[:, None] - t[None, :]).abs() <= window


class Attention(nn.Module):
    """Multi-head attention of four plain Linear(d -> d) projections; `mask` (T, S) bool or None (global)."""

    def __init__(self, d: int, heads: int = HEADS, dropout: float = ATTENTION_DROPOUT):
        super().__init__()
        self.heads, self.p = heads, dropout
        self.q, self.k, self.v, self.out = (nn.Linear(d, d) for _ in range(4))

    def _split(self, x: torch.Tensor) -> torch.Tensor:
        n, length, d = x.shape
        return x.view(n, length, self.heads, d // self.heads).transpose(1, 2)

    def forward(self, q, k, v, mask: torch.Tensor | None = None) -> torch.Tensor:
        n, length, d = q.shape
        y = F.scaled_dot_product_attention(self._split(self.q(q)), self._split(self.k(k)), self._split(self.v(v)),
                                           attn_mask=mask, dropout_p=self.p if self.training else 0.0)
        return self.out(y.transpose(1, 2).reshape(n, length, d))


class FeedForward(nn.Module):
    """Linear(d -> d), relu, dropout, Linear(d -> d)."""

    def __init__(self, d: int, dropout: float):
        super().__init__()
        self.linear1, self.linear2 = nn.Linear(d, d), nn.Linear(d, d)
        self.drop = Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear2(self.drop(F.relu(self.linear1(x))))


class QueryNormLayer(nn.Module):
    """MM-Pyramid's transformer layer: pre-norm on the query only, raw keys and values, residual dropout."""

    def __init__(self, d: int, dropout: float):
        super().__init__()
        self.norm1, self.norm2 = nn.LayerNorm(d), nn.LayerNorm(d)
        self.attn = Attention(d)
        self.ffn = FeedForward(d, dropout)
        self.drop = Dropout(dropout)

    def forward(self, q: torch.Tensor, kv: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        q = q + self.drop(self.attn(self.norm1(q), kv, kv, mask))
        return q + self.drop(self.ffn(self.norm2(q)))


class DilatedBlock(nn.Module):
    """relu(x + C2(relu(C1(x)))) over time: C1 kernel 3, dilation and zero padding `dilation`; C2 1x1."""

    def __init__(self, d: int, dilation: int):
        super().__init__()
        self.conv1 = nn.Conv1d(d, d, 3, dilation=dilation, padding=dilation)
        self.conv2 = nn.Conv1d(d, d, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = x.transpose(1, 2)                                   # (B, d, T): channels first for Conv1d
        return F.relu(h + self.conv2(F.relu(self.conv1(h)))).transpose(1, 2)


class Gate(nn.Module):
    """sigmoid(W1 [s; x]) * s + sigmoid(W2 [s; x]) * x, elementwise: self- and cross-attended features mixed."""

    def __init__(self, d: int):
        super().__init__()
        self.w1, self.w2 = nn.Linear(2 * d, d), nn.Linear(2 * d, d)

    def forward(self, s: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        both = torch.cat([s, x], dim=-1)
        return torch.sigmoid(self.w1(both)) * s + torch.sigmoid(self.w2(both)) * x


class PyramidLevel(nn.Module):
    """One level, window w: (v, a) (B, T, d) -> the next level's (v, a)."""

    def __init__(self, d: int, window: int, dropout: float):
        super().__init__()
        self.window = window
        self.self_v, self.self_a, self.cross = (QueryNormLayer(d, dropout) for _ in range(3))
        self.gate_v, self.gate_a = Gate(d), Gate(d)
        self.block_v, self.block_a = DilatedBlock(d, window), DilatedBlock(d, window)

    def forward(self, v: torch.Tensor, a: torch.Tensor):
        mask = window_mask(v.shape[1], self.window, v.device)
        v_sa = self.self_v(v, v, mask)
        a_sa = self.self_a(a, a, mask)
        # X serves both directions: one call on the two stacked along the batch, keys the other modality.
        v_x, a_x = self.cross(torch.cat([v, a]), torch.cat([a, v]), mask).chunk(2)
        return self.block_v(self.gate_v(v_sa, v_x)), self.block_a(self.gate_a(a_sa, a_x))


class LevelFusion(nn.Module):
    """Per segment, the L level outputs as a length-L sequence: one unmasked layer gives h_l, then
    sum_l sigmoid(w . h_l + b) h_l (unnormalised)."""

    def __init__(self, d: int, dropout: float):
        super().__init__()
        self.layer = QueryNormLayer(d, dropout)
        self.score = nn.Linear(d, 1)

    def forward(self, outs: list[torch.Tensor]) -> torch.Tensor:
        b, t, d = outs[0].shape
        seq = torch.stack(outs, dim=2).view(b * t, len(outs), d)
        h = self.layer(seq, seq)
        return (torch.sigmoid(self.score(h)) * h).sum(dim=1).view(b, t, d)


class MMPyramid(nn.Module):
    """(f_a, f_v) (B, T, d) -> (x_a, x_v): the streams the head reads as audio and visual (see `stream_order`)."""

    def __init__(self, d: int = 512, levels: int = 4, stream_order: str = "released", init: str = "released",
                 dropout: float = 0.2):
        super().__init__()
        self.stream_order = stream_order
        self.levels = nn.ModuleList(PyramidLevel(d, 2 ** i, dropout) for i in range(levels))
        self.fuse_v, self.fuse_a = LevelFusion(d, dropout), LevelFusion(d, dropout)
        if init == "released":
            released_init(self)

    def forward(self, f_a: torch.Tensor, f_v: torch.Tensor):
        v, a = f_v, f_a
        outs_v, outs_a = [], []
        for level in self.levels:
            v, a = level(v, a)
            outs_v.append(v)
            outs_a.append(a)
        v_out, a_out = self.fuse_v(outs_v), self.fuse_a(outs_a)
        if self.stream_order == "released":
            return v_out, a_out        # the released stack(v_out, a_out): index 0 (read as audio) is visual-rooted
        return a_out, v_out


def _copy(source: nn.Module, target: nn.Module) -> None:
    with torch.no_grad():
        for p, q in zip(source.parameters(), target.parameters()):
            q.copy_(p)


def released_init(model: MMPyramid) -> None:
    """The released code's copies: in every attention, k, v and out start as copies of q (there: four copies of
    one fresh Linear); every level feed-forward block starts as a copy of the first (there: of one template);
    the audio fusion layer starts as a copy of the visual one. Training breaks the symmetry (different inputs)."""
    for module in model.modules():
        if isinstance(module, Attention):
            for proj in (module.k, module.v, module.out):
                _copy(module.q, proj)
    ffns = [layer.ffn for level in model.levels for layer in (level.self_v, level.self_a, level.cross)]
    for ffn in ffns[1:]:
        _copy(ffns[0], ffn)
    _copy(model.fuse_v.layer, model.fuse_a.layer)


def released_unused_params(d: int = 512, levels: int = 4) -> int:
    """Parameters the released model builds but its forward pass never uses, so the harness does not build them
    (docs/methods/mmpyramid.md#mm-pyramid-parameters): two template layers, each an attention (four projections and a
    LayerNorm) and a feed-forward block, that are only copied; and one unused LayerNorm in each attention module
    (3 per level, 1 per fusion layer). Added to our count it gives the release's built count."""
    linear, norm = d * d + d, 2 * d
    template = 4 * linear + norm + 2 * linear
    return 2 * template + (3 * levels + 2) * norm


def build(spec: dict, d: int) -> MMPyramid:
    return MMPyramid(d, spec["levels"], spec["stream_order"], spec["init"], float(spec["dropout"]))
