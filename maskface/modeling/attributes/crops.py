"""The one face-crop function shared by attribute training, evaluation and inference.

Every face the attribute net ever sees -- in the crop cache built for training, in evaluation and
behind :class:`~maskface.FacePredictor` -- goes through :func:`extract_face_crops`, so the net is
never asked to read crops that look different from the ones it was trained on.

Geometry
    The face box (xyxy, px) is grown by ``margin`` x its size on each side, then made square around
    its centre with the side ``max(w, h) * (1 + 2 * margin)`` (aspect ratio kept: nothing is
    stretched), and resampled to ``size x size`` with :func:`torchvision.ops.roi_align`
    (``aligned=True``; adaptive sampling, so large faces are area-averaged, not aliased). All faces
    of an image go through one ``roi_align`` call. Parts of the square outside the image count as
    background.

Mask
    The face mask is resampled with the same geometry, optionally dilated (``dilate`` px, max
    filter) and feathered (Gaussian blur of sigma ``feather`` px) at crop resolution, and used as
    an alpha matte: ``crop = alpha * face + (1 - alpha) * fill``. Background (hair, neck, other
    people, scenery) is replaced by the neutral ``fill`` grey, which is exactly the normalisation
    mean, so it becomes 0 in the net's input.

Faces without a mask (the "prior mask" policy)
    Inference masks come from the Mask R-CNN and are face-skin shaped (hair, neck and background
    excluded). Attribute training sets such as UTKFace and FER2013 have boxes but no masks. For
    those faces the mask is the ellipse inscribed in the face box (before the margin), with an
    anti-aliased edge and the same dilation / feathering, so training crops show the same thing
    inference crops show: a face-shaped region on a flat grey background. Pass ``masks=None`` (all
    faces) or a list with ``None`` entries (those faces) to get it.

Ellipse union (``ellipse_union=True``)
    A detector mask can miss part of the face (the forehead, one cheek), and then the crop shows a
    fragment. With ``ellipse_union`` the matte is ``max(mask, ellipse)``: the mask completed by
    the ellipse inscribed in the face box. Everything outside both (other faces, scenery) stays
    grey. Mask-less training faces get the ellipse either way, so they match inference crops.

Output
    ``float32 (N, 3, size, size)`` RGB. With ``normalize=True`` (what the net expects):
    ``(pixel / 255 - PIXEL_MEAN) / PIXEL_STD`` with the constants below, i.e. roughly [-2, 2] and
    background exactly 0. With ``normalize=False``: pixel values in [0, 255] (what the crop cache
    stores as uint8 JPEG; :func:`normalize_crops` turns them into net input later, after
    augmentation).
"""

from __future__ import annotations

import math
from typing import Optional, Sequence, Tuple, Union

import numpy as np
import torch
import torch.nn.functional as F
from torchvision.ops import roi_align

ArrayLike = Union[np.ndarray, torch.Tensor]

#: Neutral background grey (RGB, 0..255) that replaces everything outside the face mask.
DEFAULT_FILL: Tuple[float, float, float] = (128.0, 128.0, 128.0)
#: Normalisation of net input: ``(x / 255 - PIXEL_MEAN) / PIXEL_STD``. The mean equals the fill
#: grey, so masked-out background is exactly 0.
PIXEL_MEAN: Tuple[float, float, float] = (128.0 / 255.0,) * 3
PIXEL_STD: Tuple[float, float, float] = (0.25, 0.25, 0.25)


def square_crop_boxes(boxes: torch.Tensor, margin: float) -> torch.Tensor:
    """Face boxes ``(N, 4)`` xyxy px -> square crop windows ``(N, 4)`` xyxy px.

    The window is centred on the box, with side ``max(w, h) * (1 + 2 * margin)`` (at least 1 px).
    """
    cx = (boxes[:, 0] + boxes[:, 2]) * 0.5
    cy = (boxes[:, 1] + boxes[:, 3]) * 0.5
    side = torch.maximum(boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]) * (1.0 + 2.0 * margin)
    half = side.clamp(min=1.0) * 0.5
    return torch.stack([cx - half, cy - half, cx + half, cy + half], dim=1)


def normalize_crops(crops: torch.Tensor) -> torch.Tensor:
    """Pixel values ``(N, 3, S, S)`` in [0, 255] (any dtype) -> float32 net input.

    ``(x / 255 - PIXEL_MEAN) / PIXEL_STD``; the fill grey maps to 0.
    """
    mean = torch.tensor(PIXEL_MEAN, device=crops.device).view(1, 3, 1, 1)
    std = torch.tensor(PIXEL_STD, device=crops.device).view(1, 3, 1, 1)
    return (crops.float() / 255.0 - mean) / std


def _image_tensor(image: ArrayLike) -> torch.Tensor:
    """HxWx3 uint8 (numpy or tensor) -> float32 (1, 3, H, W) on the image's device."""
    shape = tuple(image.shape)
    if len(shape) != 3 or shape[2] != 3:
        raise ValueError(f"expected a 3-channel image, got shape {shape}")
    t = torch.from_numpy(np.ascontiguousarray(image)) if isinstance(image, np.ndarray) else image
    if t.dtype != torch.uint8:
        raise TypeError(f"expected a uint8 RGB image (H, W, 3), got dtype {t.dtype}")
    return t.permute(2, 0, 1).unsqueeze(0).float()


def _boxes_tensor(boxes: ArrayLike, device: torch.device) -> torch.Tensor:
    b = torch.as_tensor(np.asarray(boxes) if not isinstance(boxes, torch.Tensor) else boxes)
    b = b.to(device=device, dtype=torch.float32)
    if b.numel() == 0:
        return b.reshape(0, 4)
    if b.dim() != 2 or b.shape[1] != 4:
        raise ValueError(f"expected boxes of shape (N, 4) xyxy, got shape {tuple(b.shape)}")
    if not torch.isfinite(b).all():
        raise ValueError("boxes contain NaN or infinite values")
    if (b[:, 2] < b[:, 0]).any() or (b[:, 3] < b[:, 1]).any():
        raise ValueError("boxes must be xyxy with x2 >= x1 and y2 >= y1")
    return b


def _ellipse_masks(boxes: torch.Tensor, windows: torch.Tensor, size: int) -> torch.Tensor:
    """Ellipses inscribed in ``boxes``, drawn in the crop frame of ``windows``: (N, 1, S, S) in [0, 1].

    The edge is anti-aliased over about one crop pixel.
    """
    scale = size / (windows[:, 2] - windows[:, 0])  # crop px per image px (windows are square)
    cx = ((boxes[:, 0] + boxes[:, 2]) * 0.5 - windows[:, 0]) * scale
    cy = ((boxes[:, 1] + boxes[:, 3]) * 0.5 - windows[:, 1]) * scale
    rx = ((boxes[:, 2] - boxes[:, 0]) * 0.5 * scale).clamp(min=0.5)
    ry = ((boxes[:, 3] - boxes[:, 1]) * 0.5 * scale).clamp(min=0.5)
    grid = torch.arange(size, device=boxes.device, dtype=torch.float32) + 0.5
    dx = (grid.view(1, 1, -1) - cx.view(-1, 1, 1)) / rx.view(-1, 1, 1)
    dy = (grid.view(1, -1, 1) - cy.view(-1, 1, 1)) / ry.view(-1, 1, 1)
    radius = torch.sqrt(dx * dx + dy * dy)  # 1 on the ellipse
    # (1 - radius) * min radius ~ signed distance to the edge in crop px; a 1 px linear ramp.
    dist = (1.0 - radius) * torch.minimum(rx, ry).view(-1, 1, 1)
    return (dist + 0.5).clamp(0.0, 1.0).unsqueeze(1)


def _resample_masks(
    masks: Sequence[Optional[ArrayLike]], windows: torch.Tensor, size: int
) -> Tuple[torch.Tensor, torch.Tensor]:
    """Per-face full-image masks -> (N, 1, S, S) alpha in [0, 1] and a (N,) bool "had a mask".

    Only each window's part of the mask is converted to float, so a few large images with many
    faces stay cheap.
    """
    n = windows.shape[0]
    out = torch.zeros((n, 1, size, size), device=windows.device)
    has = torch.zeros(n, dtype=torch.bool, device=windows.device)
    for i, m in enumerate(masks):
        if m is None:
            continue
        m = torch.as_tensor(np.asarray(m) if not isinstance(m, torch.Tensor) else m, device=windows.device)
        if m.dim() != 2:
            raise ValueError(f"mask {i}: expected shape (H, W), got {tuple(m.shape)}")
        has[i] = True
        h, w = m.shape
        x0, y0, x1, y1 = windows[i].tolist()
        # Integer region covering the window (1 px extra for bilinear taps), clipped to the mask.
        rx0, ry0 = max(int(math.floor(x0)) - 1, 0), max(int(math.floor(y0)) - 1, 0)
        rx1, ry1 = min(int(math.ceil(x1)) + 1, w), min(int(math.ceil(y1)) + 1, h)
        if rx1 <= rx0 or ry1 <= ry0:
            continue  # window entirely outside the image: no face pixels
        region = m[ry0:ry1, rx0:rx1].float()
        if m.dtype == torch.uint8 and region.max() > 1:
            region = region / 255.0
        roi = torch.tensor([[0.0, x0 - rx0, y0 - ry0, x1 - rx0, y1 - ry0]], device=windows.device)
        out[i] = roi_align(region[None, None], roi, output_size=size, sampling_ratio=-1, aligned=True)[0]
    return out.clamp_(0.0, 1.0), has


def _inside_image(windows: torch.Tensor, height: int, width: int, size: int) -> torch.Tensor:
    """(N, 1, S, S) 1 where a crop pixel's centre lies inside the image, else 0."""
    step = (windows[:, 2] - windows[:, 0]) / size
    t = torch.arange(size, device=windows.device, dtype=torch.float32) + 0.5
    xs = windows[:, 0:1] + t.view(1, -1) * step.view(-1, 1)  # (N, S)
    ys = windows[:, 1:2] + t.view(1, -1) * step.view(-1, 1)
    inx = (xs >= 0) & (xs <= width)
    iny = (ys >= 0) & (ys <= height)
    return (iny.unsqueeze(2) & inx.unsqueeze(1)).unsqueeze(1).float()


def _gaussian_blur(x: torch.Tensor, sigma: float) -> torch.Tensor:
    """Separable Gaussian blur of (N, 1, S, S); outside the crop counts as 0 (background)."""
    radius = max(1, int(math.ceil(3.0 * sigma)))
    t = torch.arange(-radius, radius + 1, device=x.device, dtype=torch.float32)
    k = torch.exp(-0.5 * (t / sigma) ** 2)
    k = k / k.sum()
    x = F.conv2d(x, k.view(1, 1, 1, -1), padding=(0, radius))
    return F.conv2d(x, k.view(1, 1, -1, 1), padding=(radius, 0))


def extract_face_crops(
    image: ArrayLike,
    boxes: ArrayLike,
    masks: Optional[Union[ArrayLike, Sequence[Optional[ArrayLike]]]] = None,
    size: int = 64,
    margin: float = 0.2,
    fill: Sequence[float] = DEFAULT_FILL,
    dilate: int = 1,
    feather: float = 1.0,
    normalize: bool = True,
    ellipse_union: bool = False,
) -> torch.Tensor:
    """Masked, square, fixed-size crops of all faces of one image, in one call.

    Args:
        image: ``(H, W, 3)`` uint8 RGB, numpy array or tensor (a CUDA tensor keeps the work on the
            GPU).
        boxes: ``(N, 4)`` face boxes, xyxy, pixels (continuous coordinates: ``[0, 0, W, H]`` is the
            whole image).
        masks: ``(N, H, W)`` bool / uint8 (0/1 or 0/255) / float in [0, 1]; or a length-``N``
            sequence of ``(H, W)`` masks where ``None`` means "no mask for this face"; or ``None``
            (no masks at all). Faces without a mask get the inscribed-ellipse prior mask (see the
            module docstring).
        size: ``S``, side of the output crops in pixels.
        margin: the box grows by ``margin`` x its width/height on each side before squaring.
        fill: RGB background value in [0, 255] (default: mid grey, the normalisation mean).
        dilate: grow the mask by this many crop pixels before feathering (0 = off).
        feather: Gaussian sigma in crop pixels of the soft mask edge (0 = hard edge).
        normalize: True -> net input ``(x / 255 - PIXEL_MEAN) / PIXEL_STD``; False -> [0, 255].
        ellipse_union: complete each given mask with the ellipse inscribed in its face box
            (see the module docstring).

    Returns:
        ``float32 (N, 3, S, S)`` RGB crops on the image's device (``(0, 3, S, S)`` for no faces).
    """
    img = _image_tensor(image)
    height, width = img.shape[-2:]
    device = img.device
    b = _boxes_tensor(boxes, device)
    if size < 1:
        raise ValueError(f"size must be >= 1 px, got {size}")
    if margin < 0:
        raise ValueError(f"margin must be >= 0, got {margin}")
    n = b.shape[0]
    if n == 0:
        return torch.zeros((0, 3, size, size), device=device)
    if masks is not None:
        if len(masks) != n:
            raise ValueError(f"got {len(masks)} masks for {n} boxes")
        for i, m in enumerate(masks):
            if m is not None and tuple(m.shape) != (height, width):
                raise ValueError(f"mask {i} has shape {tuple(m.shape)}, the image is {height}x{width}")
    windows = square_crop_boxes(b, margin)
    rois = torch.cat([torch.zeros((n, 1), device=device), windows], dim=1)
    crops = roi_align(img, rois, output_size=size, sampling_ratio=-1, aligned=True)

    alpha = _ellipse_masks(b, windows, size)
    if masks is not None:
        given, has = _resample_masks(list(masks), windows, size)
        if ellipse_union:
            given = torch.maximum(given, alpha)
        alpha = torch.where(has.view(-1, 1, 1, 1), given, alpha)
    if dilate > 0:  # square max filter as a row pass then a column pass: same result, k/2 x fewer reads
        k = 2 * dilate + 1
        alpha = F.max_pool2d(alpha, kernel_size=(1, k), stride=1, padding=(0, dilate))
        alpha = F.max_pool2d(alpha, kernel_size=(k, 1), stride=1, padding=(dilate, 0))
    if feather > 0:
        alpha = _gaussian_blur(alpha, feather)
    # Last, so that dilation and feathering cannot reach past the image edge: outside the image
    # roi_align reads zeros, which would show as black instead of the fill grey.
    alpha = alpha * _inside_image(windows, height, width, size)

    fill_t = torch.as_tensor(fill, dtype=torch.float32, device=device).view(1, 3, 1, 1)
    out = alpha * crops + (1.0 - alpha) * fill_t
    return normalize_crops(out) if normalize else out
