"""A face-trained feature pyramid for the face Mask R-CNN: RetinaFace's MobileNetV1-0.25 body,
its FPN and its SSH context modules, plus the per-level RPN head initialised from RetinaFace's
class / box heads.

The modules are MaskFace's own, with the key names of the public RetinaFace checkpoint
(``retinaface_mobilenet0.25_wider.pth``, MIT; layout in ``../shared/weights/README.md``), so that
file loads by name (:func:`load_retinaface_weights`):

=============  ==========================================================================
``body``       MobileNetV1 x0.25: ``stage1`` (stride 8, 64 ch), ``stage2`` (16, 128),
               ``stage3`` (32, 256); conv + norm + LeakyReLU(0.1) blocks
``fpn``        1x1 lateral convs to 64 ch (``output1..3``), top-down nearest upsampling,
               3x3 ``merge2`` then ``merge1``
``ssh1..3``    one SSH context module per level (64 -> 32 + 16 + 16 ch, ReLU)
=============  ==========================================================================

Output: an ordered dict of three 64-channel maps, ``"0"`` (stride 8), ``"1"`` (16), ``"2"`` (32),
read by the RPN and by RoIAlign (``roi_feature_names``). With ``stride4=True`` a fourth map,
``"s4"`` (stride 4, 64 channels, :class:`Stride4Branch`: MaskFace's own, trained here), follows:
the RPN's smallest anchors, and RoIAlign for faces under 56 px.

Input convention. RetinaFace reads BGR pixels 0..255 minus the mean (104, 117, 123), no std.
MaskFace models read RGB in 0..1 and normalise inside (``GeneralizedRCNNTransform``), so this
backbone is used with ``image_mean = RETINAFACE_MEAN_RGB / 255`` and ``image_std = 1 / 255``
(``(x - m) / s`` = pixel - mean) and the first conv's input channels reversed when the RetinaFace
file is loaded (BGR -> RGB). Checkpoints saved by MaskFace already hold the RGB-ordered weights.

RPN from RetinaFace's heads (exact, not approximate):
  * objectness: RetinaFace's two-way softmax (background, face) equals a sigmoid of
    ``logit_face - logit_bg``, so the RPN's one logit per anchor is initialised with the difference
    of the two rows of ``ClassHead.k.conv1x1``;
  * boxes: RetinaFace encodes with SSD variances (0.1 centre, 0.2 size); torchvision's RPN box
    coder has weights (1, 1, 1, 1), so the ``BboxHead`` rows are scaled by 0.1 and 0.2;
  * anchors: two square sizes per level (16/32, 64/128, 256/512 px) centred on the middle of each
    cell (:class:`CenteredAnchorGenerator`), in RetinaFace's order (location-major, then size).
"""

from __future__ import annotations

import hashlib
import logging
import math
import os
from collections import OrderedDict
from typing import Callable, Dict, List, Sequence, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torchvision.models.detection.anchor_utils import AnchorGenerator

logger = logging.getLogger(__name__)

#: RetinaFace's pixel mean, in RGB order (its own files list it as BGR 104, 117, 123).
RETINAFACE_MEAN_RGB = (123.0, 117.0, 104.0)
#: Anchor sizes (px of the model input) of the three levels, two per level.
RETINAFACE_ANCHOR_SIZES = ((16, 32), (64, 128), (256, 512))
#: Encoding variances of RetinaFace's box head (centre, size).
RETINAFACE_VARIANCES = (0.1, 0.2)
#: Public weight files this module knows, by file name -> sha256 (checked when loaded).
KNOWN_WEIGHTS = {
    "retinaface_mobilenet0.25_wider.pth": "7c417d4a43c5e2100ef40c2fbd2177d2fd0e5090d8e87c0fa31806cfb895c12f",
}
LEAKY = 0.1
CHANNELS = 64  # FPN / SSH width of the public file
STRIDE4_BLOCK = 3  # index in body.stage1 of the last block at stride 4 (32 channels)
FINE_BELOW = 56.0  # px: RoIAlign pools faces under this from the stride-4 map, when there is one


def _conv_norm(cin: int, cout: int, k: int, stride: int, norm: Callable[[int], nn.Module], act: bool, groups: int = 1):
    layers = [nn.Conv2d(cin, cout, k, stride, k // 2, groups=groups, bias=False), norm(cout)]
    if act:
        layers.append(nn.LeakyReLU(LEAKY, inplace=True))
    return nn.Sequential(*layers)


def _dw_block(cin: int, cout: int, stride: int, norm: Callable[[int], nn.Module]) -> nn.Sequential:
    """Depthwise 3x3 + norm + act, pointwise 1x1 + norm + act (keys 0, 1, 3, 4 as in the file)."""
    return nn.Sequential(
        nn.Conv2d(cin, cin, 3, stride, 1, groups=cin, bias=False),
        norm(cin),
        nn.LeakyReLU(LEAKY, inplace=True),
        nn.Conv2d(cin, cout, 1, 1, 0, bias=False),
        norm(cout),
        nn.LeakyReLU(LEAKY, inplace=True),
    )


class MobileNetV1(nn.Module):
    """MobileNetV1 x0.25 in three stages; returns the outputs of strides 8, 16 and 32
    (64, 128, 256 channels)."""

    def __init__(self, norm: Callable[[int], nn.Module]):
        super().__init__()
        self.stage1 = nn.Sequential(
            _conv_norm(3, 8, 3, 2, norm, act=True),
            _dw_block(8, 16, 1, norm),
            _dw_block(16, 32, 2, norm),
            _dw_block(32, 32, 1, norm),
            _dw_block(32, 64, 2, norm),
            _dw_block(64, 64, 1, norm),
        )
        self.stage2 = nn.Sequential(_dw_block(64, 128, 2, norm), *[_dw_block(128, 128, 1, norm) for _ in range(5)])
        self.stage3 = nn.Sequential(_dw_block(128, 256, 2, norm), _dw_block(256, 256, 1, norm))

    def forward(self, x: Tensor, with_stride4: bool = False) -> List[Tensor]:
        """Maps of strides 8, 16, 32; with ``with_stride4`` the stride-4 map (32 ch) is appended."""
        c3 = x
        for i, block in enumerate(self.stage1):
            c3 = block(c3)
            if i == STRIDE4_BLOCK:
                c2 = c3
        c4 = self.stage2(c3)
        out = [c3, c4, self.stage3(c4)]
        return out + [c2] if with_stride4 else out


class RetinaFPN(nn.Module):
    """RetinaFace's FPN: 1x1 laterals, nearest top-down path, 3x3 merges (all conv + norm + act)."""

    def __init__(self, in_channels: Sequence[int], out_channels: int, norm: Callable[[int], nn.Module]):
        super().__init__()
        self.output1 = _conv_norm(in_channels[0], out_channels, 1, 1, norm, act=True)
        self.output2 = _conv_norm(in_channels[1], out_channels, 1, 1, norm, act=True)
        self.output3 = _conv_norm(in_channels[2], out_channels, 1, 1, norm, act=True)
        self.merge1 = _conv_norm(out_channels, out_channels, 3, 1, norm, act=True)
        self.merge2 = _conv_norm(out_channels, out_channels, 3, 1, norm, act=True)

    def forward(self, feats: List[Tensor]) -> List[Tensor]:
        o1, o2, o3 = self.output1(feats[0]), self.output2(feats[1]), self.output3(feats[2])
        o2 = self.merge2(o2 + F.interpolate(o3, size=o2.shape[-2:], mode="nearest"))
        o1 = self.merge1(o1 + F.interpolate(o2, size=o1.shape[-2:], mode="nearest"))
        return [o1, o2, o3]


class SSH(nn.Module):
    """Single Stage Headless context module: 3x3, "5x5" and "7x7" (stacked 3x3) branches,
    concatenated (half, quarter, quarter of the channels), then ReLU."""

    def __init__(self, channels: int, norm: Callable[[int], nn.Module]):
        super().__init__()
        if channels % 4:
            raise ValueError(f"SSH needs channels divisible by 4, got {channels}")
        half, quarter = channels // 2, channels // 4
        self.conv3X3 = _conv_norm(channels, half, 3, 1, norm, act=False)
        self.conv5X5_1 = _conv_norm(channels, quarter, 3, 1, norm, act=True)
        self.conv5X5_2 = _conv_norm(quarter, quarter, 3, 1, norm, act=False)
        self.conv7X7_2 = _conv_norm(quarter, quarter, 3, 1, norm, act=True)
        self.conv7x7_3 = _conv_norm(quarter, quarter, 3, 1, norm, act=False)

    def forward(self, x: Tensor) -> Tensor:
        b5 = self.conv5X5_1(x)
        out = torch.cat([self.conv3X3(x), self.conv5X5_2(b5), self.conv7x7_3(self.conv7X7_2(b5))], dim=1)
        return F.relu(out)


class Stride4Branch(nn.Module):
    """The stride-4 level for faces of ~6-24 px (MaskFace's own; RetinaFace's file has none).

    The body's stride-4 map (32 ch) plus the stride-8 SSH output (64 ch, projected and upsampled
    2x, nearest: the context a face that small needs), then two depthwise-separable 3x3 blocks,
    the second widening to the pyramid's 64 channels so that RoIAlign can pool it with the others.
    Convs carry biases and no norm (trained from scratch with small CPU batches; nothing to fold).
    About 5 k multiply-adds per output pixel: ~0.25 GMAC at 1024x768.

    ``forward(c2, p3)``: ``c2`` (N, 32, H/4, W/4), ``p3`` (N, 64, H/8, W/8) -> (N, 64, H/4, W/4).
    """

    def __init__(self, in_channels: int = 32, top_channels: int = CHANNELS, width: int = 32, out_channels: int = CHANNELS):
        super().__init__()
        self.lateral = nn.Conv2d(in_channels, width, 1)
        self.top = nn.Conv2d(top_channels, width, 1)
        self.blocks = nn.Sequential(*[
            nn.Sequential(nn.Conv2d(width, width, 3, 1, 1, groups=width), nn.Conv2d(width, cout, 1),
                          nn.LeakyReLU(LEAKY, inplace=True))
            for cout in (width, out_channels)
        ])
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, a=LEAKY, mode="fan_out")
                nn.init.zeros_(m.bias)

    def forward(self, c2: Tensor, p3: Tensor) -> Tensor:
        x = self.lateral(c2) + F.interpolate(self.top(p3), size=c2.shape[-2:], mode="nearest")
        return self.blocks(F.leaky_relu(x, LEAKY))


def ssh_pyramid(m: nn.Module, x: Tensor) -> List[Tensor]:
    """The pyramid of a module holding ``body``, ``fpn``, ``ssh1..3`` and ``stride4`` (a
    :class:`Stride4Branch` or None): maps of strides 8, 16, 32 and, with the branch, 4, in that
    order. Shared by :class:`MobileNetSSHBackbone` and the Detectron2 backbone, which only name
    the maps differently."""
    feats = m.body(x, with_stride4=m.stride4 is not None)
    f1, f2, f3 = m.fpn(feats[:3])
    out = [m.ssh1(f1), m.ssh2(f2), m.ssh3(f3)]
    return out + [m.stride4(feats[3], out[0])] if m.stride4 is not None else out


class MobileNetSSHBackbone(nn.Module):
    """MobileNetV1-0.25 -> FPN -> SSH: three 64-channel maps at strides 8, 16, 32.

    Args:
        norm: a callable ``channels -> norm module``; ``FrozenBatchNorm2d`` (the default choice when
            fine-tuning the face-trained file with small batches), ``BatchNorm2d`` or GroupNorm.
        trainable_layers: parts trained, counted from the top: 0 = none, 1 = FPN + SSH, 2 = also
            ``stage3``, 3 = also ``stage2``, 4 = everything. The stride-4 branch is always trained
            (it has no pretrained counterpart), so 0 with ``stride4`` trains that branch alone.
        stride4: add the stride-4 level ``"s4"`` (:class:`Stride4Branch`), last in the output.

    Attributes:
        out_channels: 64 (every map).
        roi_feature_names: the map names RoIAlign pools from, finest first (``"s4"`` first when
            there is one: the output dict keeps it last, after the RetinaFace levels).
        roi_fine_below: px; RoIAlign pools faces under it from the first map only (the stride-4
            one, :data:`FINE_BELOW`), every larger face from the level it has without that map;
            0 without a stride-4 map.
        anchor_sizes: the anchor sizes matching the RetinaFace heads, per level.
    """

    out_channels = CHANNELS
    roi_feature_names = ["0", "1", "2"]
    anchor_sizes = RETINAFACE_ANCHOR_SIZES

    def __init__(self, norm: Callable[[int], nn.Module], trainable_layers: int = 4, stride4: bool = False):
        super().__init__()
        if not 0 <= trainable_layers <= 4:
            raise ValueError(f"trainable_layers must be in [0, 4] for the MobileNet-SSH backbone, got {trainable_layers}")
        self.body = MobileNetV1(norm)
        self.fpn = RetinaFPN((64, 128, 256), CHANNELS, norm)
        self.ssh1, self.ssh2, self.ssh3 = SSH(CHANNELS, norm), SSH(CHANNELS, norm), SSH(CHANNELS, norm)
        self.stride4 = Stride4Branch() if stride4 else None
        self.roi_feature_names = (["s4"] if stride4 else []) + ["0", "1", "2"]  # finest first
        self.roi_fine_below = FINE_BELOW if stride4 else 0.0
        frozen = [self.body.stage1, self.body.stage2, self.body.stage3, nn.ModuleList([self.fpn, self.ssh1, self.ssh2, self.ssh3])]
        for m in frozen[: 4 - trainable_layers]:
            for p in m.parameters():
                p.requires_grad_(False)

    def forward(self, x: Tensor) -> "OrderedDict[str, Tensor]":
        return OrderedDict(zip(["0", "1", "2", "s4"], ssh_pyramid(self, x)))


class PerLevelRPNHead(nn.Module):
    """An RPN head with its own 1x1 objectness and box convs per pyramid level (RetinaFace's
    layout; torchvision's :class:`RPNHead` shares one head across levels).

    Args:
        in_channels: channels of every feature map.
        num_anchors: anchors per location (the same on every level).
        num_levels: number of feature maps.

    ``forward(features)`` takes the list of maps and returns two lists: objectness logits
    (N, A, H, W) and box deltas (N, 4A, H, W) in torchvision's RPN encoding, per level.
    """

    def __init__(self, in_channels: int, num_anchors: int, num_levels: int):
        super().__init__()
        self.cls_logits = nn.ModuleList(nn.Conv2d(in_channels, num_anchors, 1) for _ in range(num_levels))
        self.bbox_pred = nn.ModuleList(nn.Conv2d(in_channels, 4 * num_anchors, 1) for _ in range(num_levels))
        for conv in list(self.cls_logits) + list(self.bbox_pred):
            nn.init.normal_(conv.weight, std=0.01)
            nn.init.constant_(conv.bias, 0)
        # A level without pretrained weights starts at 1 % objectness, not 50 % (which would fill
        # the proposals with its untrained anchors); the RetinaFace levels are overwritten anyway.
        for conv in self.cls_logits:
            nn.init.constant_(conv.bias, -math.log(99.0))

    def forward(self, x: List[Tensor]) -> Tuple[List[Tensor], List[Tensor]]:
        if len(x) != len(self.cls_logits):
            raise ValueError(f"expected {len(self.cls_logits)} feature maps, got {len(x)}")
        return [c(f) for c, f in zip(self.cls_logits, x)], [b(f) for b, f in zip(self.bbox_pred, x)]


class CenteredAnchorGenerator(AnchorGenerator):
    """torchvision's anchors shifted by half a stride: centres at ``(j + 0.5) * stride`` as in
    RetinaFace / SSD, instead of ``j * stride``."""

    def grid_anchors(self, grid_sizes: List[List[int]], strides: List[List[Tensor]]) -> List[Tensor]:
        anchors = super().grid_anchors(grid_sizes, strides)
        out = []
        for a, (sh, sw) in zip(anchors, strides):
            half = torch.stack([sw, sh, sw, sh]).to(a) / 2
            out.append(a + half)
        return out


# --- the public RetinaFace file ----------------------------------------------------------------------
def sha256_of(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def check_known_file(path: str) -> None:
    """Raise if ``path`` is missing, or is a file :data:`KNOWN_WEIGHTS` names whose sha256 differs."""
    if not os.path.isfile(path):
        raise FileNotFoundError(
            f"pretrained weights {path!r}: no such file. Nothing is downloaded: give the local path of "
            "retinaface_mobilenet0.25_wider.pth (in this project's environment: ../shared/weights/)"
        )
    expected = KNOWN_WEIGHTS.get(os.path.basename(path))
    if expected is not None:
        got = sha256_of(path)
        if got != expected:
            raise ValueError(
                f"pretrained weights {path!r}: sha256 {got} differs from the published file's {expected} "
                "(truncated download or a different file under that name)"
            )


def is_retinaface_state(state: Dict[str, Tensor]) -> bool:
    """True for a RetinaFace checkpoint layout (``body.stage1...`` and ``ClassHead.*`` keys)."""
    keys = [k[len("module."):] if k.startswith("module.") else k for k in state]
    return any(k.startswith("body.stage1.") for k in keys) and any(k.startswith("ClassHead.") for k in keys)


def retinaface_to_maskface(state: Dict[str, Tensor]) -> Dict[str, Tensor]:
    """Rename / convert a RetinaFace state dict to the face Mask R-CNN's keys.

    ``body/fpn/ssh*`` -> ``backbone.*`` (first conv's input channels reversed, BGR -> RGB);
    ``ClassHead.k`` -> ``rpn.head.cls_logits.k`` (face minus background logit);
    ``BboxHead.k`` -> ``rpn.head.bbox_pred.k`` (rows scaled by the SSD variances).
    Landmark heads and BatchNorm's ``num_batches_tracked`` are dropped.
    """
    out: Dict[str, Tensor] = {}
    v_c, v_s = RETINAFACE_VARIANCES
    for k, v in state.items():
        k = k[len("module."):] if k.startswith("module.") else k
        if k.endswith("num_batches_tracked") or k.startswith("LandmarkHead."):
            continue
        if k.startswith(("body.", "fpn.", "ssh")):
            if k == "body.stage1.0.0.weight":
                v = v.flip(1)  # BGR -> RGB input channels
            out["backbone." + k] = v
            continue
        parts = k.split(".")  # ClassHead.<level>.conv1x1.<weight|bias>
        head, level, param = parts[0], parts[1], parts[-1]
        if head == "ClassHead":
            a = v.shape[0] // 2  # per anchor: (background, face) logits, anchor-major
            v = v.reshape(a, 2, *v.shape[1:])
            out[f"rpn.head.cls_logits.{level}.{param}"] = v[:, 1] - v[:, 0]
        elif head == "BboxHead":
            a = v.shape[0] // 4
            scale = torch.tensor([v_c, v_c, v_s, v_s], dtype=v.dtype).repeat(a)
            out[f"rpn.head.bbox_pred.{level}.{param}"] = v * scale.view(-1, *([1] * (v.dim() - 1)))
        else:
            logger.debug("RetinaFace key %s not used", k)
    return out
