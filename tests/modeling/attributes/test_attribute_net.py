import math

import pytest
import torch

from maskface.config import get_attr_cfg
from maskface.data.attributes import EMOTIONS, GENDERS
from maskface.modeling.attributes.heads import AGE_GROUP_NAMES, age_group_index, age_summary
from maskface.modeling.attributes.losses import (
    dex_age_loss,
    gaussian_age_targets,
    label_division_loss,
    masked_cross_entropy,
)
from maskface.modeling.attributes.net import AttributeNet
from maskface.modeling.attributes.trunks import TRUNKS, GatedResidualAttention, build_trunk

NAN = float("nan")


def _params(m: torch.nn.Module) -> int:
    return sum(p.numel() for p in m.parameters())


@pytest.mark.parametrize("name", TRUNKS)
def test_trunk_forward_shape(name):
    trunk = build_trunk(name, width=8).eval()
    out = trunk(torch.randn(2, 3, 32, 32))
    assert out.shape == (2, 64) and trunk.out_channels == 64


def test_trunk_param_ordering_and_unknown_name():
    counts = {n: _params(build_trunk(n, 32)) for n in TRUNKS}
    assert counts["depthwise"] * 5 < counts["resnet"] < counts["gra"]
    with pytest.raises(ValueError, match="unknown trunk 'vgg'"):
        build_trunk("vgg", 32)


def test_gra_block_gate():
    block = GatedResidualAttention(8, mask_depth=2).eval()
    x = torch.randn(2, 8, 16, 16)
    with torch.no_grad():
        block.gate.fill_(50.0)  # g = 1: the block is its residual trunk branch alone
        assert torch.allclose(block(x), block.trunk(x), atol=1e-5)
        block.gate.fill_(-50.0)  # g = 0: pure soft-mask attention K(X) * F(X)
        assert torch.allclose(block(x), block.mask(x) * block.trunk(x), atol=1e-5)
    assert block.gate.requires_grad


def test_age_groups_follow_nearest_rule_and_match_inference():
    ages = torch.tensor([0.0, 2.0, 3.0, 3.5, 7.0, 13.0, 14.0, 35.0, 36.0, 100.0, 120.0, -1.0])
    names = [AGE_GROUP_NAMES[i] for i in age_group_index(ages).tolist()]
    assert names == ["0-2", "0-2", "0-2", "4-6", "4-6", "8-12", "15-20", "25-32", "38-43", "60-100", "60-100", "0-2"]
    from maskface.inference.results import age_to_group  # the record writer's rule must be the same

    grid = torch.arange(0, 110, 0.5, dtype=torch.float64)
    assert [AGE_GROUP_NAMES[i] for i in age_group_index(grid).tolist()] == [age_to_group(a) for a in grid.tolist()]


def test_age_summary_of_a_known_distribution():
    s = age_summary(torch.tensor([20.0, 30.0]), torch.tensor([[0.5, 0.5]]))
    assert s["age"].item() == pytest.approx(25.0) and s["age_std"].item() == pytest.approx(5.0)
    groups = dict(zip(AGE_GROUP_NAMES, s["age_group_probs"][0].tolist()))
    assert groups["15-20"] == pytest.approx(0.5) and groups["25-32"] == pytest.approx(0.5)


@pytest.mark.parametrize("age_head", ["dex", "label_division"])
def test_net_outputs_and_decode(age_head):
    net = AttributeNet(trunk="depthwise", width=4, age_head=age_head, head_dim=16, crop_size=24).eval()
    with torch.no_grad():
        out = net(torch.randn(3, 3, 24, 24) * 3)
    k = 101 if age_head == "dex" else 10
    assert out["age_logits"].shape == (3, k) and out["age_probs"].shape == (3, k)
    assert out["gender_probs"].shape == (3, 2) and out["emotion_probs"].shape == (3, 7)
    assert torch.allclose(out["age_group_probs"].sum(1), torch.ones(3), atol=1e-5)
    faces = net.decode(out)
    assert len(faces) == 3
    for f in faces:
        assert set(f) == {"age", "age_std", "age_group", "age_group_top", "gender", "gender_prob", "emotion",
                          "emotion_probs"}
        assert 0.0 <= f["age"] <= 100.0 and f["age_std"] >= 0.0
        assert f["age_group"] == AGE_GROUP_NAMES[int(age_group_index(torch.tensor(f["age"])))]
        assert f["age_group_top"] in AGE_GROUP_NAMES
        assert f["gender"] in GENDERS and 0.5 <= f["gender_prob"] <= 1.0
        assert f["emotion"] in EMOTIONS and list(f["emotion_probs"]) == list(EMOTIONS)
        assert sum(f["emotion_probs"].values()) == pytest.approx(1.0, abs=1e-5)
        assert f["emotion"] == max(f["emotion_probs"], key=f["emotion_probs"].get)
    assert net.crop_kwargs == {"size": 24, "margin": 0.2, "dilate": 1, "feather": 1.0, "ellipse_union": False}


@pytest.mark.parametrize("age_head", ["dex", "label_division"])
def test_flip_test_averages_the_mirrored_crop(age_head):
    torch.manual_seed(0)
    net = AttributeNet(trunk="depthwise", width=4, age_head=age_head, head_dim=16, crop_size=24).eval()
    x = torch.randn(3, 3, 24, 24)
    with torch.no_grad():
        plain, mirrored = net(x), net(x.flip(-1))
        net.flip_test = True
        both = net(x)
        both_of_mirror = net(x.flip(-1))
    for name in ("gender_probs", "emotion_probs", "age_probs"):
        assert torch.allclose(both[name], (plain[name] + mirrored[name]) / 2, atol=1e-6)
        # a crop and its mirror image now get the same answer
        assert torch.allclose(both[name], both_of_mirror[name], atol=1e-6)
    assert torch.allclose(both["gender_logits"].exp(), both["gender_probs"], atol=1e-6)
    # age statistics come from the averaged distribution
    assert torch.allclose(both["age"], age_summary(both["age_values"], both["age_probs"])["age"], atol=1e-4)
    assert both["age"].shape == (3,) and both["age_group_probs"].shape == (3, 8)
    assert len(net.decode(both)) == 3
    net.train()  # training is unaffected: one pass, 3 rows
    assert net(x)["gender_logits"].shape == (3, 2)


def test_from_config_and_bad_head():
    cfg = get_attr_cfg()
    cfg.MODEL.TRUNK, cfg.MODEL.WIDTH, cfg.MODEL.AGE_HEAD = "gra", 4, "label_division"
    net = AttributeNet.from_config(cfg)
    assert net.age_head.kind == "label_division" and net.crop_kwargs["size"] == cfg.MODEL.CROP_SIZE
    assert net.flip_test is False and net.crop_kwargs["ellipse_union"] is False
    cfg.TEST.FLIP, cfg.MODEL.MASK_ELLIPSE_UNION = True, True
    net = AttributeNet.from_config(cfg)
    assert net.flip_test is True and net.crop_kwargs["ellipse_union"] is True
    with pytest.raises(ValueError, match="unknown age head"):
        AttributeNet(age_head="regression")


def test_masked_cross_entropy_ignores_unknown_faces():
    logits = torch.randn(4, 7, requires_grad=True)
    labels = torch.tensor([2, -1, 5, -1])
    loss = masked_cross_entropy(logits, labels)
    ref = torch.nn.functional.cross_entropy(logits[[0, 2]], labels[[0, 2]])
    assert torch.allclose(loss, ref)
    loss.backward()
    assert logits.grad[[1, 3]].abs().sum() == 0 and logits.grad[[0, 2]].abs().sum() > 0


def test_losses_without_known_labels_are_zero_with_grad():
    logits = torch.randn(3, 101, requires_grad=True)
    values = torch.linspace(0, 100, 101)
    for loss in (masked_cross_entropy(logits, torch.full((3,), -1)),
                 dex_age_loss(logits, values, torch.full((3,), NAN), 2.5, 0.1)):
        assert loss.item() == 0.0 and loss.requires_grad
        loss.backward()
        assert logits.grad.abs().sum() == 0


def test_dex_loss_soft_labels_and_masking():
    values = torch.linspace(0, 100, 101)
    t = gaussian_age_targets(torch.tensor([30.0, 99.5]), values, 2.5)
    assert torch.allclose(t.sum(1), torch.ones(2)) and t[0].argmax() == 30
    assert gaussian_age_targets(torch.tensor([30.4]), values, 0.0)[0, 30] == 1.0
    logits = torch.randn(3, 101, requires_grad=True)
    age = torch.tensor([30.0, NAN, 60.0])
    dex_age_loss(logits, values, age, 2.5, 0.1).backward()
    assert logits.grad[1].abs().sum() == 0 and logits.grad[[0, 2]].abs().sum() > 0


def test_label_division_loss_masking_and_perfect_regression():
    edges = torch.linspace(0, 100, 11)
    logits = torch.randn(3, 10, requires_grad=True)
    values = (edges[:-1] + 5.0).repeat(3, 1).requires_grad_(True)
    age = torch.tensor([25.0, NAN, 100.0])
    loss = label_division_loss(logits, values, edges, age)
    loss.backward()
    assert logits.grad[1].abs().sum() == 0 and values.grad[1].abs().sum() == 0
    # Regressing exactly the true age in the true range leaves only the range cross-entropy.
    exact = values.detach().clone()
    exact[0, 2], exact[2, 9] = 25.0, 100.0
    lo = torch.tensor([[0.0] * 10, [0.0] * 10, [0.0] * 10])
    lo[0, 2] = lo[2, 9] = 50.0
    ce = torch.nn.functional.cross_entropy(lo[[0, 2]], torch.tensor([2, 9]))
    assert torch.allclose(label_division_loss(lo, exact, edges, age), ce)


def test_net_losses_names_weights_and_gradients():
    net = AttributeNet(trunk="depthwise", width=4, head_dim=16, crop_size=24, loss_weights=(2.0, 1.0, 0.0))
    out = net(torch.randn(4, 3, 24, 24))
    targets = {"age": torch.tensor([20.0, NAN, NAN, NAN]), "gender": torch.tensor([-1, 1, -1, -1]),
               "emotion": torch.tensor([-1, -1, 3, -1])}
    losses = net.losses(out, targets)
    assert sorted(losses) == ["loss_age", "loss_emotion", "loss_gender"]
    assert losses["loss_emotion"].item() == 0.0  # weight 0
    sum(losses.values()).backward()
    assert all(math.isfinite(p.grad.abs().sum().item()) for p in net.parameters() if p.grad is not None)
    assert net.emotion_head.mlp[-1].weight.grad.abs().sum() == 0
    assert net.gender_head.mlp[-1].weight.grad.abs().sum() > 0


def test_emotion_loss_mixes_votes_into_the_target():
    from maskface.modeling.attributes.losses import emotion_loss

    torch.manual_seed(0)
    logits = torch.randn(4, 7, requires_grad=True)
    labels = torch.tensor([3, 4, -1, -1])
    votes = torch.zeros(4, 7)
    votes[0, 3], votes[0, 4] = 0.6, 0.4  # face 0: labelled and voted; 1: label only; 2: votes only; 3: nothing
    votes[2, 6] = 1.0
    logp = logits.log_softmax(1)
    assert torch.allclose(emotion_loss(logits, labels, votes, 0.0), masked_cross_entropy(logits, labels))
    assert torch.allclose(emotion_loss(logits, labels, None, 0.5), masked_cross_entropy(logits, labels))
    w = 0.5
    t0 = (1 - w) * torch.nn.functional.one_hot(torch.tensor(3), 7) + w * votes[0]
    expected = -((t0 * logp[0]).sum() + logp[1, 4] + logp[2, 6]) / 3
    loss = emotion_loss(logits, labels, votes, w)
    assert torch.allclose(loss, expected)
    loss.backward()
    assert logits.grad[3].abs().sum() == 0
    with pytest.raises(ValueError, match="vote_weight"):
        emotion_loss(logits, labels, votes, 1.5)


def test_net_losses_use_votes_from_config():
    cfg = get_attr_cfg()
    cfg.LOSS.EMOTION_VOTES = 1.0
    net = AttributeNet.from_config(cfg)
    assert net.emotion_vote_weight == 1.0
    out = net(torch.randn(2, 3, 64, 64))
    votes = torch.tensor([[0.0, 0, 0, 1, 0, 0, 0], [0, 0, 0, 0, 0, 0, 0]])
    targets = {"age": torch.tensor([NAN, NAN]), "gender": torch.tensor([-1, -1]), "emotion": torch.tensor([0, 2])}
    with_votes = net.losses(out, dict(targets, emotion_votes=votes))["loss_emotion"]
    logp = out["emotion_logits"].log_softmax(1)
    assert torch.allclose(with_votes, -(logp[0, 3] + logp[1, 2]) / 2)
    with pytest.raises(ValueError, match="emotion_vote_weight"):
        AttributeNet(emotion_vote_weight=-0.1)


def test_age_group_agrees_with_age_and_top_group_is_the_mode():
    """A two-peaked age distribution: its mean (30.5 y) lies in 25-32 while most mass is in 60-100;
    age_group follows the age, age_group_top the distribution."""
    values = torch.linspace(0, 100, 101)
    probs = torch.zeros(1, 101)
    probs[0, 2], probs[0, 61], probs[0, 62] = 0.45, 0.3, 0.25  # 2 y and 61-62 y
    out = age_summary(values, probs)
    out.update({"gender_probs": torch.tensor([[0.3, 0.7]]), "emotion_probs": torch.full((1, 7), 1 / 7)})
    (face,) = AttributeNet.decode(out)
    assert face["age"] == pytest.approx(0.45 * 2 + 0.3 * 61 + 0.25 * 62)
    assert face["age_group"] == "25-32" and face["age_group_top"] == "60-100"


def test_gender_loss_mixes_teacher_probabilities_into_the_target():
    from maskface.modeling.attributes.losses import gender_loss

    torch.manual_seed(0)
    logits = torch.randn(4, 2, requires_grad=True)
    labels = torch.tensor([0, 1, -1, -1])  # female, male, unknown, unknown
    soft = torch.tensor([0.2, NAN, 0.9, NAN])  # face 0: label + teacher; 1: label; 2: teacher only; 3: nothing
    logp = logits.log_softmax(1)
    assert torch.allclose(gender_loss(logits, labels, soft, 0.0), masked_cross_entropy(logits, labels))
    assert torch.allclose(gender_loss(logits, labels, None, 0.5), masked_cross_entropy(logits, labels))
    w = 0.25
    t0 = torch.tensor([(1 - w) + w * 0.2, w * 0.8])  # female index 0 in GENDERS
    expected = -((t0 * logp[0]).sum() + logp[1, 1] + 0.9 * logp[2, 0] + 0.1 * logp[2, 1]) / 3
    loss = gender_loss(logits, labels, soft, w)
    assert torch.allclose(loss, expected)
    loss.backward()
    assert logits.grad[3].abs().sum() == 0 and logits.grad[2].abs().sum() > 0
    with pytest.raises(ValueError, match="vote_weight"):
        gender_loss(logits, labels, soft, 1.5)


def test_net_losses_use_teacher_gender_from_config():
    cfg = get_attr_cfg()
    cfg.LOSS.GENDER_TEACHER = 1.0
    net = AttributeNet.from_config(cfg)
    assert net.gender_teacher_weight == 1.0
    out = net(torch.randn(2, 3, 64, 64))
    targets = {"age": torch.tensor([NAN, NAN]), "gender": torch.tensor([1, -1]), "emotion": torch.tensor([-1, -1])}
    plain = net.losses(out, targets)["loss_gender"]
    logp = out["gender_logits"].log_softmax(1)
    assert torch.allclose(plain, -logp[0, 1])  # no teacher labels: the true label alone
    taught = net.losses(out, dict(targets, gender_soft=torch.tensor([1.0, 0.0])))["loss_gender"]
    assert torch.allclose(taught, -(logp[0, 0] + logp[1, 1]) / 2)  # weight 1: the teacher wins where it has a say
    with pytest.raises(ValueError, match="gender_teacher_weight"):
        AttributeNet(gender_teacher_weight=2.0)
