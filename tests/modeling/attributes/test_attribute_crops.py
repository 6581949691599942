import numpy as np
import pytest
import torch

from maskface.modeling.attributes.crops import (
    DEFAULT_FILL,
    PIXEL_MEAN,
    PIXEL_STD,
    extract_face_crops,
    normalize_crops,
    square_crop_boxes,
)

S = 32


def _image(h=64, w=80, value=(200, 30, 90)):
    img = np.zeros((h, w, 3), np.uint8)
    img[:] = value
    return img


def test_output_shape_dtype_and_normalisation():
    img = _image()
    crops = extract_face_crops(img, [[10, 10, 40, 50], [50, 5, 70, 25]], size=S)
    assert crops.shape == (2, 3, S, S) and crops.dtype == torch.float32
    # Face centre keeps the image colour, normalised; the corner (outside the ellipse) is the fill = 0.
    expected = (torch.tensor([200, 30, 90]) / 255.0 - torch.tensor(PIXEL_MEAN)) / torch.tensor(PIXEL_STD)
    assert torch.allclose(crops[0, :, S // 2, S // 2], expected, atol=1e-4)
    assert torch.allclose(crops[0, :, 0, 0], torch.zeros(3), atol=1e-6)
    assert torch.allclose(normalize_crops(torch.tensor(DEFAULT_FILL).view(1, 3, 1, 1)), torch.zeros(1, 3, 1, 1))


def test_mask_replaces_background_with_fill():
    img = _image()
    mask = np.zeros((64, 80), bool)
    mask[10:50, 10:25] = True  # left half of the box only
    crop = extract_face_crops(img, [[10, 10, 40, 50]], [mask], size=S, margin=0.0, dilate=0, feather=0,
                              normalize=False)[0]
    # window: x 5..45 (square, side 40), so x = 25 is crop column 16; right part is background.
    assert torch.allclose(crop[:, 20, 24:], torch.tensor(DEFAULT_FILL).view(3, 1).expand(3, 8), atol=1e-4)
    assert torch.allclose(crop[:, 20, 8], torch.tensor([200.0, 30.0, 90.0]), atol=1e-3)


def test_mask_dtypes_agree():
    img = _image()
    m = np.zeros((64, 80), bool)
    m[12:48, 12:38] = True
    box = [[10, 10, 40, 50]]
    ref = extract_face_crops(img, box, m[None], size=S)
    assert torch.allclose(ref, extract_face_crops(img, box, (m[None] * 255).astype(np.uint8), size=S), atol=1e-5)
    assert torch.allclose(ref, extract_face_crops(img, box, torch.from_numpy(m[None]).float(), size=S), atol=1e-5)


def test_margin_and_square_window():
    img = np.zeros((100, 100, 3), np.uint8)
    img[40:60, 40:60] = 255  # the box content is white, the rest black
    full = np.ones((1, 100, 100), bool)
    for margin, white in ((0.0, 1.0), (0.5, 0.25)):
        crop = extract_face_crops(img, [[40, 40, 60, 60]], full, size=S, margin=margin, dilate=0, feather=0,
                                  normalize=False)[0]
        assert abs(float((crop[0] > 127).float().mean()) - white) < 0.05
    # A tall box gives a square window with its longer side, centred: nothing stretched.
    win = square_crop_boxes(torch.tensor([[10.0, 20.0, 30.0, 60.0]]), margin=0.25)
    assert torch.allclose(win, torch.tensor([[-10.0, 10.0, 50.0, 70.0]]))  # side 40 * 1.5 around (20, 40)


def test_prior_ellipse_for_faces_without_mask():
    img = _image(100, 100)
    crop = extract_face_crops(img, [[30, 20, 50, 80]], None, size=S, margin=0.0, dilate=0, feather=0,
                              normalize=False)[0]
    face = (crop - torch.tensor(DEFAULT_FILL).view(3, 1, 1)).abs().sum(0) > 1
    rows, cols = face.any(1).nonzero().flatten(), face.any(0).nonzero().flatten()
    # A 20 x 60 box in a 60 px window: the ellipse spans ~1/3 of the width and all of the height.
    assert rows.numel() >= S - 2
    assert abs(cols.numel() - S / 3) <= 2
    assert not face[0, 0] and not face[S // 2, 0] and face[S // 2, S // 2]


def test_mixed_masks_and_none_entries():
    img = _image()
    m = np.zeros((64, 80), np.uint8)
    m[10:30, 10:40] = 1
    both = extract_face_crops(img, [[10, 10, 40, 50], [50, 5, 70, 25]], [m, None], size=S)
    assert torch.allclose(both[0], extract_face_crops(img, [[10, 10, 40, 50]], [m], size=S)[0])
    assert torch.allclose(both[1], extract_face_crops(img, [[50, 5, 70, 25]], None, size=S)[0])


def test_parts_outside_the_image_are_fill():
    img = _image(40, 40)
    full = np.ones((1, 40, 40), bool)
    crop = extract_face_crops(img, [[20, 20, 60, 60]], full, size=S, margin=0.0, dilate=0, feather=0,
                              normalize=False)[0]
    assert torch.allclose(crop[:, -4:, -4:], torch.tensor(DEFAULT_FILL).view(3, 1, 1).expand(3, 4, 4))
    assert torch.allclose(crop[:, 4, 4], torch.tensor([200.0, 30.0, 90.0]), atol=1e-3)


def test_no_faces_and_tensor_input():
    img = torch.from_numpy(_image())
    assert extract_face_crops(img, np.zeros((0, 4)), size=S).shape == (0, 3, S, S)
    assert extract_face_crops(img, torch.tensor([[1.0, 1.0, 20.0, 20.0]]), size=S).shape == (1, 3, S, S)


@pytest.mark.parametrize(
    "image, boxes, masks, exc, msg",
    [
        (np.zeros((32, 32), np.uint8), [[0, 0, 8, 8]], None, ValueError,
         r"expected a 3-channel image, got shape \(32, 32\)"),
        (np.zeros((32, 32, 4), np.uint8), [[0, 0, 8, 8]], None, ValueError, "expected a 3-channel image"),
        (np.zeros((32, 32, 3), np.float32), [[0, 0, 8, 8]], None, TypeError, "uint8"),
        (np.zeros((32, 32, 3), np.uint8), [[0, 0, 8]], None, ValueError, r"boxes of shape \(N, 4\)"),
        (np.zeros((32, 32, 3), np.uint8), [[8, 8, 0, 0]], None, ValueError, "x2 >= x1"),
        (np.zeros((32, 32, 3), np.uint8), [[0, 0, 8, 8]], np.zeros((2, 32, 32)), ValueError, "2 masks for 1 boxes"),
        (np.zeros((32, 32, 3), np.uint8), [[0, 0, 8, 8]], np.zeros((1, 16, 16)), ValueError, "the image is 32x32"),
    ],
)
def test_bad_inputs(image, boxes, masks, exc, msg):
    with pytest.raises(exc, match=msg):
        extract_face_crops(image, boxes, masks, size=S)


def test_ellipse_union_completes_a_partial_mask():
    img = _image()
    mask = np.zeros((64, 80), bool)
    mask[10:50, 10:18] = True  # a detector mask that caught only the left strip of the face
    box = [[10, 10, 40, 50]]
    kw = dict(size=S, margin=0.0, dilate=0, feather=0, normalize=False)
    only_mask = extract_face_crops(img, box, [mask], **kw)[0]
    union = extract_face_crops(img, box, [mask], ellipse_union=True, **kw)[0]
    ellipse = extract_face_crops(img, box, None, **kw)[0]
    fill = torch.tensor(DEFAULT_FILL).view(3, 1)
    face = torch.tensor([200.0, 30.0, 90.0]).view(3, 1)
    centre = (slice(None), S // 2, S // 2)
    assert torch.allclose(only_mask[centre].view(3, 1), fill, atol=1)  # centre lost without the union
    assert torch.allclose(union[centre].view(3, 1), face, atol=1)  # ellipse brings it back
    assert torch.allclose(union[:, 0, 0].view(3, 1), fill, atol=1)  # corners stay background
    # the union covers at least both the mask and the ellipse
    is_face = lambda c: (c - fill.view(3, 1, 1)).abs().sum(0) > 1
    assert bool((is_face(union) >= is_face(only_mask)).all() and (is_face(union) >= is_face(ellipse)).all())
    # faces without a mask are unchanged by the flag
    assert torch.equal(extract_face_crops(img, box, None, ellipse_union=True, **kw)[0], ellipse)


def test_dilation_does_not_reach_past_the_image_edge():
    # A face at the top edge with a large dilation: the window's rows above the image must be the
    # fill grey, not the zeros roi_align reads there (which would be black).
    img = np.full((100, 100, 3), 200, np.uint8)
    full = np.ones((1, 100, 100), bool)
    crop = extract_face_crops(img, [[30, 0, 70, 40]], full, size=S, margin=0.25, dilate=6, feather=1.0,
                              normalize=False)[0]
    # window y from -10 to 50 (60 px -> S rows): the first ~S/6 rows lie above the image.
    outside = crop[:, : S // 6 - 1]
    assert torch.allclose(outside, torch.tensor(DEFAULT_FILL).view(3, 1, 1).expand_as(outside), atol=1e-3)
    assert float(crop[:, S // 2, S // 2].min()) > 190  # the face itself is untouched
