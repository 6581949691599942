"""Geometric / photometric transforms and COCO segmentation decoding."""

import numpy as np
import pytest
from pycocotools import mask as mask_utils

from maskface.data import transforms as T


def test_shortest_edge_size_respects_cap():
    assert T.shortest_edge_size(480, 640, 384, 1000) == (384, 512)
    assert T.shortest_edge_size(100, 1000, 200, 1000) == (100, 1000)  # capped by the long side
    rng = np.random.default_rng(0)
    drawn = {T.choose_train_size(480, 640, [320, 384], 2000, rng)[0] for _ in range(50)}
    assert drawn == {320, 384}


def test_hflip_boxes_and_masks_agree():
    w = 20
    boxes = np.array([[2.0, 3.0, 7.0, 9.0]], np.float32)
    masks = np.zeros((1, 12, w), np.uint8)
    masks[0, 3:9, 2:7] = 1
    fb, fm = T.hflip_boxes(boxes, w), T.hflip_masks(masks)
    ys, xs = np.nonzero(fm[0])
    assert fb.tolist() == [[13.0, 3.0, 18.0, 9.0]]
    assert (xs.min(), xs.max() + 1) == (13, 18)
    assert np.array_equal(T.hflip_boxes(fb, w), boxes)


def test_polygon_decoded_at_output_size_matches_full_decode_resized():
    poly = [[10.0, 10.0, 50.0, 12.0, 45.0, 60.0, 12.0, 55.0]]
    full = T.segmentation_to_mask(poly, 80, 100)
    assert full.dtype == np.uint8 and full.shape == (80, 100)
    ref = mask_utils.decode(mask_utils.merge(mask_utils.frPyObjects(poly, 80, 100)))
    assert np.array_equal(full, ref)
    half = T.segmentation_to_mask(poly, 80, 100, 40, 50)
    assert half.shape == (40, 50)
    assert abs(int(half.sum()) * 4 - int(full.sum())) < 0.1 * full.sum()


def test_rle_compressed_and_uncompressed_and_none():
    m = np.zeros((30, 40), np.uint8)
    m[5:20, 10:30] = 1
    rle = mask_utils.encode(np.asfortranarray(m))
    rle_str = {"size": rle["size"], "counts": rle["counts"].decode("ascii")}
    assert np.array_equal(T.segmentation_to_mask(rle_str, 30, 40), m)
    resized = T.segmentation_to_mask(rle_str, 30, 40, 60, 80)
    assert resized.shape == (60, 80) and resized.sum() == 4 * m.sum()
    # uncompressed RLE: column-major run lengths
    flat = m.flatten(order="F")
    runs, cur, n = [], 0, 0
    for v in flat:
        if v != cur:
            runs.append(n)
            cur, n = v, 0
        n += 1
    runs.append(n)
    assert np.array_equal(T.segmentation_to_mask({"size": [30, 40], "counts": runs}, 30, 40), m)
    assert T.segmentation_to_mask(None, 30, 40, 6, 8).sum() == 0
    with pytest.raises(TypeError):
        T.segmentation_to_mask("nonsense", 30, 40)


def test_color_jitter_keeps_shape_and_off_is_identity():
    rng = np.random.default_rng(0)
    img = rng.integers(0, 255, (20, 30, 3), dtype=np.uint8)
    assert T.color_jitter(img, 0.0, rng) is img
    out = T.color_jitter(img, 0.4, rng)
    assert out.shape == img.shape and out.dtype == np.uint8 and not np.array_equal(out, img)


def test_degenerate_and_clip():
    boxes = np.array([[-5, 2, 10, 10], [3, 3, 3.5, 9], [0, 0, 40, 40]], np.float32)
    clipped = T.clip_boxes(boxes, 20, 30)
    assert clipped.tolist()[0] == [0, 2, 10, 10] and clipped.tolist()[2] == [0, 0, 30, 20]
    assert T.nondegenerate(clipped).tolist() == [True, False, True]
