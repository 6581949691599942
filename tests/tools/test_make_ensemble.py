import numpy as np
import pytest
import torch
import torch.nn.functional as F
import yaml
from tool_loader import load_tool

from maskface.config import get_attr_cfg, setup_cfg
from maskface.modeling.attributes import load_attribute_net
from maskface.modeling.attributes import AttributeEnsemble, AttributeNet

make_ensemble = load_tool("make_ensemble")


@pytest.fixture()
def members(tmp_path):
    """Two member configs (32 and 24 px), an ensemble config naming them, and one trainer-style
    checkpoint per member (weights + the config it was trained with)."""
    (tmp_path / "big.yaml").write_text("MODEL:\n  WIDTH: 4\n  CROP_SIZE: 32\n  CROP_MARGIN: 0.2\n  MASK_DILATE: 4\n",
                                       encoding="utf-8")
    (tmp_path / "small.yaml").write_text("_BASE_: big.yaml\nMODEL:\n  CROP_SIZE: 24\n  MASK_DILATE: 3\n",
                                         encoding="utf-8")
    (tmp_path / "ens.yaml").write_text("_BASE_: big.yaml\nMODEL:\n  ENSEMBLE: [big.yaml, small.yaml]\n", encoding="utf-8")
    weights = []
    for seed, name in enumerate(("big", "small")):
        torch.manual_seed(seed)
        cfg = setup_cfg(get_attr_cfg(), str(tmp_path / f"{name}.yaml"))
        net = AttributeNet.from_config(cfg)
        torch.save({"model": net.state_dict(), "cfg": cfg.dump()}, tmp_path / f"{name}.pth")
        weights.append(str(tmp_path / f"{name}.pth"))
    return tmp_path, weights


def test_help_explains_flags(capsys):
    with pytest.raises(SystemExit) as e:
        make_ensemble.main(["--help"])
    out = capsys.readouterr().out
    assert e.value.code == 0 and "--weights" in out and "examples:" in out


def test_combines_members_into_one_loadable_file(members, capsys):
    d, weights = members
    out = d / "ensemble.pth"
    assert make_ensemble.main(["--config-file", str(d / "ens.yaml"), "--weights", *weights, "--output", str(out)]) == 0
    assert "2 nets (crops 32, 24 px)" in capsys.readouterr().out
    model, cfg = load_attribute_net(str(out))  # the stored config is enough
    assert isinstance(model, AttributeEnsemble) and model.crop_kwargs["size"] == 32
    x = torch.randn(2, 3, 32, 32)
    expected = []
    for w, size in zip(weights, (32, 24)):
        c = get_attr_cfg()
        data = torch.load(w, weights_only=False)
        c.merge_from_dict(yaml.safe_load(data["cfg"]))
        net = AttributeNet.from_config(c)
        net.load_state_dict(data["model"])
        xi = x if size == 32 else F.interpolate(x, size=(24, 24), mode="bilinear", align_corners=False, antialias=True)
        with torch.no_grad():
            expected.append(net.eval()(xi)["emotion_probs"])
    with torch.no_grad():
        got = model(x)["emotion_probs"]
    np.testing.assert_allclose(got.numpy(), ((expected[0] + expected[1]) / 2).numpy(), atol=1e-6)


def test_wrong_order_or_count_is_refused(members, capsys):
    d, weights = members
    out = d / "ensemble.pth"
    assert make_ensemble.main(["--config-file", str(d / "ens.yaml"), "--weights", *weights[::-1],
                               "--output", str(out)]) == 2
    err = capsys.readouterr().err
    assert "small.pth: trained with MODEL.CROP_SIZE=24" in err and "order of MODEL.ENSEMBLE" in err
    assert make_ensemble.main(["--config-file", str(d / "ens.yaml"), "--weights", weights[0], "--output", str(out)]) == 2
    assert "lists 2 ensemble members" in capsys.readouterr().err
    assert make_ensemble.main(["--config-file", str(d / "big.yaml"), "--weights", weights[0], "--output", str(out)]) == 2
    assert "no MODEL.ENSEMBLE members" in capsys.readouterr().err
    assert not out.exists()


def test_predictor_runs_an_ensemble(members):
    from maskface.inference import FacePredictor
    from maskface.inference.testing import write_tiny_models

    d, weights = members
    make_ensemble.main(["--config-file", str(d / "ens.yaml"), "--weights", *weights, "--output", str(d / "e.pth")])
    tiny = write_tiny_models(d / "tiny", attributes=False)
    predictor = FacePredictor(detector_config=tiny.detector_config, detector_weights=tiny.detector_weights,
                              attribute_config=str(d / "ens.yaml"), attribute_weights=str(d / "e.pth"), device="cpu")
    assert isinstance(predictor.attribute_net, AttributeEnsemble) and predictor.crop_kwargs()["size"] == 32
    image = np.random.default_rng(0).integers(0, 255, (96, 128, 3), dtype=np.uint8)
    faces = predictor(image)
    assert len(faces) == 3 and all(f.age is not None and f.gender in ("female", "male") for f in faces)
