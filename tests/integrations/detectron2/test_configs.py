"""configs/detectron2/: each file is what tools/convert_weights.py --config-only makes of its MaskFace
recipe (so they cannot drift apart), and Detectron2 builds the model it describes."""

from pathlib import Path

import pytest
import yaml

from maskface.config import get_cfg
from maskface.integrations.detectron2.convert import maskface_to_detectron2_config

ROOT = Path(__file__).resolve().parents[3]
#: Detectron2 config -> (the MaskFace recipe it is generated from, --resize)
CONFIGS = {"face_mask_rcnn_R_50_FPN.yaml": ("maskface_R50_FPN.yaml", "detectron2"),
           "maskface_MV1_SSH_lite.yaml": ("maskface_MV1_SSH_lite.yaml", "maskface")}


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_config_is_the_converted_recipe(name):
    committed = yaml.safe_load((ROOT / "configs" / "detectron2" / name).read_text(encoding="utf-8"))
    cfg = get_cfg()
    recipe, resize = CONFIGS[name]
    cfg.merge_from_file(str(ROOT / "configs" / recipe))
    expected = maskface_to_detectron2_config(cfg, resize=resize)
    assert committed.pop("OUTPUT_DIR") == f"./output/detectron2/{Path(name).stem}"
    expected.pop("OUTPUT_DIR")
    assert committed == expected


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_detectron2_builds_it(name):
    pytest.importorskip("detectron2")
    from detectron2.modeling import build_model

    from maskface.integrations.detectron2 import get_detectron2_cfg

    cfg = get_detectron2_cfg(str(ROOT / "configs" / "detectron2" / name), ["MODEL.DEVICE", "cpu"])
    model = build_model(cfg)
    assert type(model.roi_heads).__name__ == "FaceROIHeads" and model.roi_heads.num_classes == 1
    assert type(model).__name__ == ("MaskFaceRCNN" if CONFIGS[name][1] == "maskface" else "GeneralizedRCNN")
