"""Drawing faces: mask overlay (alpha blend), box, and a label with a filled background.

Colours come from the face's ``track_id`` when it has one (the same person keeps the same
colour through a video), else from its index in the image. Line widths and font sizes scale
with the image, so the drawing reads the same on a 320 px thumbnail and a 6000 px photo.
"""

from __future__ import annotations

import colorsys
from typing import Optional, Sequence, Tuple

import numpy as np

from maskface.inference.results import Face

__all__ = ["color_for", "draw_faces"]


def color_for(key: int) -> Tuple[int, int, int]:
    """A distinct, saturated RGB colour for an integer key (golden-ratio hue walk)."""
    hue = (0.13 + 0.618033988749895 * int(key)) % 1.0
    r, g, b = colorsys.hsv_to_rgb(hue, 0.85, 0.95)
    return int(r * 255), int(g * 255), int(b * 255)


def draw_faces(
    image: np.ndarray,
    faces: Sequence[Face],
    color: str = "bgr",
    alpha: float = 0.4,
    draw_masks: bool = True,
    draw_boxes: bool = True,
    draw_labels: bool = True,
    copy: bool = True,
    thickness: Optional[int] = None,
) -> np.ndarray:
    """Draw ``faces`` on ``image`` and return it.

    Args:
        image: ``H x W x 3`` uint8, channel order given by ``color`` (``"bgr"`` default, as
            OpenCV reads/writes; ``"rgb"``). The result has the same order.
        faces: faces whose boxes/masks are in ``image``'s pixels. A mask whose size differs
            from the image is skipped (boxes are still drawn).
        alpha: mask overlay opacity.
        copy: draw on a copy (default) or in place.
    """
    import cv2

    if color not in ("bgr", "rgb"):
        raise ValueError(f"color must be 'bgr' or 'rgb', got {color!r}")
    if not (isinstance(image, np.ndarray) and image.ndim == 3 and image.shape[2] == 3 and image.dtype == np.uint8):
        shape = getattr(image, "shape", None)
        raise ValueError(f"expected a 3-channel uint8 image, got shape {shape} dtype {getattr(image, 'dtype', None)}")
    out = image.copy() if copy else image
    if not out.flags.c_contiguous:
        out = np.ascontiguousarray(out)
    h, w = out.shape[:2]
    side = max(h, w)
    lw = thickness or max(1, int(round(side / 400)))
    font_scale = max(0.35, side / 1400)
    font_thick = max(1, int(round(font_scale * 1.5)))

    def col(i, f):
        rgb = color_for(f.track_id if f.track_id is not None else i)
        return rgb[::-1] if color == "bgr" else rgb

    if draw_masks and alpha > 0:
        for i, f in enumerate(faces):
            m = f.mask
            if m is None or m.shape != (h, w):
                continue
            c = np.array(col(i, f), dtype=np.float32)
            # Blend only inside the box's bounding rows/cols: cheap on big images with small faces.
            ys, xs = np.nonzero(m.any(axis=1))[0], np.nonzero(m.any(axis=0))[0]
            if ys.size == 0:
                continue
            y0, y1, x0, x1 = ys[0], ys[-1] + 1, xs[0], xs[-1] + 1
            sub = out[y0:y1, x0:x1]
            mm = m[y0:y1, x0:x1]
            blended = sub[mm].astype(np.float32) * (1 - alpha) + c * alpha
            sub[mm] = blended.round().clip(0, 255).astype(np.uint8)

    for i, f in enumerate(faces):
        c = col(i, f)
        x1, y1, x2, y2 = (int(round(v)) for v in f.box)
        x1, x2 = max(0, min(w - 1, x1)), max(0, min(w - 1, x2))
        y1, y2 = max(0, min(h - 1, y1)), max(0, min(h - 1, y2))
        if draw_boxes:
            cv2.rectangle(out, (x1, y1), (x2, y2), c, lw, cv2.LINE_AA)
        if draw_labels:
            text = f.label()
            if not text:
                continue
            (tw, th), base = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, font_scale, font_thick)
            pad = max(1, lw)
            bh = th + base + 2 * pad
            # Above the box when there is room, else inside its top edge; kept inside the image.
            ty0 = y1 - bh if y1 - bh >= 0 else min(y1, max(0, h - bh))
            tx0 = max(0, min(x1, w - tw - 2 * pad))
            cv2.rectangle(out, (tx0, ty0), (min(w - 1, tx0 + tw + 2 * pad), min(h - 1, ty0 + bh)), c, -1)
            lum = 0.299 * c[0] + 0.587 * c[1] + 0.114 * c[2]  # order-independent enough for contrast
            txt_col = (0, 0, 0) if lum > 140 else (255, 255, 255)
            cv2.putText(out, text, (tx0 + pad, ty0 + pad + th), cv2.FONT_HERSHEY_SIMPLEX, font_scale,
                        txt_col, font_thick, cv2.LINE_AA)
    return out
