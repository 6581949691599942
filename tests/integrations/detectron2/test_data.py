"""MaskFace COCO face files as Detectron2 datasets (maskface/integrations/detectron2/data.py):
registration, per-instance attributes, box-only and crowd faces, RLE masks, FaceDatasetMapper."""

import json
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("detectron2")

from detectron2.data import DatasetCatalog, MetadataCatalog  # noqa: E402
from detectron2.structures import BoxMode  # noqa: E402

from maskface.data.synthetic import make_synthetic_coco  # noqa: E402
from maskface.integrations.detectron2 import FaceDatasetMapper, register_face_datasets  # noqa: E402

LITE_D2_CONFIG = Path(__file__).resolve().parents[3] / "configs" / "detectron2" / "maskface_MV1_SSH_lite.yaml"


@pytest.fixture
def coco(tmp_path):
    """A synthetic face file with masked, box-only and crowd faces and attributes; one masked face
    stored as uncompressed RLE (counts list), as some converters write it."""
    path = make_synthetic_coco(str(tmp_path), num_images=6, size=(96, 128), faces_per_image=(2, 3),
                               box_only_fraction=0.4, crowd_fraction=0.15, seed=1)
    data = json.loads(open(path).read())
    ann = next(a for a in data["annotations"] if a["segmentation"] and not a["iscrowd"])
    x, y, w, h = (int(round(v)) for v in ann["bbox"])
    mask = np.zeros((96, 128), np.uint8)
    mask[y:y + h, x:x + w] = 1
    flat = mask.flatten(order="F")
    runs, prev, n = [], 0, 0
    for v in flat:
        if v != prev:
            runs.append(n)
            prev, n = v, 0
        n += 1
    runs.append(n)
    ann["segmentation"] = {"size": [96, 128], "counts": runs}
    ann["rle_face"] = True
    with open(path, "w") as f:
        json.dump(data, f)
    return path, data


@pytest.fixture
def names():
    made = []
    yield made
    for n in made:
        if n in DatasetCatalog.list():
            DatasetCatalog.remove(n)
            MetadataCatalog.remove(n)


def test_registered_dicts_carry_attributes_masks_and_box_only_faces(coco, names):
    path, data = coco
    names += register_face_datasets({"faces_test": path})
    dicts = DatasetCatalog.get("faces_test")
    assert len(dicts) == len(data["images"])
    by_id = {a["id"]: a for a in data["annotations"]}
    kinds = set()
    for d in dicts:
        assert d["file_name"].endswith(".png") and (d["height"], d["width"]) == (96, 128)
        for inst in d["annotations"]:
            src = by_id[inst["id"]]
            assert inst["bbox"] == pytest.approx(src["bbox"]) and inst["bbox_mode"] == BoxMode.XYWH_ABS
            assert inst["category_id"] == 0 and inst["iscrowd"] == src["iscrowd"]
            assert inst["attributes"] == src.get("attributes", {})
            if src["segmentation"] is None:
                assert "segmentation" not in inst
                kinds.add("box-only")
            elif src.get("rle_face"):
                assert isinstance(inst["segmentation"]["counts"], str)  # compressed for Detectron2
                kinds.add("rle")
            else:
                assert inst["segmentation"] == src["segmentation"]
                kinds.add("polygon")
            kinds.add("crowd" if inst["iscrowd"] else "face")
    assert kinds == {"box-only", "rle", "polygon", "crowd", "face"}
    assert any(inst["attributes"].get("gender") for d in dicts for inst in d["annotations"])
    meta = MetadataCatalog.get("faces_test")
    assert meta.thing_classes == ["face"] and meta.thing_dataset_id_to_contiguous_id == {1: 0}
    assert meta.evaluator_type == "coco" and meta.has_box_only_faces is True


def test_registration_errors(coco, names, tmp_path):
    path, _ = coco
    with pytest.raises(FileNotFoundError, match="missing.json"):
        register_face_datasets({"faces_missing": str(tmp_path / "missing.json")})
    names += register_face_datasets([path])  # a path registers under itself
    assert path in DatasetCatalog.list()
    with pytest.raises(KeyError, match="already registered"):
        register_face_datasets([path])
    assert register_face_datasets([path], replace=True) == [path]


def test_mapper_marks_box_only_faces_and_drops_crowds(coco, names):
    from maskface.integrations.detectron2.config import get_detectron2_cfg

    path, data = coco
    names += register_face_datasets({"faces_map": path})
    cfg = get_detectron2_cfg(str(LITE_D2_CONFIG),
                             ["INPUT.MIN_SIZE_TRAIN", "(96,)", "INPUT.MAX_SIZE_TRAIN", "128", "INPUT.RANDOM_FLIP", "none"])
    mapper = FaceDatasetMapper(cfg, is_train=True)
    seen_box_only = seen_masked = 0
    formats = set()
    for d in DatasetCatalog.get("faces_map"):
        expected = [a.get("segmentation") is not None for a in d["annotations"] if not a["iscrowd"]]
        inst = mapper(d)["instances"]
        assert inst.gt_has_mask.tolist() == expected  # crowd regions dropped, order kept
        if not expected:
            continue
        rle = any(isinstance(a.get("segmentation"), dict) for a in d["annotations"] if not a["iscrowd"])
        assert type(inst.gt_masks).__name__ == ("BitMasks" if rle else "PolygonMasks")  # polygons stay cheap
        assert len(inst.gt_masks) == len(expected) and inst.gt_masks.nonempty().all()
        seen_masked += sum(expected)
        seen_box_only += len(expected) - sum(expected)
        formats.add(type(inst.gt_masks).__name__)
    assert seen_box_only and seen_masked and formats == {"BitMasks", "PolygonMasks"}
