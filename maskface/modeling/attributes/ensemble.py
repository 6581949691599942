"""``AttributeEnsemble``: several attribute nets read the same face; their probabilities are averaged.

Nets trained differently (another crop size, other augmentation) make partly independent errors,
so the average of their age / gender / emotion distributions is more accurate than any one of
them, at the sum of their costs. The ensemble behaves like one :class:`AttributeNet`: same
``forward`` outputs, ``decode``, ``crop_kwargs`` and ``flip_test``.

All members must cut the same window around the face (``crop_margin``, ``mask_ellipse_union``)
and share the age head (kind and classes). The face is cut once, at the largest member's crop
size; a member trained on smaller crops gets that crop downsampled (bilinear, antialiased). Its
masks were grown in proportion to its crop size (``mask_dilate``), so it sees the same picture at
fewer pixels.

Built from a config whose ``MODEL.ENSEMBLE`` lists member configs (:func:`build_attribute_model`);
its weights file holds every member's state under ``members.<i>.`` (``tools/make_ensemble.py``).
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Dict, List, Optional, Sequence, Tuple, Union

import torch
import torch.nn.functional as F
from torch import nn

from maskface.modeling.attributes.net import AttributeNet, average_outputs

if TYPE_CHECKING:  # the config package is imported lazily, by the loader that needs it
    from maskface.config import CfgNode

logger = logging.getLogger(__name__)

__all__ = ["AttributeEnsemble", "build_attribute_model", "member_configs"]


class AttributeEnsemble(nn.Module):
    """Average of several :class:`AttributeNet` (see the module docstring).

    Args:
        members: the nets, at least one. Each keeps its own ``flip_test`` until
            :attr:`flip_test` is set on the ensemble.
        flip_test: if given, set on every member.
    """

    def __init__(self, members: Sequence[AttributeNet], flip_test: Optional[bool] = None):
        super().__init__()
        members = list(members)
        if not members:
            raise ValueError("AttributeEnsemble needs at least one member net")
        for i, m in enumerate(members):
            if not isinstance(m, AttributeNet):
                raise TypeError(f"ensemble member {i}: expected an AttributeNet, got {type(m).__name__}")
        ref = max(members, key=lambda m: m.crop_kwargs["size"])
        for i, m in enumerate(members):
            for key in ("margin", "ellipse_union"):
                if m.crop_kwargs[key] != ref.crop_kwargs[key]:
                    raise ValueError(f"ensemble member {i} crops with {key}={m.crop_kwargs[key]!r}, another member "
                                     f"with {ref.crop_kwargs[key]!r}: members must cut the same window")
            if _age_layout(m) != _age_layout(ref):
                raise ValueError(f"ensemble member {i} has age head {_age_layout(m)}, another {_age_layout(ref)} "
                                 "(kind, classes): members must share it")
            # mask growth in proportion to the crop: otherwise a smaller member sees a wider/narrower mask
            scaled = ref.crop_kwargs["dilate"] * m.crop_kwargs["size"] / ref.crop_kwargs["size"]
            if abs(scaled - m.crop_kwargs["dilate"]) > 1.0:
                logger.warning("ensemble member %d was trained with masks grown %d px of %d; it will see them "
                               "grown %.1f px", i, m.crop_kwargs["dilate"], m.crop_kwargs["size"], scaled)
        self.members = nn.ModuleList(members)
        self.crop_kwargs = dict(ref.crop_kwargs)
        if flip_test is not None:
            self.flip_test = flip_test

    @property
    def flip_test(self) -> bool:
        """Whether the members also read each face mirrored (True only if all of them do)."""
        return all(m.flip_test for m in self.members)

    @flip_test.setter
    def flip_test(self, value: bool) -> None:
        for m in self.members:
            m.flip_test = bool(value)

    def optimize_for_inference(self) -> "AttributeEnsemble":
        """:meth:`AttributeNet.optimize_for_inference` on every member (inference only). Returns ``self``."""
        for m in self.members:
            m.optimize_for_inference()
        return self

    def forward(self, crops: torch.Tensor) -> Dict[str, torch.Tensor]:
        """Normalised crops ``(N, 3, S, S)``, ``S`` = ``crop_kwargs["size"]`` -> the outputs of
        :meth:`AttributeNet.forward`, averaged over the members (probabilities averaged, logits
        their log, age statistics recomputed from the mean age distribution)."""
        size = self.crop_kwargs["size"]
        if crops.dim() != 4 or crops.shape[1] != 3:
            raise ValueError(f"expected crops of shape (N, 3, S, S), got {tuple(crops.shape)}")
        if tuple(crops.shape[-2:]) != (size, size):
            raise ValueError(f"expected {size}x{size} crops (crop_kwargs['size']), got {tuple(crops.shape[-2:])}")
        outs: List[Dict[str, torch.Tensor]] = []
        for m in self.members:
            s = m.crop_kwargs["size"]
            x = crops if s == size else F.interpolate(crops, size=(s, s), mode="bilinear", align_corners=False,
                                                      antialias=True)
            outs.append(m(x))
        return outs[0] if len(outs) == 1 else average_outputs(outs)

    decode = staticmethod(AttributeNet.decode)


def _age_layout(net: AttributeNet):
    head = net.age_head
    n = head.bin_centers.numel() if head.kind == "dex" else head.range_edges.numel() - 1
    return head.kind, n


def build_attribute_model(cfg, member_cfgs: Optional[List] = None) -> nn.Module:
    """An attribute config -> :class:`AttributeNet`, or :class:`AttributeEnsemble` when
    ``cfg.MODEL.ENSEMBLE`` lists member configs (each built with its own file; ``cfg.TEST.FLIP``
    applies to all). ``member_cfgs``: :func:`member_configs` of ``cfg`` when the caller has already
    loaded them. Untrained: load weights with :func:`maskface.utils.checkpoint.load_model_weights`."""
    if member_cfgs is None:
        member_cfgs = member_configs(cfg)
    if not member_cfgs:
        return AttributeNet.from_config(cfg)
    return AttributeEnsemble([AttributeNet.from_config(c) for c in member_cfgs], flip_test=cfg.TEST.FLIP)


def member_configs(cfg) -> List:
    """The frozen configs of the files listed in ``cfg.MODEL.ENSEMBLE`` (``[]`` for a single net)."""
    from maskface.config import get_attr_cfg, setup_cfg

    out = []
    for p in cfg.MODEL.ENSEMBLE:
        c = setup_cfg(get_attr_cfg(), p)
        if list(c.MODEL.ENSEMBLE):
            raise ValueError(f"ensemble member config {p} is itself an ensemble (MODEL.ENSEMBLE); list its members")
        out.append(c)
    return out


def load_attribute_net(path: str, device: Union[str, torch.device] = "cpu", cfg: Optional["CfgNode"] = None,
                       fast: bool = False) -> Tuple[nn.Module, "CfgNode"]:
    """Rebuild an attribute net (or ensemble) from a checkpoint written by the attribute trainer
    or ``tools/make_ensemble.py``.

    The architecture comes from the config stored in the checkpoint (or ``cfg`` when given: needed
    for weights stored without one, such as the model zoo's). ``fast``: ``optimize_for_inference``
    (batch norms folded, channels-last; the same outputs to ~1e-5, for inference only: the
    predictor, evaluation and benchmarks).
    Returns ``(model in eval mode on device, frozen config)``.
    """
    import yaml

    from maskface.config import get_attr_cfg
    from maskface.utils.checkpoint import load_checkpoint_file, load_model_weights

    data = load_checkpoint_file(path)
    if cfg is None:
        if "cfg" not in data:
            raise RuntimeError(f"{path}: checkpoint holds no config; pass the training config explicitly")
        cfg = get_attr_cfg()
        cfg.merge_from_dict(yaml.safe_load(data["cfg"]), source=f"{path} (stored config)")
        cfg.freeze()
    model = build_attribute_model(cfg)
    load_model_weights(model, data.get("model", data), source=path)
    model = model.to(device).eval()
    return (model.optimize_for_inference() if fast else model), cfg
