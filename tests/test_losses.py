"""Losses on small hand-made cases whose values are computed by hand here."""

from __future__ import annotations

import math

import pytest
import torch

from avvp.training.losses import cms_loss, ma_contrast, mmil_bce


def t(x):
    return torch.tensor(x, dtype=torch.float32)


def test_mmil_bce_by_hand_and_clamped():
    out = {"a_prob": t([[0.8, 0.1]]), "v_prob": t([[0.5, 0.5]]), "global_prob": t([[1.0, 0.0]])}
    y = t([[1.0, 0.0]])
    smoothed = t([[0.95, 0.05]])
    audio = -(math.log(0.8) + math.log(0.9)) / 2
    visual = math.log(2)                          # p = 0.5: BCE is ln 2 whatever the target
    global_ = -math.log(1 - 1e-7)                 # p = 1 and 0 exactly: clamped to 1 - 1e-7 and 1e-7
    loss = mmil_bce(out, y, smoothed, y)
    assert loss.item() == pytest.approx(audio + visual + global_, rel=1e-5)
    # A confidently wrong prediction stays finite: -ln(1e-7) instead of infinity.
    wrong = {"a_prob": t([[0.0]]), "v_prob": t([[0.5]]), "global_prob": t([[0.5]])}
    assert mmil_bce(wrong, t([[1.0]]), t([[1.0]]), t([[1.0]])).item() == pytest.approx(
        -math.log(1e-7) + 2 * math.log(2), rel=1e-4)


def test_ma_contrast_orthogonal_segments_by_hand():
    # One video whose 10 audio and visual segments are the same one-hot vectors: cosine 1 with the
    # own segment, 0 with the others, so the logits are 1/0.2 = 5 on the target and 0 elsewhere.
    eye = torch.eye(10, 16).unsqueeze(0)
    z = math.log(math.exp(5) + 9)
    # MA's smoothing 0.1 over 10 segments: 0.9 on the own segment, 0.1/9 on each of the 9 others (PyTorch's
    # label_smoothing=0.1 would give 0.91 and 0.01, i.e. 0.5089 here instead of 0.5589).
    expected = -(0.9 * (5 - z) + 9 * (0.1 / 9) * (0 - z))
    assert expected == pytest.approx(z - 4.5)
    assert ma_contrast(eye, eye).item() == pytest.approx(expected, rel=1e-5)
    # Cosine similarity: the scale of the features does not matter.
    assert ma_contrast(3 * eye, 0.5 * eye).item() == pytest.approx(expected, rel=1e-5)
    # Without smoothing and a different temperature: -log softmax of the target.
    assert ma_contrast(eye, eye, temperature=1.0, smoothing=0.0).item() == pytest.approx(
        -(1 - math.log(math.e + 9)), rel=1e-5)


def test_ma_contrast_soft_targets_on_a_two_segment_video_by_hand():
    # T = 2, smoothing 0.2: the target is 0.8 on the own segment and 0.2/1 on the other one. Audio segment 0 is
    # e0, segment 1 is (e0 + e1)/sqrt(2); visual segments e0 and e1; temperature 1.
    x_a = torch.tensor([[[1.0, 0.0], [1.0, 1.0]]])
    v = torch.tensor([[[1.0, 0.0], [0.0, 1.0]]])
    c = 1 / math.sqrt(2)
    seg0 = -(0.8 * 1 + 0.2 * 0 - math.log(math.e + 1))       # logits (1, 0), target (0.8, 0.2)
    seg1 = -(0.2 * c + 0.8 * c - math.log(2 * math.exp(c)))  # logits (c, c): -log 1/2 whatever the target
    assert seg1 == pytest.approx(math.log(2))
    assert ma_contrast(x_a, v, temperature=1.0, smoothing=0.2).item() == pytest.approx((seg0 + seg1) / 2, rel=1e-6)


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
