"""HAN's input projections: the per-segment audio and fused visual features of every model
(docs/protocol.md#han-inputs).

Audio: Linear(128 -> 512). Visual: Linear(2048 -> 512) on the 80 ResNet-152 frames, then the mean of each
8 consecutive projected frames (one per second); Linear(512 -> 512) on the R(2+1)D motion features; the two
visual streams are concatenated (1024) and fused by Linear(1024 -> 512). No activations, as in HAN.

Because the visual projection is affine, the mean of the 8 projected frames equals the projection of the
8 frames' mean. So the module also takes the per-second means (B, 10, 2048), which the packed dataset stores
and the trainer feeds: the same function with 8x less arithmetic. The profiler feeds the 80 frames, as the
paper's figures were measured that way.
"""

from __future__ import annotations

import torch
from torch import nn

from avvp.constants import FRAMES_PER_SEGMENT, NUM_SEGMENTS
from avvp.errors import AvvpError

D_MODEL = 512


def _check(name: str, x: torch.Tensor, rows: tuple[int, ...], width: int) -> None:
    if x.dim() != 3 or x.shape[1] not in rows or x.shape[2] != width:
        want = " or ".join(f"(B, {r}, {width})" for r in rows)
        raise AvvpError(f"model input '{name}' has shape {tuple(x.shape)}, expected {want}")


class InputProjection(nn.Module):
    """(audio, visual, motion) -> f_a, f_v: (B, 10, 512) each."""

    def __init__(self, d_audio: int = 128, d_frame: int = 2048, d_motion: int = 512, d: int = D_MODEL):
        super().__init__()
        self.fc_a = nn.Linear(d_audio, d)
        self.fc_v = nn.Linear(d_frame, d)
        self.fc_st = nn.Linear(d_motion, d)
        self.fc_fusion = nn.Linear(2 * d, d)

    def forward(self, audio: torch.Tensor, visual: torch.Tensor, motion: torch.Tensor):
        _check("audio", audio, (NUM_SEGMENTS,), self.fc_a.in_features)
        _check("visual", visual, (NUM_SEGMENTS, NUM_SEGMENTS * FRAMES_PER_SEGMENT), self.fc_v.in_features)
        _check("motion", motion, (NUM_SEGMENTS,), self.fc_st.in_features)
        f_a = self.fc_a(audio)
        f_v = self.fc_v(visual)
        if f_v.shape[1] != NUM_SEGMENTS:          # 80 frames: average each second's 8 projected frames
            b, _, d = f_v.shape
            f_v = f_v.view(b, NUM_SEGMENTS, FRAMES_PER_SEGMENT, d).mean(2)
        f_v = self.fc_fusion(torch.cat([f_v, self.fc_st(motion)], dim=-1))
        return f_a, f_v
