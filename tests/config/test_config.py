from pathlib import Path

import pytest

from maskface.config import CfgNode, get_attr_cfg, get_cfg, load_yaml_with_base, save_config, setup_cfg


def test_base_inheritance_and_overrides(tmp_path):
    (tmp_path / "base.yaml").write_text("MODEL:\n  BACKBONE: resnet34\n  MIN_SIZE: 600\nSEED: 7\n")
    (tmp_path / "child.yaml").write_text("_BASE_: base.yaml\nMODEL:\n  MIN_SIZE: 320\n")
    cfg = setup_cfg(get_cfg(), str(tmp_path / "child.yaml"), ["SOLVER.BASE_LR", "0.5", "MODEL.ANCHOR_SIZES", "[8, 16]"])
    assert cfg.MODEL.BACKBONE == "resnet34"  # from the base
    assert cfg.MODEL.MIN_SIZE == 320  # child wins over base
    assert cfg.SEED == 7
    assert cfg.SOLVER.BASE_LR == 0.5 and isinstance(cfg.SOLVER.BASE_LR, float)
    assert cfg.MODEL.ANCHOR_SIZES == [8, 16]
    assert cfg.is_frozen()
    with pytest.raises(AttributeError, match="frozen"):
        cfg.SEED = 1
    with pytest.raises(AttributeError, match="frozen"):
        cfg.MODEL.BACKBONE = "x"


def test_unknown_keys_and_bad_types_fail_loudly(tmp_path):
    cfg = get_cfg()
    with pytest.raises(KeyError, match="MODEL.BACKBON"):
        cfg.merge_from_list(["MODEL.BACKBON", "resnet18"])
    with pytest.raises(ValueError, match="KEY VALUE"):
        cfg.merge_from_list(["SEED"])
    with pytest.raises(TypeError, match="SOLVER.MAX_ITER"):
        cfg.merge_from_list(["SOLVER.MAX_ITER", "[1, 2]"])
    (tmp_path / "typo.yaml").write_text("SOLVER:\n  BASE_LRR: 0.1\n")
    with pytest.raises(KeyError, match="typo.yaml"):
        cfg.merge_from_file(str(tmp_path / "typo.yaml"))


def test_base_cycle_and_missing_file(tmp_path):
    (tmp_path / "a.yaml").write_text("_BASE_: b.yaml\n")
    (tmp_path / "b.yaml").write_text("_BASE_: a.yaml\n")
    with pytest.raises(ValueError, match="cycle"):
        load_yaml_with_base(tmp_path / "a.yaml")
    with pytest.raises(FileNotFoundError, match="nope.yaml"):
        load_yaml_with_base(tmp_path / "nope.yaml")


def test_dump_round_trip_and_clone(tmp_path):
    cfg = setup_cfg(get_attr_cfg(), None, ["MODEL.TRUNK", "gra"])
    path = tmp_path / "dumped.yaml"
    path.write_text(cfg.dump())
    again = setup_cfg(get_attr_cfg(), str(path))
    assert again.to_dict() == cfg.to_dict()
    mutable = cfg.clone()
    mutable.MODEL.TRUNK = "resnet"
    assert cfg.MODEL.TRUNK == "gra" and isinstance(mutable, CfgNode)


def test_save_config_writes_the_merged_config_next_to_the_outputs(tmp_path):
    cfg = setup_cfg(get_attr_cfg(), None, ["MODEL.TRUNK", "gra"])
    path = save_config(cfg, str(tmp_path / "run"), "attr_config.yaml")  # the folder is created
    assert path == str(tmp_path / "run" / "attr_config.yaml")
    assert setup_cfg(get_attr_cfg(), path).to_dict() == cfg.to_dict()
    assert [p.name for p in (tmp_path / "run").iterdir()] == ["attr_config.yaml"]  # no temp file left behind


CONFIGS = Path(__file__).resolve().parents[2] / "configs"


@pytest.mark.parametrize("path", sorted(CONFIGS.glob("*.yaml")), ids=lambda p: p.name)
def test_every_shipped_detector_config_builds_a_model(path):
    """A typo or a stale key in a shipped config fails here, not in a user's training run."""
    from maskface.modeling.face_rcnn import build_face_rcnn

    cfg = setup_cfg(get_cfg(), str(path))
    model = build_face_rcnn(cfg)
    assert sum(p.numel() for p in model.parameters()) > 0


@pytest.mark.parametrize("path", sorted((CONFIGS / "attributes").glob("*.yaml")), ids=lambda p: p.name)
def test_every_shipped_attribute_config_builds_a_net(path):
    from maskface.modeling.attributes import build_attribute_model

    cfg = setup_cfg(get_attr_cfg(), str(path))
    assert sum(p.numel() for p in build_attribute_model(cfg).parameters()) > 0


def test_crowd_setting_reads_a_640x480_picture_at_3x():
    import torch

    from maskface.modeling.face_rcnn import resize_for_detector

    lite = setup_cfg(get_cfg(), str(CONFIGS / "maskface_MV1_SSH_lite.yaml"))
    crowd = setup_cfg(get_cfg(), str(CONFIGS / "maskface_MV1_SSH_crowd.yaml"))
    image = torch.rand(3, 480, 640)
    assert resize_for_detector(image, lite.MODEL.MIN_SIZE, lite.MODEL.MAX_SIZE).shape == (3, 480, 640)
    assert resize_for_detector(image, crowd.MODEL.MIN_SIZE, crowd.MODEL.MAX_SIZE).shape == (3, 1440, 1920)
    assert crowd.MODEL.DETECTIONS_PER_IMAGE >= 700  # WIDER FACE's most crowded validation picture
