"""Attribute net on masked face crops: the one crop function, trunks, heads, losses, the net."""

from maskface.modeling.attributes.crops import PIXEL_MEAN, PIXEL_STD, extract_face_crops, normalize_crops
from maskface.modeling.attributes.heads import AGE_GROUP_NAMES, age_group_index
from maskface.modeling.attributes.net import AttributeNet
from maskface.modeling.attributes.trunks import TRUNKS, build_trunk

__all__ = [
    "AGE_GROUP_NAMES",
    "AttributeNet",
    "PIXEL_MEAN",
    "PIXEL_STD",
    "TRUNKS",
    "age_group_index",
    "build_trunk",
    "extract_face_crops",
    "normalize_crops",
]
