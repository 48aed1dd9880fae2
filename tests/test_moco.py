"""MoCo: queue, momentum update, symmetric loss, shuffle BN."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from fame_aug.contrib.moco.distributed import shuffled_forward
from fame_aug.contrib.moco.moco import MoCo
from fame_aug.contrib.moco.models import create_backbone


def small_moco(**kwargs: object) -> MoCo:
    torch.manual_seed(0)
    return MoCo(create_backbone("r3d_small", width=8), dim=16, **kwargs)


def test_queue_wraps_around() -> None:
    model = small_moco(queue_size=10)
    keys = F.normalize(torch.rand(6, 16), dim=1)
    model.enqueue(keys)
    model.enqueue(keys)
    assert int(model.queue_ptr) == 2
    torch.testing.assert_close(model.queue[:, 6:10], keys[:4].T)
    torch.testing.assert_close(model.queue[:, :2], keys[4:].T)
    with pytest.raises(ValueError, match="queue_size must be at least twice the global batch size"):
        model.enqueue(torch.rand(11, 16))


def test_momentum_update() -> None:
    model = small_moco(momentum=0.9)
    with torch.no_grad():
        for parameter in model.encoder_q.parameters():
            parameter.add_(1.0)
    before = [p.clone() for p in model.encoder_k.parameters()]
    model.momentum_update()
    for old, new, query in zip(before, model.encoder_k.parameters(), model.encoder_q.parameters(), strict=True):
        torch.testing.assert_close(new, 0.9 * old + 0.1 * query)


def test_symmetric_loss_and_gradients() -> None:
    model = small_moco(queue_size=32, momentum=0.0).train()
    view_a, view_b = torch.rand(4, 3, 4, 32, 32), torch.rand(4, 3, 4, 32, 32)
    queue = model.queue.clone()
    out = model(view_a, view_b)
    # momentum 0: the key encoder is the query encoder (before this step's update)
    with torch.no_grad():
        key_a, key_b = model.encoder_k(view_a), model.encoder_k(view_b)
        query_a, query_b = model.encoder_q(view_a), model.encoder_q(view_b)

    def info_nce(q: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
        logits = torch.cat([(q * k).sum(1, keepdim=True), q @ queue], dim=1) / 0.1
        return F.cross_entropy(logits, torch.zeros(4, dtype=torch.long))

    expected = (info_nce(query_a, key_b) + info_nce(query_b, key_a)) / 2
    torch.testing.assert_close(out["loss"].detach(), expected, rtol=1e-3, atol=1e-3)
    assert int(model.queue_ptr) == 8  # both key batches enqueued
    out["loss"].backward()
    assert all(p.grad is not None for p in model.encoder_q.parameters())
    assert all(p.grad is None for p in model.encoder_k.parameters())


def test_shuffled_forward_keeps_order() -> None:
    class Offset(nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return x - x.mean()  # depends on the (sub-)batch, like batch norm

    batch = 2.0 ** torch.arange(8.0)[:, None]  # every subset has its own mean
    identity = shuffled_forward(nn.Identity(), batch, splits=4)
    assert torch.equal(identity, batch)  # outputs come back in the input's order
    # Statistics come from 2 shuffled chunks of 4: each row is offset by its chunk's mean.
    offsets = (shuffled_forward(Offset(), batch, splits=2) - batch).flatten()
    values, counts = offsets.unique(return_counts=True)
    assert len(values) == 2 and counts.tolist() == [4, 4]
    assert torch.equal(shuffled_forward(Offset(), batch, splits=1), batch - batch.mean())


def test_bad_arguments() -> None:
    backbone = create_backbone("r3d_small", width=8)
    with pytest.raises(ValueError, match="momentum must lie in"):
        MoCo(backbone, momentum=1.0)
    with pytest.raises(ValueError, match="temperature must be > 0"):
        MoCo(backbone, temperature=0)


def test_small_r3d_stem_sees_change_with_half_of_its_filters() -> None:
    """r3d_small: half of the stem's filters have zero temporal mean, so a still clip gives them nothing."""
    model = create_backbone("r3d_small", num_classes=0, width=8)
    conv = model.stem[0]
    means = conv.weight.mean(dim=2).abs().flatten(1).amax(dim=1)
    assert (means[:4] < 1e-6).all() and (means[4:] > 1e-3).all()
    still = torch.rand(2, 3, 1, 20, 20).expand(-1, -1, 6, -1, -1)
    response = conv(still)[:, :, 1:-1]  # frames away from the zero padding in time
    assert response[:, :4].abs().max() < 1e-5 and response[:, 4:].abs().max() > 0.1
    published = create_backbone("r3d_18", num_classes=0).stem[0].weight.mean(dim=2).abs().flatten(1).amax(dim=1)
    assert (published > 1e-4).all()  # the published models keep the usual init
    with pytest.raises(ValueError, match="motion_filters must lie in"):
        from fame_aug.contrib.moco.models.resnet3d import VideoResNet

        VideoResNet("3d", (1, 1, 1, 1), 8, 0, motion_filters=1.5)


def test_knn_readout_votes_by_similarity() -> None:
    from fame_aug.contrib.moco.diagnostics import knn_accuracy

    gallery = torch.tensor([0, 0, 1, 1, 1])
    similarity = torch.tensor([[0.9, 0.8, 0.1, 0.1, 0.1], [0.1, 0.2, 0.3, 0.3, 0.9], [0.95, 0.0, 0.5, 0.5, 0.5]])
    # the third query's nearest neighbour (class 0) outweighs two less similar ones of class 1
    assert knn_accuracy(similarity, torch.tensor([0, 1, 1]), gallery, k=3) == pytest.approx(2 / 3)
    assert knn_accuracy(similarity, torch.tensor([0, 1, 0]), gallery, k=3) == pytest.approx(1.0)
    assert knn_accuracy(similarity, torch.tensor([0, 1, 0]), gallery, k=1) == pytest.approx(1.0)


def test_standardized_probe_is_still_linear() -> None:
    """LinearProbe(standardize=True): a batch norm without parameters, then the classifier; frozen in eval."""
    from fame_aug.contrib.moco.probe import LinearProbe

    backbone = create_backbone("r3d_small", num_classes=0, width=8).eval().requires_grad_(False)
    probe = LinearProbe(backbone, 3, standardize=True)
    trainable = [name for name, p in probe.named_parameters() if p.requires_grad]
    assert trainable == ["classifier.1.weight", "classifier.1.bias"]
    clips = torch.rand(6, 3, 4, 16, 16)
    probe.train()(clips)  # learns the features' statistics
    probe.eval()
    features = F.normalize(backbone(clips), dim=1)
    norm = probe.classifier[0]
    expected = probe.classifier[1]((features - norm.running_mean) / (norm.running_var + norm.eps).sqrt())
    assert torch.allclose(probe(clips), expected, atol=1e-5)
    assert isinstance(LinearProbe(backbone, 3).classifier, nn.Linear)
