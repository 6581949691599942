"""``AttributeNet``: one shared trunk, three heads (age, gender, emotion) on masked face crops.

Input: ``float32 (N, 3, S, S)`` crops from
:func:`~maskface.modeling.attributes.crops.extract_face_crops` (normalised; ``S`` =
``crop_size``). The crop parameters the net was trained with travel with it
(:attr:`AttributeNet.crop_kwargs`), so callers crop exactly as training did::

    crops = extract_face_crops(image_rgb, boxes, masks, **net.crop_kwargs)
    faces = net.decode(net(crops))
"""

from __future__ import annotations

from typing import Dict, List, Sequence

import torch
from torch import nn

from maskface.data.attributes import EMOTIONS, GENDERS
from maskface.modeling.attributes.heads import (
    AGE_GROUP_NAMES,
    AGE_HEADS,
    ClassificationHead,
    age_group_index,
    age_summary,
)
from maskface.modeling.attributes.losses import dex_age_loss, emotion_loss, gender_loss, label_division_loss
from maskface.modeling.attributes.trunks import build_trunk


class AttributeNet(nn.Module):
    """Multi-task attribute net.

    Args:
        trunk: ``depthwise`` | ``resnet`` | ``gra`` (see :mod:`.trunks`).
        width: channels of the trunk's first stage (later stages double).
        age_head: ``dex`` | ``label_division`` (see :mod:`.heads`).
        age_bins: DEX classes over 0..100 years.
        age_ranges: label-division ranges over 0..100 years.
        head_dim: hidden width of each head's MLP.
        dropout: dropout before each head's last layer.
        loss_weights: ``(age, gender, emotion)`` multipliers of the three losses.
        age_sigma: years, sigma of DEX's Gaussian soft labels.
        age_l1_weight: weight of |E[age] - age| (years) added to the age loss.
        emotion_vote_weight: in [0, 1], share of annotators' vote distribution (FER+) in the
            emotion target of faces that have votes; 0 = labels only (:func:`.losses.emotion_loss`).
        gender_teacher_weight: in [0, 1], share of a teacher's gender probabilities (``gender_soft``)
            in the gender target of faces that have them; 0 = labels only (:func:`.losses.gender_loss`).
        crop_size, crop_margin, mask_dilate, mask_feather, mask_ellipse_union: how input crops are
            made (``extract_face_crops``' ``size``, ``margin``, ``dilate``, ``feather``,
            ``ellipse_union``); stored, not used by ``forward``.
        flip_test: in eval mode, also run each crop mirrored left-right and average the two
            predictions' probabilities (test-time augmentation: twice the net's compute, usually a
            more accurate result; training is unaffected).
    """

    def __init__(
        self,
        trunk: str = "depthwise",
        width: int = 32,
        age_head: str = "dex",
        age_bins: int = 101,
        age_ranges: int = 10,
        head_dim: int = 128,
        dropout: float = 0.2,
        loss_weights: Sequence[float] = (1.0, 1.0, 1.0),
        age_sigma: float = 2.5,
        age_l1_weight: float = 0.1,
        emotion_vote_weight: float = 0.0,
        gender_teacher_weight: float = 0.0,
        crop_size: int = 64,
        crop_margin: float = 0.2,
        mask_dilate: int = 1,
        mask_feather: float = 1.0,
        mask_ellipse_union: bool = False,
        flip_test: bool = False,
    ):
        super().__init__()
        if age_head not in AGE_HEADS:
            raise ValueError(f"unknown age head {age_head!r}; expected one of {sorted(AGE_HEADS)}")
        if len(loss_weights) != 3:
            raise ValueError(f"loss_weights must be (age, gender, emotion), got {loss_weights!r}")
        self.trunk = build_trunk(trunk, width)
        c = self.trunk.out_channels
        self.age_head = AGE_HEADS[age_head](c, age_bins if age_head == "dex" else age_ranges, head_dim, dropout)
        self.gender_head = ClassificationHead("gender", c, len(GENDERS), head_dim, dropout)
        self.emotion_head = ClassificationHead("emotion", c, len(EMOTIONS), head_dim, dropout)
        self.loss_weights = tuple(float(w) for w in loss_weights)
        self.age_sigma = float(age_sigma)
        self.age_l1_weight = float(age_l1_weight)
        if not 0.0 <= emotion_vote_weight <= 1.0:
            raise ValueError(f"emotion_vote_weight must be in [0, 1], got {emotion_vote_weight}")
        self.emotion_vote_weight = float(emotion_vote_weight)
        if not 0.0 <= gender_teacher_weight <= 1.0:
            raise ValueError(f"gender_teacher_weight must be in [0, 1], got {gender_teacher_weight}")
        self.gender_teacher_weight = float(gender_teacher_weight)
        self.crop_kwargs = {"size": int(crop_size), "margin": float(crop_margin), "dilate": int(mask_dilate),
                            "feather": float(mask_feather), "ellipse_union": bool(mask_ellipse_union)}
        self.flip_test = bool(flip_test)
        self._channels_last = False  # set by optimize_for_inference: crops then go in channels-last too

    @classmethod
    def from_config(cls, cfg) -> "AttributeNet":
        """Build from an attribute config (:func:`maskface.config.get_attr_cfg`)."""
        m, loss = cfg.MODEL, cfg.LOSS
        return cls(
            trunk=m.TRUNK,
            width=m.WIDTH,
            age_head=m.AGE_HEAD,
            age_bins=m.AGE_BINS,
            age_ranges=m.AGE_RANGES,
            dropout=m.DROPOUT,
            loss_weights=(loss.AGE_WEIGHT, loss.GENDER_WEIGHT, loss.EMOTION_WEIGHT),
            age_sigma=loss.AGE_SIGMA,
            age_l1_weight=loss.AGE_L1_WEIGHT,
            emotion_vote_weight=loss.EMOTION_VOTES,
            gender_teacher_weight=loss.GENDER_TEACHER,
            crop_size=m.CROP_SIZE,
            crop_margin=m.CROP_MARGIN,
            mask_dilate=m.MASK_DILATE,
            mask_feather=m.MASK_FEATHER,
            mask_ellipse_union=m.MASK_ELLIPSE_UNION,
            flip_test=cfg.TEST.FLIP,
        )

    def forward(self, crops: torch.Tensor) -> Dict[str, torch.Tensor]:
        """Normalised crops ``(N, 3, S, S)`` -> outputs (all float32, ``N`` rows):

        ``age_logits`` ``(N, K)``, ``age_values`` ``(K,)`` or ``(N, K)`` years, ``age_probs``
        ``(N, K)``, ``age`` ``(N,)`` years, ``age_std`` ``(N,)`` years, ``age_group_probs``
        ``(N, 8)`` (Adience groups), ``gender_logits`` / ``gender_probs`` ``(N, 2)`` (GENDERS
        order), ``emotion_logits`` / ``emotion_probs`` ``(N, 7)`` (EMOTIONS order).
        """
        if crops.dim() != 4 or crops.shape[1] != 3:
            raise ValueError(f"expected crops of shape (N, 3, S, S), got {tuple(crops.shape)}")
        if self.flip_test and not self.training:
            return self.read_with_mirror(crops, crops.flip(-1))
        return self._forward(crops)

    def read_with_mirror(self, crops: torch.Tensor, mirrored: torch.Tensor) -> Dict[str, torch.Tensor]:
        """The average of the readings of ``crops`` and of ``mirrored`` (the same crops flipped
        left-right, ``(N, 3, S, S)`` each), run as one batch of ``2N``."""
        out = self._forward(torch.cat([crops, mirrored]))
        n = crops.shape[0]
        # every output has one row per crop, except DEX's bin centres (K,), shared by all rows
        return average_outputs([{k: v if k == "age_values" and v.dim() == 1 else v[rows] for k, v in out.items()}
                                for rows in (slice(0, n), slice(n, None))])

    def optimize_for_inference(self) -> "AttributeNet":
        """Fold the eval-mode batch norms into their convs
        (:func:`~maskface.modeling.fusion.fold_frozen_norms`) and keep weights and feature maps
        channels-last (oneDNN's fast CPU layout), in place; the outputs are the same to ~1e-5.
        Inference only: the folded net has no norms left to train or to save. Returns ``self``."""
        from maskface.modeling.fusion import prepare_for_inference

        prepare_for_inference(self)
        self._channels_last = True
        return self

    def _forward(self, crops: torch.Tensor) -> Dict[str, torch.Tensor]:
        if self._channels_last:
            crops = crops.contiguous(memory_format=torch.channels_last)
        features = self.trunk(crops)
        out = self.age_head(features)
        out.update(age_summary(out["age_values"], out["age_probs"]))
        out.update(self.gender_head(features))
        out.update(self.emotion_head(features))
        out["gender_probs"] = out["gender_logits"].softmax(dim=1)
        out["emotion_probs"] = out["emotion_logits"].softmax(dim=1)
        return out

    def losses(self, outputs: Dict[str, torch.Tensor], targets: Dict[str, torch.Tensor]) -> Dict[str, torch.Tensor]:
        """Weighted, masked losses ``{"loss_age", "loss_gender", "loss_emotion"}`` (scalars).

        ``targets``: ``age`` ``(N,)`` float years (NaN = unknown), ``gender`` ``(N,)`` int64 index
        into GENDERS (-1 = unknown), ``emotion`` ``(N,)`` int64 index into EMOTIONS (-1 = unknown),
        optionally ``emotion_votes`` ``(N, 7)`` vote shares (rows of zeros = no votes) and
        ``gender_soft`` ``(N,)`` a teacher's probability of "female" (NaN = none).
        """
        w_age, w_gender, w_emotion = self.loss_weights
        if self.age_head.kind == "dex":
            age = dex_age_loss(outputs["age_logits"], outputs["age_values"], targets["age"], self.age_sigma,
                               self.age_l1_weight)
        else:
            age = label_division_loss(outputs["age_logits"], outputs["age_values"], self.age_head.range_edges,
                                      targets["age"], self.age_l1_weight)
        return {
            "loss_age": w_age * age,
            "loss_gender": w_gender * gender_loss(outputs["gender_logits"], targets["gender"],
                                                  targets.get("gender_soft"), self.gender_teacher_weight),
            "loss_emotion": w_emotion * emotion_loss(outputs["emotion_logits"], targets["emotion"],
                                                     targets.get("emotion_votes"), self.emotion_vote_weight),
        }

    @staticmethod
    def decode(outputs: Dict[str, torch.Tensor]) -> List[dict]:
        """Outputs of :meth:`forward` -> one plain dict per face:

        ``age`` (years, float in [0, 100]), ``age_std`` (years), ``age_group`` (the Adience group
        that holds ``age``, such as ``"25-32"``; ages between groups go to the nearest one),
        ``age_group_top`` (the most probable group under the whole age distribution; it differs from
        ``age_group`` when the distribution is wide or has two peaks), ``gender`` ("female" |
        "male"), ``gender_prob`` (probability of that gender, in [0.5, 1]), ``emotion`` (one of
        EMOTIONS), ``emotion_probs`` ({emotion: p}, sums to 1).
        """
        age_t = outputs["age"].detach().float().cpu()
        age = age_t.tolist()
        age_std = outputs["age_std"].detach().float().cpu().tolist()
        group = age_group_index(age_t).tolist()
        top = outputs["age_group_probs"].detach().argmax(dim=1).cpu().tolist()
        gender_p = outputs["gender_probs"].detach().float().cpu()
        emotion_p = outputs["emotion_probs"].detach().float().cpu()
        gp, gi = gender_p.max(dim=1)
        ei = emotion_p.argmax(dim=1)
        faces = []
        for i in range(len(age)):
            faces.append(
                {
                    "age": age[i],
                    "age_std": age_std[i],
                    "age_group": AGE_GROUP_NAMES[group[i]],
                    "age_group_top": AGE_GROUP_NAMES[top[i]],
                    "gender": GENDERS[int(gi[i])],
                    "gender_prob": float(gp[i]),
                    "emotion": EMOTIONS[int(ei[i])],
                    "emotion_probs": {name: float(p) for name, p in zip(EMOTIONS, emotion_p[i].tolist())},
                }
            )
        return faces


def average_outputs(outputs: Sequence[Dict[str, torch.Tensor]]) -> Dict[str, torch.Tensor]:
    """Several readings of the same ``N`` faces (outputs of :meth:`AttributeNet.forward`: a face
    and its mirror image, or several nets) -> one: probabilities are averaged, logits become their
    log, age statistics are recomputed from the mean age distribution. All readings must share the
    age head layout (same ``K``)."""
    k = len(outputs)
    merged = {}
    for name in ("age_probs", "gender_probs", "emotion_probs"):
        merged[name] = sum(o[name] for o in outputs) / k
    for name in ("age", "gender", "emotion"):
        merged[f"{name}_logits"] = merged[f"{name}_probs"].clamp_min(1e-12).log()
    # DEX bin centres (K,) are the same for every reading; label-division values (N, K) are averaged
    merged["age_values"] = sum(o["age_values"] for o in outputs) / k
    merged.update(age_summary(merged["age_values"], merged["age_probs"]))
    return merged
