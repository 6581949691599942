"""Attribute net on masked face crops: the one crop function, trunks, heads, losses, the net, and
an ensemble of nets."""

from maskface.modeling.attributes.crops import PIXEL_MEAN, PIXEL_STD, extract_face_crops, normalize_crops
from maskface.modeling.attributes.ensemble import AttributeEnsemble, build_attribute_model, load_attribute_net
from maskface.modeling.attributes.heads import AGE_GROUP_NAMES, age_group_index
from maskface.modeling.attributes.net import AttributeNet
from maskface.modeling.attributes.trunks import TRUNKS, build_trunk

__all__ = [
    "AGE_GROUP_NAMES",
    "AttributeEnsemble",
    "AttributeNet",
    "PIXEL_MEAN",
    "PIXEL_STD",
    "TRUNKS",
    "age_group_index",
    "build_attribute_model",
    "build_trunk",
    "extract_face_crops",
    "load_attribute_net",
    "normalize_crops",
]
