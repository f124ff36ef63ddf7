"""MA (avvp/methods/ma/, docs/methods/ma.md): its label refinement on a hand-made case whose answer is known, and
its temporal contrast by hand."""

import math

import numpy as np
import pytest
import torch

from avvp.data import dataset
from avvp.methods.ma.losses import ma_contrast
from avvp.methods.ma.refine import fitted_exactly, partners, refine_labels, summary


class MarkerModel(torch.nn.Module):
    """A frozen 'model' that hears class c when audio dim c is on and sees it when visual dim c is on.

    Like MA's step-1 model, its video-level audio and visual probabilities both respond to either track.
    """

    def forward(self, audio, visual, motion):
        heard = audio[:, :, :25].amax(1)
        seen = visual[:, :, :25].amax(1)
        p = 0.9 * torch.maximum(heard, seen)
        b = audio.shape[0]
        return {"global_prob": p, "a_prob": p, "v_prob": p, "frame_prob": p[:, None, None].expand(b, 10, 2, 25),
                "frame_att_logit": torch.zeros(b, 10, 2, 25), "x_a": torch.zeros(b, 10, 4),
                "x_v": torch.zeros(b, 10, 4), "v_in": torch.zeros(b, 10, 4)}


def hand_made_split():
    # video: (labels, audible classes, visible classes)
    videos = [({0, 1}, {0, 1}, {1}),        # class 0 audio-only, class 1 in both
              ({2}, {2}, set()),             # audio-only
              ({3}, set(), {3}),             # visual-only
              ({0, 1, 2, 3}, set(), set()),  # the model misses every label: gives each class an error rate
              ({5}, {5}, {5})]               # both
    n = len(videos)
    audio, visual = torch.zeros(n, 10, 128), torch.zeros(n, 10, 2048)
    labels = torch.zeros(n, 25)
    for i, (lab, heard, seen) in enumerate(videos):
        labels[i, list(lab)] = 1
        for c in heard:
            audio[i, :, c] = 1
        for c in seen:
            visual[i, :, c] = 1
    true_a = np.zeros((n, 25), np.uint8)
    true_v = np.zeros((n, 25), np.uint8)
    for i, (lab, heard, seen) in enumerate(videos):
        true_a[i, list(heard & lab)] = 1
        true_v[i, list(seen & lab)] = 1
    return dataset.Split("train", [f"v{i}" for i in range(n)], audio, visual, torch.zeros(n, 10, 512), labels,
                         true_audio=true_a, true_visual=true_v)


def as_sets(a):
    return [set(np.flatnonzero(row)) for row in a]


def test_refinement_removes_exactly_the_absent_modalities():
    split = hand_made_split()
    audio, visual = refine_labels(MarkerModel(), split, seed=0)
    assert as_sets(audio) == [{0, 1}, {2}, set(), set(), {5}]
    assert as_sets(visual) == [{1}, set(), {3}, set(), {5}]


def test_summary_counts_and_scores_against_truth():
    split = hand_made_split()
    audio, visual = refine_labels(MarkerModel(), split, seed=0)
    s = summary(split, audio, visual)
    assert s["removed"] == {"audio": 5, "visual": 6}
    assert s["removed_per_class"]["visual"] == {"Speech": 2, "Car": 1, "Cheering": 2, "Dog": 1}
    # every removal here is right, and every label absent from a modality was removed
    for m in ("audio", "visual"):
        assert s["against_truth"][m]["precision"] == 1.0
        assert s["against_truth"][m]["recall"] == 1.0


def test_classes_fitted_exactly_are_counted():
    # The marker model misses only video 3's labels (classes 0-3); every other class's error is 0, so no
    # label of those classes could ever be removed (MA's threshold is 0.5 x the normalised error).
    info = {}
    split = hand_made_split()
    refine_labels(MarkerModel(), split, seed=0, info=info)
    assert info["threshold_error"]["visual"]["Speech"] == 1.0
    # 21 classes fitted exactly; of the 9 labels, only video 4's class 5 is in one of them
    assert info["fitted_exactly"] == {m: {"classes": 21, "labels": 1, "of_labels": 9} for m in ("audio", "visual")}
    # a class with any training error, however small, is not fitted exactly
    err = np.zeros(25)
    err[[0, 7]] = [1.0, 1e-6]
    assert fitted_exactly({"audio": err}, np.ones((2, 25))) == {"audio": {"classes": 23, "labels": 46, "of_labels": 50}}


def test_partners_share_no_class():
    rng = np.random.default_rng(0)
    y = (rng.random((300, 25)) < 0.08).astype(np.int64)
    y[np.arange(300), rng.integers(0, 25, 300)] = 1
    j = partners(y, np.random.default_rng(1))
    assert (j != np.arange(300)).all()
    assert ((y * y[j]).sum(1) == 0).all()


def test_val_and_test_refinement_keeps_the_training_thresholds():
    """MA's thresholds are the trained model's training error rates: on a split the marker model fits exactly,
    its own rates are 0 and would remove nothing; the training rates remove exactly the absent modalities."""
    from avvp.methods.ma.refine import threshold_errors

    train = hand_made_split()
    errors = threshold_errors(MarkerModel(), train)
    keep = [0, 1, 2, 4]                        # without video 3, the one every class's training error comes from
    val = dataset.Split("val", [train.filenames[i] for i in keep], train.audio[keep], train.visual[keep],
                        train.motion[keep], train.labels[keep])
    own_a, own_v = refine_labels(MarkerModel(), val, seed=0)
    np.testing.assert_array_equal(own_a, val.labels.numpy())
    np.testing.assert_array_equal(own_v, val.labels.numpy())
    audio, visual = refine_labels(MarkerModel(), val, seed=0, errors=errors)
    assert as_sets(audio) == [{0, 1}, {2}, set(), {5}]
    assert as_sets(visual) == [{1}, set(), {3}, {5}]


# --- MA's temporal contrast -----------------------------------------------------------------------------
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
