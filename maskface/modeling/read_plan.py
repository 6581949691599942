"""How the detector reads one picture: at what scale, in how many passes, in which tiles.

One rule for portraits, group photos and 4K frames (``MODEL.RESIZE "native"``, the lite setting):

* a picture is read at its own resolution when its shorter side is at least ``MODEL.MIN_SIZE``
  and its longer side at most ``MODEL.MAX_SIZE``;
* a smaller picture is enlarged until its shorter side reaches ``MIN_SIZE`` (face chips,
  thumbnails: the faces then reach the anchors' sizes), the longer side still capped at
  ``MAX_SIZE``;
* a larger picture (``MODEL.TILE``) is cut into tiles of at most ``MAX_SIZE`` x ``MAX_SIZE`` px read at
  its own resolution, overlapping by ``2 x MODEL.MERGE_BAND[1]`` px so that every face the tiles keep lies
  whole in at least one tile, and read once more whole, shrunk to ``MAX_SIZE``, for the faces too
  large for a tile. Tiles keep faces under ``MERGE_BAND[1]`` px, the whole picture faces of at
  least ``MERGE_BAND[0]`` px (:func:`~maskface.modeling.face_rcnn.merge_passes`); faces cut by a
  tile's inner edge are dropped from that tile (the neighbouring tile holds them whole). Without
  ``MODEL.TILE`` a larger picture is shrunk to ``MAX_SIZE``.

``MODEL.RESIZE "shorter_side"`` is torchvision's rule (every picture's shorter side brought to
``MIN_SIZE``, up or down, the longer capped at ``MAX_SIZE``), kept for the configs trained and
evaluated with it (the crowd setting reads 640 x 480 pictures 3x enlarged through it).
``MODEL.EXTRA_PASS_SIZE`` adds a second whole-picture pass (the crowd setting's 1x pass).

The plan works on any detector with ``detect_unpasted(images, score_thresh)``
(:meth:`~maskface.modeling.face_rcnn.FaceRCNN.detect_unpasted`, and the ONNX Runtime detector),
so both runtimes and the evaluation read pictures the same way.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import torch

RESIZE_MODES = ("shorter_side", "native")

DetectFn = Callable[..., List[Dict[str, torch.Tensor]]]


def input_scale(height: int, width: int, min_size: int, max_size: int, mode: str = "shorter_side") -> float:
    """Factor by which a ``height x width`` picture is resized before the detector.

    ``"shorter_side"``: ``min(min_size / shorter, max_size / longer)``; ``"native"``:
    ``min(max(1, min_size / shorter), max_size / longer)`` (own size unless too small or too large).
    """
    if mode not in RESIZE_MODES:
        raise ValueError(f"resize mode must be one of {RESIZE_MODES}, got {mode!r}")
    if min(height, width) <= 0:
        raise ValueError(f"expected a picture with positive sides, got {height} x {width}")
    # Python floats, as torchvision's GeneralizedRCNNTransform computes them (same output sizes)
    up = min_size / min(height, width)
    if mode == "native":
        up = max(1.0, up)
    return min(up, max_size / max(height, width))


def resize_image(image: torch.Tensor, scale: float, antialias: bool = False) -> torch.Tensor:
    """``(3, H, W)`` float -> ``(3, h, w)`` resized by ``scale`` (bilinear, ``align_corners=False``),
    as torchvision's detection transform resizes (``recompute_scale_factor=True``); the same
    image when ``scale`` is 1. ``antialias``: low-pass when shrinking (a 4K picture read at
    1280 px would alias otherwise)."""
    if scale == 1.0:
        return image
    return torch.nn.functional.interpolate(image[None], scale_factor=scale, mode="bilinear",
                                           recompute_scale_factor=True, align_corners=False,
                                           antialias=antialias and scale < 1.0)[0]


def tile_windows(height: int, width: int, tile: int, overlap: int) -> List[Tuple[int, int, int, int]]:
    """``(x0, y0, x1, y1)`` windows of at most ``tile`` x ``tile`` px covering the picture, evenly
    spread, neighbours overlapping by at least ``overlap`` px. Per axis, the fewest windows that
    fit, each no larger than needed (a 1600 px side with 1280 px tiles: two of 928 px, not two of
    1280): all windows have the same size, so they go through the detector as one batch."""
    if not 0 <= overlap < tile:
        raise ValueError(f"tile overlap must be in [0, tile), got overlap {overlap} for tile {tile}")

    def axis(n: int) -> Tuple[List[int], int]:
        if n <= tile:
            return [0], n
        count = math.ceil((n - overlap) / (tile - overlap))
        size = min(tile, math.ceil((n + (count - 1) * overlap) / count))
        return [round(i * (n - size) / (count - 1)) for i in range(count)], size

    xs, tw = axis(width)
    ys, th = axis(height)
    return [(x, y, x + tw, y + th) for y in ys for x in xs]


def inner_edge_keep(boxes: torch.Tensor, window: Sequence[int], height: int, width: int,
                    margin: float = 2.0) -> torch.Tensor:
    """``(N,)`` bool: boxes (in the picture's px) that do not touch an edge of ``window`` lying
    inside the picture (within ``margin`` px): those faces are cut by the tile."""
    x0, y0, x1, y1 = window
    keep = torch.ones(len(boxes), dtype=torch.bool, device=boxes.device)
    if x0 > 0:
        keep &= boxes[:, 0] > x0 + margin
    if y0 > 0:
        keep &= boxes[:, 1] > y0 + margin
    if x1 < width:
        keep &= boxes[:, 2] < x1 - margin
    if y1 < height:
        keep &= boxes[:, 3] < y1 - margin
    return keep


@dataclass(frozen=True)
class ReadPlan:
    """The reading rule of a detector config (module docstring); plain values, no model.

    Attributes:
        min_size, max_size: px (``MODEL.MIN_SIZE`` / ``MODEL.MAX_SIZE``).
        resize: ``"shorter_side"`` or ``"native"``.
        tile: read pictures larger than ``max_size`` in tiles (``"native"`` only).
        extra_pass_size: ``(min_size, max_size)`` of a second whole-picture pass, or ``None``.
        merge_band: ``(low, high)`` face size, px of the picture, where two passes overlap.
        nms_thresh, max_detections: of the merge.
    """

    min_size: int
    max_size: int
    resize: str = "shorter_side"
    tile: bool = False
    extra_pass_size: Optional[Tuple[int, int]] = None
    merge_band: Tuple[float, float] = (64.0, 128.0)
    nms_thresh: float = 0.4
    max_detections: int = 100

    def __post_init__(self):
        if self.resize not in RESIZE_MODES:
            raise ValueError(f"MODEL.RESIZE must be one of {RESIZE_MODES}, got {self.resize!r}")
        if self.tile and self.resize != "native":
            raise ValueError("MODEL.TILE needs MODEL.RESIZE 'native' (tiles are read at the picture's own size)")
        if not (int(self.min_size) > 0 and int(self.max_size) > 0):
            raise ValueError(f"MODEL.MIN_SIZE / MAX_SIZE must be > 0, got {self.min_size} / {self.max_size}")
        if self.tile and 2 * self.merge_band[1] >= self.max_size:
            raise ValueError(f"tiles overlap by 2 x MODEL.MERGE_BAND[1] = {2 * self.merge_band[1]:g} px, which must be "
                             f"below MODEL.MAX_SIZE {self.max_size}")

    @classmethod
    def from_config(cls, cfg, max_size: Optional[int] = None) -> "ReadPlan":
        """From ``cfg.MODEL``; ``max_size`` overrides ``MODEL.MAX_SIZE`` (the predictor's
        ``max_size``; ``MIN_SIZE`` is then capped by it)."""
        m = cfg.MODEL
        top = int(m.MAX_SIZE if max_size is None else max_size)
        extra = tuple(int(v) for v in m.EXTRA_PASS_SIZE) if len(m.EXTRA_PASS_SIZE) else None
        return cls(min_size=min(int(m.MIN_SIZE), top), max_size=top, resize=str(m.get("RESIZE", "shorter_side")),
                   tile=bool(m.get("TILE", False)), extra_pass_size=extra,
                   merge_band=(float(m.MERGE_BAND[0]), float(m.MERGE_BAND[1])),
                   nms_thresh=float(m.NMS_THRESH), max_detections=int(m.DETECTIONS_PER_IMAGE))

    @property
    def overlap(self) -> int:
        """Tile overlap, px: twice the largest face size the tiles keep."""
        return int(2 * self.merge_band[1])

    @property
    def is_plain(self) -> bool:
        """One resize, one pass: what torchvision's ``GeneralizedRCNN`` does by itself."""
        return self.resize == "shorter_side" and self.extra_pass_size is None

    def scale(self, height: int, width: int) -> float:
        """Resize factor of the (first) whole-picture pass."""
        return input_scale(height, width, self.min_size, self.max_size, self.resize)

    def tiles(self, height: int, width: int) -> Optional[List[Tuple[int, int, int, int]]]:
        """The tile windows of a picture, or ``None`` when it is read whole."""
        if not self.tile or max(height, width) <= self.max_size:
            return None
        return tile_windows(height, width, self.max_size, self.overlap)

    def megapixels_read(self, height: int, width: int) -> float:
        """Pixels the detector reads for a picture (all passes and tiles), in millions: the cost."""
        s = self.scale(height, width)
        total = round(height * s) * round(width * s)
        windows = self.tiles(height, width)
        if windows:
            total += sum((x1 - x0) * (y1 - y0) for x0, y0, x1, y1 in windows)
        if self.extra_pass_size:
            e = input_scale(height, width, *self.extra_pass_size)
            total += round(height * e) * round(width * e)
        return total / 1e6

    def detect(self, detect_unpasted: DetectFn, images: Sequence[torch.Tensor],
               score_thresh: Optional[float] = None, tile_batch: int = 4) -> List[Dict[str, torch.Tensor]]:
        """Faces of each picture, read by this plan.

        Args:
            detect_unpasted: the detector's :meth:`~maskface.modeling.face_rcnn.FaceRCNN.detect_unpasted`
                (or the ONNX Runtime detector's): a list of ``(3, h, w)`` float tensors -> per image
                ``boxes`` (N, 4) px of that input, ``scores`` (N,), ``masks`` (N, M, M) box-sized.
            images: ``(3, H, W)`` float RGB in 0..1 at the picture's own size.
            score_thresh: passed on to ``detect_unpasted``.
            tile_batch: tiles per detector call.

        Returns:
            Per picture the same keys with ``boxes`` in the picture's px (``(H, W)``), sorted by
            score where passes were merged; masks stay box-sized (paste them once, at the end).
        """
        from maskface.modeling.face_rcnn import merge_passes

        kw = {} if score_thresh is None else {"score_thresh": score_thresh}
        native = self.resize == "native"
        first = [resize_image(img, self.scale(img.shape[-2], img.shape[-1]), antialias=native) for img in images]
        outs = [_to_picture_px(o, x, img) for o, x, img in zip(detect_unpasted(first, **kw), first, images)]
        if self.extra_pass_size:
            second = [resize_image(img, input_scale(img.shape[-2], img.shape[-1], *self.extra_pass_size))
                      for img in images]
            outs2 = [_to_picture_px(o, x, img) for o, x, img in zip(detect_unpasted(second, **kw), second, images)]
            outs = [merge_passes(*((a, b) if xa.shape[-1] >= xb.shape[-1] else (b, a)), self.merge_band,
                                 self.nms_thresh, self.max_detections)
                    for a, b, xa, xb in zip(outs, outs2, first, second)]
        for i, img in enumerate(images):
            h, w = img.shape[-2:]
            windows = self.tiles(h, w)
            if windows:
                tiled = self._detect_tiles(detect_unpasted, img, windows, kw, tile_batch)
                outs[i] = merge_passes(tiled, outs[i], self.merge_band, self.nms_thresh, self.max_detections)
        return outs

    def _detect_tiles(self, detect_unpasted: DetectFn, image: torch.Tensor, windows, kw, tile_batch: int):
        h, w = image.shape[-2:]
        parts = []
        for s in range(0, len(windows), tile_batch):
            group = windows[s:s + tile_batch]
            crops = [image[:, y0:y1, x0:x1] for x0, y0, x1, y1 in group]
            for out, (x0, y0, x1, y1) in zip(detect_unpasted(crops, **kw), group):
                boxes = out["boxes"] + out["boxes"].new_tensor([x0, y0, x0, y0])
                keep = inner_edge_keep(boxes, (x0, y0, x1, y1), h, w)
                parts.append({**{k: v[keep] for k, v in out.items()}, "boxes": boxes[keep]})
        return {k: torch.cat([p[k] for p in parts]) for k in parts[0]}


def _to_picture_px(out: Dict[str, torch.Tensor], seen: torch.Tensor, picture: torch.Tensor) -> Dict[str, torch.Tensor]:
    """Boxes of a pass that read ``seen`` scaled to the pixels of ``picture``."""
    if seen.shape[-2:] == picture.shape[-2:]:
        return dict(out)
    sx, sy = picture.shape[-1] / seen.shape[-1], picture.shape[-2] / seen.shape[-2]
    return {**out, "boxes": out["boxes"] * out["boxes"].new_tensor([sx, sy, sx, sy])}
