"""The seed paper's CM-Co (cross-modality co-occurrence head) and CM-S (cross-video shared semantics, with its batch
augmentation) on hand-made cases (avvp/methods/cvcms/, docs/methods/cvcms.md)."""

from __future__ import annotations

import dataclasses
import math

import pytest
import torch
from test_train import hand_batch

from avvp.methods.cvcms.cmco import CMCo
from avvp.methods.cvcms.losses import cms_augment, cms_loss, cms_partners
from avvp.training.losses import mmil_bce  # noqa: F401  (the BCE beside CM-S's augmentation)


def t(x):
    return torch.tensor(x, dtype=torch.float32)


def _one_hot_videos(dims, t_len=2, width=4):
    """Videos whose every segment is the one-hot vector e_dim."""
    return torch.stack([torch.eye(width)[d].expand(t_len, width) for d in dims])


def test_cms_two_videos_orthogonal_features():
    x = _one_hot_videos([0, 1])
    att = torch.zeros(2, 2, 3)
    y = t([[1, 0, 0], [0, 1, 0]])
    # Pooled a_i = v_i = e_i: s = I / tau; each anchor's only positive is itself.
    assert cms_loss(x, x, att, att, y, y).item() == pytest.approx(math.log(1 + math.exp(-1)), rel=1e-5)
    assert cms_loss(x, x, att, att, y, y, tau=0.5).item() == pytest.approx(math.log(1 + math.exp(-2)),
                                                                           rel=1e-5)


def test_cms_positives_are_shared_classes_and_anchors_without_positives_count_zero():
    x = _one_hot_videos([0, 1, 2])
    att = torch.zeros(3, 2, 3)
    y_a = t([[1, 1, 0], [0, 1, 0], [0, 0, 0]])     # video 2 has no audio label: no positive
    y_v = t([[1, 0, 0], [0, 1, 0], [0, 0, 1]])
    # Anchor 0 (audio classes 0,1): positives v_0 (class 0) and v_1 (class 1). s_0 = (1, 0, 0).
    z = math.log(math.e + 2)
    anchor0 = (-(1 - z) - (0 - z)) / 2
    # Anchor 1 (class 1): positive v_1 only. s_1 = (0, 1, 0).
    anchor1 = -(1 - z)
    # Anchor 2 has no positive and counts 0, but still counts: the mean is over all 3 anchors (released code).
    assert cms_loss(x, x, att, att, y_a, y_v).item() == pytest.approx((anchor0 + anchor1 + 0) / 3, rel=1e-5)
    # No positive anywhere: zero, and still differentiable.
    xa = x.clone().requires_grad_()
    loss = cms_loss(xa, x, att, att, t([[1, 0, 0]] * 3), t([[0, 1, 0]] * 3))
    loss.backward()
    assert loss.item() == 0.0 and xa.grad is not None


def test_cms_pooling_weights_follow_the_labelled_attention_logits():
    # Video 0's audio: segment 0 = e0, segment 1 = e2. Attention logits favour segment 0 for class 0
    # only; with label class 0 the weights are softmax(2, 0), with label class 1 they are uniform.
    x_a = torch.stack([torch.stack([torch.eye(4)[0], torch.eye(4)[2]]), torch.eye(4)[1].expand(2, 4)])
    x_v = _one_hot_videos([0, 1])
    att_a = torch.zeros(2, 2, 2)
    att_a[0, 0, 0] = 2.0
    att_v = torch.zeros(2, 2, 2)
    y_v = t([[1, 0], [0, 1]])
    w0 = math.exp(2) / (math.exp(2) + 1)
    cos = w0 / math.hypot(w0, 1 - w0)                # a_0 . v_0 after L2 normalisation; a_0 . v_1 = 0
    expected_anchor0 = -(cos - math.log(math.exp(cos) + 1))
    expected_anchor1 = math.log(1 + math.exp(-1))   # a_1 = v_1 = e1
    loss = cms_loss(x_a, x_v, att_a, att_v, t([[1, 0], [0, 1]]), y_v)
    assert loss.item() == pytest.approx((expected_anchor0 + expected_anchor1) / 2, rel=1e-5)
    # Labelled with class 1 instead, video 0's audio ignores the class-0 logit and pools uniformly:
    # a_0 = (e0 + e2)/sqrt(2), so s_00 = 1/sqrt(2), s_01 = 0; its only positive is now v_1.
    cos = 1 / math.sqrt(2)
    anchor0 = math.log(math.exp(cos) + 1)
    loss = cms_loss(x_a, x_v, att_a, att_v, t([[0, 1], [0, 1]]), y_v)
    assert loss.item() == pytest.approx((anchor0 + expected_anchor1) / 2, rel=1e-5)


def test_cms_partners_are_never_the_video_itself_and_cover_the_others():
    gen = torch.Generator().manual_seed(0)
    draws = torch.stack([cms_partners(5, gen, "cpu") for _ in range(2000)])      # (2000, 5)
    assert not (draws == torch.arange(5)).any()
    # Uniform among the 4 others: each (i, j != i) pair about 2000/4 = 500 times.
    counts = torch.stack([(draws == j).sum(0) for j in range(5)])               # counts[j, i]
    off = counts[~torch.eye(5, dtype=torch.bool)]
    assert off.min() > 400 and off.max() < 600
    # Independent per video (with replacement): some draw gives two videos the same partner.
    assert any(len(set(row.tolist())) < 5 for row in draws)
    assert cms_partners(1, gen, "cpu").tolist() == [0]     # a one-video batch has no other video


def test_cms_augment_pairs_each_videos_audio_with_its_partners_visual_track():
    batch = hand_batch()
    batch = dataclasses.replace(batch, y_v=torch.rand(4, 25))   # visual labels distinct from the audio ones
    doubled = cms_augment(batch, torch.Generator().manual_seed(7))
    j = cms_partners(4, torch.Generator().manual_seed(7), "cpu")
    assert doubled.n == 4 and doubled.audio.shape[0] == 8 and (j != torch.arange(4)).all()
    assert torch.equal(doubled.audio[4:], batch.audio) and torch.equal(doubled.y_a[4:], batch.y_a)
    assert torch.equal(doubled.visual[4:], batch.visual[j]) and torch.equal(doubled.motion[4:], batch.motion[j])
    assert torch.equal(doubled.y_v[4:], batch.y_v[j])
    assert torch.equal(doubled.visual[:4], batch.visual) and torch.equal(doubled.y, batch.y)


# --- CM-Co ---------------------------------------------------------------------------------------------
def _cmco_probs(mode, x_a, x_v):
    torch.manual_seed(0)
    head = CMCo(mode).eval()
    with torch.no_grad():
        return head, head(x_a, x_v)


@pytest.mark.parametrize("mode,audio_sees_visual", [("cm", True), ("av", False), ("a_only", False)])
def test_cmco_modes_cross_attention_only_in_cm(mode, audio_sees_visual):
    g = torch.Generator().manual_seed(1)
    x_a, x_v = torch.randn(2, 10, 512, generator=g), torch.randn(2, 10, 512, generator=g)
    _, p = _cmco_probs(mode, x_a, x_v)
    _, q = _cmco_probs(mode, x_a, x_v + torch.randn(2, 10, 512, generator=g))
    assert torch.allclose(p[:, :, 0], q[:, :, 0]) is not audio_sees_visual


def test_cmco_attends_within_a_segment_only_and_ablations_keep_hans_head():
    g = torch.Generator().manual_seed(2)
    x_a, x_v = torch.randn(2, 10, 512, generator=g), torch.randn(2, 10, 512, generator=g)
    _, p = _cmco_probs("cm", x_a, x_v)
    x_a2 = x_a.clone()
    x_a2[1, 4] += 1.0                               # change one segment of one video
    _, q = _cmco_probs("cm", x_a2, x_v)
    changed = (p - q).abs().amax(dim=(2, 3)) > 0    # (video, segment)
    expected = torch.zeros(2, 10, dtype=torch.bool)
    expected[1, 4] = True
    assert torch.equal(changed, expected)
    head, p = _cmco_probs("v_only", x_a, x_v)
    torch.testing.assert_close(p[:, :, 0], torch.sigmoid(head.frame_head.fc_prob(x_a)))
    assert head.layer.cross_attn is None and not hasattr(head, "tokens_a")
