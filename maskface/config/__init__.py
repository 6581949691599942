"""Configs: :class:`CfgNode`, YAML with ``_BASE_``, ``KEY VALUE`` overrides, frozen after setup;
:func:`save_config` writes the merged config next to a run's outputs."""

from maskface.config.config import CfgNode, load_yaml_with_base, save_config, setup_cfg
from maskface.config.defaults import get_attr_cfg, get_cfg

__all__ = ["CfgNode", "get_cfg", "get_attr_cfg", "load_yaml_with_base", "save_config", "setup_cfg"]
