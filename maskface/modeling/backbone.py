"""Backbones for the face Mask R-CNN: ResNet-FPN (18/34/50/101), MobileNetV3-FPN, and the
face-trained MobileNetV1-0.25 + FPN + SSH pyramid of RetinaFace (``mobilenet_v1_ssh``,
:mod:`maskface.modeling.mobilenet_ssh`).

The ResNet and MobileNetV3 builders return a torchvision :class:`BackboneWithFPN` with four FPN
levels (strides 4, 8, 16, 32) plus the max-pooled level (stride 64), ``out_channels`` attribute
set: five feature maps, one anchor size per level (``MODEL.ANCHOR_SIZES``). ``mobilenet_v1_ssh``
gives three 64-channel maps (strides 8, 16, 32) with two anchor sizes each.

Normalisation (``norm``):
  * ``"GN"`` -- GroupNorm in the trunk, FPN and heads; the choice for training from scratch, since
    batch statistics of 2-8 images per device are too noisy for BatchNorm.
  * ``"FrozenBN"`` -- BatchNorm with frozen ImageNet statistics (torchvision's default when a
    pretrained backbone is loaded).
  * ``"BN"`` -- plain BatchNorm (large per-device batches only).
"""

from __future__ import annotations

import functools
from typing import Callable, Dict, List, Optional

from torch import nn
from torchvision.models import mobilenet, resnet
from torchvision.models.detection.backbone_utils import BackboneWithFPN
from torchvision.ops import misc as misc_nn_ops
from torchvision.ops.feature_pyramid_network import LastLevelMaxPool

RESNETS = ("resnet18", "resnet34", "resnet50", "resnet101")
MOBILENETS = ("mobilenet_v3", "mobilenet_v3_large", "mobilenet_v3_small")
SSH_BACKBONES = ("mobilenet_v1_ssh",)
BACKBONES = RESNETS + MOBILENETS + SSH_BACKBONES
NORMS = ("GN", "FrozenBN", "BN")


def group_norm(num_channels: int, max_groups: int = 32) -> nn.GroupNorm:
    """GroupNorm with the largest group count <= ``max_groups`` that divides ``num_channels``
    (MobileNet widths such as 24, 40 or 72 are not multiples of 32)."""
    groups = next(g for g in (max_groups, 16, 8, 4, 2, 1) if num_channels % g == 0)
    return nn.GroupNorm(groups, num_channels)


def get_norm_layer(norm: str) -> Callable[[int], nn.Module]:
    """``"GN"`` | ``"FrozenBN"`` | ``"BN"`` -> a callable ``channels -> module``."""
    if norm == "GN":
        return group_norm
    if norm == "FrozenBN":
        return misc_nn_ops.FrozenBatchNorm2d
    if norm == "BN":
        return nn.BatchNorm2d
    raise ValueError(f"unknown norm {norm!r}; expected one of {NORMS}")


def _freeze(modules: List[nn.Module]) -> None:
    for m in modules:
        for p in m.parameters():
            p.requires_grad_(False)


def build_resnet_fpn_backbone(
    name: str = "resnet50",
    *,
    norm: str = "GN",
    fpn_channels: int = 256,
    trainable_layers: int = 5,
) -> BackboneWithFPN:
    """ResNet C2..C5 -> FPN P2..P5 (+ P6 by max pooling).

    Args:
        name: ``resnet18`` | ``resnet34`` | ``resnet50`` | ``resnet101``.
        norm: normalisation of trunk and FPN (see module docstring). The FPN gets GroupNorm only
            with ``"GN"``; otherwise it has none (torchvision's layout, so COCO weights load).
        fpn_channels: FPN width (256 standard; 128 halves FPN and head cost).
        trainable_layers: stages trained, counted from the top (5 = all; only meaningful with
            pretrained weights, from scratch everything must train).
    """
    if name not in RESNETS:
        raise ValueError(f"unknown ResNet {name!r}; expected one of {RESNETS}")
    if not 0 <= trainable_layers <= 5:
        raise ValueError(f"trainable_layers must be in [0, 5], got {trainable_layers}")
    norm_layer = get_norm_layer(norm)
    # zero_init_residual: each residual branch starts as identity (last norm gamma = 0), which
    # makes deep nets train stably from scratch.
    trunk = getattr(resnet, name)(weights=None, norm_layer=norm_layer, zero_init_residual=norm != "FrozenBN")
    stages = ["conv1", "layer1", "layer2", "layer3", "layer4"]
    _freeze([getattr(trunk, s) for s in stages[: 5 - trainable_layers]])
    if trainable_layers < 5:
        _freeze([trunk.bn1])
    in_stage2 = trunk.inplanes // 8  # 64 (basic blocks) or 256 (bottlenecks)
    return BackboneWithFPN(
        trunk,
        return_layers={"layer1": "0", "layer2": "1", "layer3": "2", "layer4": "3"},
        in_channels_list=[in_stage2, in_stage2 * 2, in_stage2 * 4, in_stage2 * 8],
        out_channels=fpn_channels,
        extra_blocks=LastLevelMaxPool(),
        norm_layer=group_norm if norm == "GN" else None,
    )


def build_mobilenet_fpn_backbone(
    name: str = "mobilenet_v3_large",
    *,
    norm: str = "GN",
    fpn_channels: int = 128,
    trainable_layers: int = 5,
) -> BackboneWithFPN:
    """MobileNetV3 -> FPN on the last block of each of the strides 4, 8, 16, 32 (+ pooled P6).

    ``trainable_layers`` counts the 5 stages (stem..stride 32) from the top, as for ResNets.

    torchvision's own ``mobilenet_backbone`` only returns strides 16 and 32, far too coarse for
    10 px faces, so the stage ends are picked here.
    """
    if name == "mobilenet_v3":
        name = "mobilenet_v3_large"
    if name not in ("mobilenet_v3_large", "mobilenet_v3_small"):
        raise ValueError(f"unknown MobileNet {name!r}; expected one of {MOBILENETS}")
    norm_layer = get_norm_layer(norm)
    if norm == "BN":
        norm_layer = functools.partial(nn.BatchNorm2d, eps=0.001, momentum=0.01)
    features = getattr(mobilenet, name)(weights=None, norm_layer=norm_layer).features
    # Blocks flagged `_is_cn` start a new (strided) stage; the block before each is a stage end.
    starts = [i for i, b in enumerate(features) if getattr(b, "_is_cn", False)]
    ends = [s - 1 for s in starts[1:]] + [len(features) - 1]  # strides 4, 8, 16, 32
    if len(ends) != 4:
        raise RuntimeError(f"{name}: expected 4 strided stages after the stem, found {len(ends)}")
    stage_first = [0] + starts  # 5 stages: stem (+ first block), strides 4, 8, 16, 32
    n_stages = len(stage_first)
    if not 0 <= trainable_layers <= n_stages:
        raise ValueError(f"trainable_layers must be in [0, {n_stages}], got {trainable_layers}")
    freeze_before = len(features) if trainable_layers == 0 else stage_first[n_stages - trainable_layers]
    _freeze(list(features[:freeze_before]))
    return BackboneWithFPN(
        features,
        return_layers={str(i): str(k) for k, i in enumerate(ends)},
        in_channels_list=[features[i].out_channels for i in ends],
        out_channels=fpn_channels,
        extra_blocks=LastLevelMaxPool(),
        norm_layer=group_norm if norm == "GN" else None,
    )


def build_backbone(name: str, *, norm: str = "GN", fpn_channels: int = 256, trainable_layers: int = 5,
                   stride4: bool = False) -> nn.Module:
    """Dispatch on the backbone name (``MODEL.BACKBONE``).

    ``mobilenet_v1_ssh`` has a fixed width of 64 channels (the face-trained file's) and four
    trainable parts (``trainable_layers`` 5 is read as 4: everything); ``stride4`` adds its
    stride-4 level (:class:`~maskface.modeling.mobilenet_ssh.Stride4Branch`; that backbone only).
    """
    if stride4 and name not in SSH_BACKBONES:
        raise ValueError(f"a stride-4 level is built for {SSH_BACKBONES} only, got backbone {name!r}")
    if name in SSH_BACKBONES:
        from maskface.modeling.mobilenet_ssh import CHANNELS, MobileNetSSHBackbone

        if fpn_channels != CHANNELS:
            raise ValueError(f"backbone {name!r} has {CHANNELS} pyramid channels; set MODEL.FPN_CHANNELS {CHANNELS}, got {fpn_channels}")
        return MobileNetSSHBackbone(get_norm_layer(norm), trainable_layers=min(trainable_layers, 4), stride4=stride4)
    if name in RESNETS:
        return build_resnet_fpn_backbone(name, norm=norm, fpn_channels=fpn_channels, trainable_layers=trainable_layers)
    if name in MOBILENETS:
        return build_mobilenet_fpn_backbone(name, norm=norm, fpn_channels=fpn_channels, trainable_layers=trainable_layers)
    raise ValueError(f"unknown backbone {name!r}; expected one of {BACKBONES}")


def imagenet_key_map(backbone_name: str) -> Callable[[str], Optional[str]]:
    """Map a torchvision ImageNet classification checkpoint key to the detector's key
    (``None`` = not part of the detector, e.g. the classifier)."""

    def resnet_key(k: str) -> Optional[str]:
        return None if k.startswith("fc.") else f"backbone.body.{k}"

    def mobilenet_key(k: str) -> Optional[str]:
        return f"backbone.body.{k[len('features.'):]}" if k.startswith("features.") else None

    return resnet_key if backbone_name in RESNETS else mobilenet_key


def imagenet_weights_url(backbone_name: str) -> Dict[str, str]:
    """The official download URL of the ImageNet weights of a backbone (nothing is downloaded)."""
    from torchvision.models import get_model_weights

    name = "mobilenet_v3_large" if backbone_name == "mobilenet_v3" else backbone_name
    w = get_model_weights(name).IMAGENET1K_V1
    return {"url": w.url, "file": w.url.rsplit("/", 1)[-1]}
