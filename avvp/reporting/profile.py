"""`avvp profile`: parameters and FLOPs of a variant, in the paper's convention and truly counted
(docs/protocol.md#flops-and-parameters).

One forward pass, in eval mode, of a batch of random ten-second videos given as the 80 ResNet-152 frames
(the paper's formulation; training feeds the per-second means, which is the same function).

- paper_macs, paper_params: thop.profile, the tool behind Table 4, which reports multiply-accumulates as
  "GFLOPs". Its convention: only modules it has a rule for count, and only when called. nn.Linear counts
  in_features MACs per output element; nn.MultiheadAttention has no rule (its weights and matmuls count 0,
  and its out_proj, a Linear subclass, has no rule either); LSTMs have rules. Operations that are not
  modules (softmax, sigmoid, relu, sums and means: all functional in our models) are invisible to it.
  Layer norms count 0 MACs here (a zero-cost custom rule; their weights still count as parameters), which
  is what gives HAN's 6,634,209,280 MACs and ~2.47 M parameters.
- true_flops: torch.utils.flop_counter.FlopCounterMode, 2 x MACs of every matmul, attention and LSTM
  matmuls included (formulas added for the two CPU kernels it lacks); elementwise work is not counted.
- true_params: every parameter of the model.
"""

from __future__ import annotations

import json
import warnings

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode, sdpa_flop_count

from avvp import io, variants
from avvp.constants import FEATURES
from avvp.errors import AvvpError
from avvp.models import build

with warnings.catch_warnings():          # thop 0.1.1 imports distutils' deprecated LooseVersion
    warnings.simplefilter("ignore", DeprecationWarning)
    from thop import profile as thop_profile
    from thop.vision.basic_hooks import zero_ops

# thop's rule for nn.LayerNorm counts 2 ops per element; the paper's figures count none
# (docs/protocol.md#flops-and-parameters).
PAPER_CUSTOM_OPS = {nn.LayerNorm: zero_ops}


def _cpu_sdpa_flops(query, key, value, *args, out_shape=None, **kwargs) -> int:
    """FLOPs of PyTorch's CPU attention kernel, which FlopCounterMode has no formula for (it knows the
    CUDA kernels only): the same count as theirs, 2 x (QK^T + AV) MACs."""
    return sdpa_flop_count(query, key, value)


def _cpu_lstm_layer_flops(input, w_ih, w_hh, *args, out_shape=None, **kwargs) -> int:
    """FLOPs of one direction of one LSTM layer in PyTorch's CPU (oneDNN) kernel, which FlopCounterMode
    does not know: the input and recurrent matmuls of every step, 2 x T x B x 4H x (I + H)."""
    steps = input[0] * input[1]                      # B x T (either layout)
    return 2 * steps * w_ih[0] * (w_ih[1] + w_hh[1])


# Without these, attention's two matmuls (Q K^T, A V) and every LSTM would silently count 0 on CPU.
TRUE_CUSTOM_FLOPS = {torch.ops.aten._scaled_dot_product_flash_attention_for_cpu: _cpu_sdpa_flops,
                     torch.ops.aten.mkldnn_rnn_layer: _cpu_lstm_layer_flops}


def random_inputs(batch: int, seed: int = 0) -> tuple[torch.Tensor, ...]:
    """A batch of random videos: audio (B,10,128), the 80 frames (B,80,2048), motion (B,10,512)."""
    g = torch.Generator().manual_seed(seed)
    return tuple(torch.randn(batch, *FEATURES[k][1], generator=g) for k in ("audio", "visual", "motion"))


def count(model: nn.Module, inputs: tuple[torch.Tensor, ...]) -> dict:
    """The four figures of one model on one batch."""
    model.eval()
    macs, params = thop_profile(model, inputs=inputs, custom_ops=PAPER_CUSTOM_OPS, verbose=False)
    # Grad mode on: nn.MultiheadAttention then takes its plain (decomposed) path, whose matmuls the
    # counter sees, rather than the fused inference kernel.
    with FlopCounterMode(display=False, custom_mapping=TRUE_CUSTOM_FLOPS) as counter:
        model(*inputs)
    return {"paper_macs": int(macs), "paper_params": int(params),
            "true_flops": int(counter.get_total_flops()),
            "true_params": sum(p.numel() for p in model.parameters())}


def main(args) -> None:
    if args.batch < 1:
        raise AvvpError(f"--batch must be at least 1, got {args.batch}")
    row = variants.get(args.variant, args.variants_file)
    torch.manual_seed(0)
    model = build(row.model)
    result = {"variant": row.name, "batch": args.batch, **count(model, random_inputs(args.batch))}
    print(json.dumps(result, indent=2))
    if args.out:
        io.write_json(args.out, result)
