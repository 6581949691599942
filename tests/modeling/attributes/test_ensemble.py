import pytest
import torch
import torch.nn.functional as F

from maskface.config import get_attr_cfg, setup_cfg
from maskface.modeling.attributes import AttributeEnsemble, AttributeNet, build_attribute_model
from maskface.modeling.attributes.heads import age_summary
from norm_testing import set_random_norm_stats


def _net(size: int, dilate: int, seed: int, **kw) -> AttributeNet:
    torch.manual_seed(seed)
    return AttributeNet(trunk="depthwise", width=4, head_dim=16, crop_size=size, crop_margin=0.2,
                        mask_dilate=dilate, **kw).eval()


@pytest.mark.parametrize("age_head", ["dex", "label_division"])
def test_ensemble_averages_members_and_downsamples_for_the_smaller_one(age_head):
    big, small = _net(32, 4, 0, age_head=age_head), _net(24, 3, 1, age_head=age_head)
    ens = AttributeEnsemble([small, big]).eval()
    # cut once, at the largest member's size, with that member's settings
    assert ens.crop_kwargs == big.crop_kwargs
    x = torch.randn(3, 3, 32, 32)
    with torch.no_grad():
        out = ens(x)
        a = big(x)
        b = small(F.interpolate(x, size=(24, 24), mode="bilinear", align_corners=False, antialias=True))
        b_nearest = small(F.interpolate(x, size=(24, 24), mode="nearest"))
    for name in ("gender_probs", "emotion_probs", "age_probs"):
        assert torch.allclose(out[name], (a[name] + b[name]) / 2, atol=1e-6)
    # the 24 px member really got the antialiased downsample (not some other resize)
    assert not torch.allclose(out["emotion_probs"], (a["emotion_probs"] + b_nearest["emotion_probs"]) / 2, atol=1e-6)
    assert torch.allclose(out["age"], age_summary(out["age_values"], out["age_probs"])["age"], atol=1e-4)
    assert torch.allclose(out["emotion_logits"].exp(), out["emotion_probs"], atol=1e-6)
    assert out["age_group_probs"].shape == (3, 8)
    faces = ens.decode(out)
    assert len(faces) == 3 and faces[0]["emotion"] == max(faces[0]["emotion_probs"], key=faces[0]["emotion_probs"].get)


def test_single_member_ensemble_is_the_member():
    net = _net(24, 3, 0)
    x = torch.randn(2, 3, 24, 24)
    with torch.no_grad():
        assert torch.equal(AttributeEnsemble([net])(x)["gender_probs"], net(x)["gender_probs"])


def test_flip_test_reaches_every_member():
    ens = AttributeEnsemble([_net(32, 4, 0), _net(24, 3, 1)], flip_test=True)
    assert ens.flip_test and all(m.flip_test for m in ens.members)
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        both = ens(x)
        ens.flip_test = False
        assert not any(m.flip_test for m in ens.members)
        plain, mirrored = ens(x), ens(x.flip(-1))
    assert torch.allclose(both["gender_probs"], (plain["gender_probs"] + mirrored["gender_probs"]) / 2, atol=1e-6)


def test_members_must_agree_and_input_is_checked():
    with pytest.raises(ValueError, match="same window"):
        AttributeEnsemble([_net(32, 4, 0), AttributeNet(trunk="depthwise", width=4, crop_size=24, crop_margin=0.3)])
    with pytest.raises(ValueError, match="age head"):
        AttributeEnsemble([_net(32, 4, 0), _net(24, 3, 1, age_head="label_division")])
    with pytest.raises(ValueError, match="at least one"):
        AttributeEnsemble([])
    with pytest.raises(TypeError, match="AttributeNet"):
        AttributeEnsemble([torch.nn.Linear(2, 2)])
    ens = AttributeEnsemble([_net(32, 4, 0), _net(24, 3, 1)])
    with pytest.raises(ValueError, match=r"expected 32x32 crops"):
        ens(torch.randn(1, 3, 24, 24))
    with pytest.raises(ValueError, match=r"\(N, 3, S, S\)"):
        ens(torch.randn(3, 32, 32))


def _write_member_configs(d):
    (d / "members").mkdir()
    (d / "members" / "big.yaml").write_text(
        "MODEL:\n  WIDTH: 4\n  CROP_SIZE: 32\n  CROP_MARGIN: 0.2\n  MASK_DILATE: 4\n", encoding="utf-8")
    (d / "members" / "small.yaml").write_text(
        "_BASE_: big.yaml\nMODEL:\n  CROP_SIZE: 24\n  MASK_DILATE: 3\n", encoding="utf-8")
    ens = d / "ensemble.yaml"
    # member paths are relative to the file naming them, like _BASE_
    ens.write_text("_BASE_: members/big.yaml\nMODEL:\n  ENSEMBLE: [members/big.yaml, members/small.yaml]\n"
                   "TEST:\n  FLIP: true\n", encoding="utf-8")
    return ens


def test_build_from_config_files(tmp_path, monkeypatch):
    ens_cfg = _write_member_configs(tmp_path)
    monkeypatch.chdir(tmp_path / "members")  # resolution must not depend on the working folder
    cfg = setup_cfg(get_attr_cfg(), str(ens_cfg))
    assert cfg.MODEL.ENSEMBLE == [str((tmp_path / "members" / n).resolve()) for n in ("big.yaml", "small.yaml")]
    model = build_attribute_model(cfg)
    assert isinstance(model, AttributeEnsemble)
    assert [m.crop_kwargs["size"] for m in model.members] == [32, 24] and model.flip_test
    single = build_attribute_model(setup_cfg(get_attr_cfg(), str(tmp_path / "members" / "small.yaml")))
    assert isinstance(single, AttributeNet) and single.crop_kwargs["size"] == 24
    (tmp_path / "bad.yaml").write_text("MODEL:\n  ENSEMBLE: members/big.yaml\n", encoding="utf-8")
    with pytest.raises(ValueError, match="bad.yaml: MODEL.ENSEMBLE must be a list of file paths"):
        setup_cfg(get_attr_cfg(), str(tmp_path / "bad.yaml"))
    (tmp_path / "nested.yaml").write_text("MODEL:\n  ENSEMBLE: [ensemble.yaml]\n", encoding="utf-8")
    with pytest.raises(ValueError, match="itself an ensemble"):
        build_attribute_model(setup_cfg(get_attr_cfg(), str(tmp_path / "nested.yaml")))


@pytest.mark.parametrize("trunk", ["resnet", "depthwise"])
def test_optimize_for_inference_keeps_the_outputs(trunk):
    def net(size, dilate, seed):
        torch.manual_seed(seed)
        net = AttributeNet(trunk=trunk, width=4, head_dim=16, crop_size=size, crop_margin=0.2, mask_dilate=dilate,
                           flip_test=True)
        return set_random_norm_stats(net, seed).eval()

    ens = AttributeEnsemble([net(32, 4, 0), net(24, 3, 1)]).eval()
    x = torch.randn(3, 3, 32, 32)
    with torch.no_grad():
        ref = ens(x)
        fast = ens.optimize_for_inference()
        out = fast(x)
    assert fast is ens
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in ens.modules())  # every norm folded
    conv = next(m for m in ens.modules() if isinstance(m, torch.nn.Conv2d) and m.kernel_size == (3, 3) and m.groups == 1)
    assert conv.weight.is_contiguous(memory_format=torch.channels_last)
    for name in ("age", "age_std", "gender_probs", "emotion_probs", "age_group_probs"):
        assert torch.allclose(out[name], ref[name], atol=1e-4), name
    with pytest.raises(RuntimeError, match="eval"):
        net(24, 3, 2).train().optimize_for_inference()
