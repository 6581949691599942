"""A small YAML config: nested attribute-access dicts, ``_BASE_`` inheritance, ``KEY VALUE``
overrides from the command line, and freezing after setup.

Only keys that exist in the defaults may be set, so a typo fails loudly instead of being ignored.
"""

from __future__ import annotations

import ast
import copy
from pathlib import Path
from typing import Any, Iterable, List

import yaml

from maskface.utils.io import atomic_write

BASE_KEY = "_BASE_"
# Keys whose values are lists of file paths: like _BASE_, relative to the YAML file that names them.
PATH_LIST_KEYS = (("MODEL", "ENSEMBLE"),)


class CfgNode(dict):
    """A dict whose keys are also attributes; nested dicts become ``CfgNode``.

    ``cfg.MODEL.BACKBONE`` and ``cfg["MODEL"]["BACKBONE"]`` are the same value.
    After :meth:`freeze`, any assignment raises ``AttributeError``.
    """

    def __init__(self, init: dict | None = None):
        super().__init__()
        object.__setattr__(self, "_frozen", False)
        for k, v in (init or {}).items():
            self[k] = CfgNode(v) if isinstance(v, dict) and not isinstance(v, CfgNode) else v

    # attribute access -------------------------------------------------------------------------
    def __getattr__(self, name: str) -> Any:
        try:
            return self[name]
        except KeyError:
            raise AttributeError(f"config has no key {name!r}; known keys: {sorted(self.keys())}") from None

    def __setattr__(self, name: str, value: Any) -> None:
        self[name] = value

    def __setitem__(self, key: str, value: Any) -> None:
        if getattr(self, "_frozen", False):
            raise AttributeError(f"config is frozen; cannot set {key!r}. Call cfg.clone() to get a mutable copy.")
        if isinstance(value, dict) and not isinstance(value, CfgNode):
            value = CfgNode(value)
        super().__setitem__(key, value)

    def __deepcopy__(self, memo):
        return CfgNode({k: copy.deepcopy(v, memo) for k, v in self.items()})

    # lifecycle ----------------------------------------------------------------------------------
    def freeze(self) -> "CfgNode":
        for v in self.values():
            if isinstance(v, CfgNode):
                v.freeze()
        object.__setattr__(self, "_frozen", True)
        return self

    def is_frozen(self) -> bool:
        return self._frozen

    def clone(self) -> "CfgNode":
        """A deep, mutable copy."""
        return copy.deepcopy(self)

    def to_dict(self) -> dict:
        return {k: v.to_dict() if isinstance(v, CfgNode) else copy.deepcopy(v) for k, v in self.items()}

    def dump(self) -> str:
        """The config as YAML text (what is saved next to every output)."""
        return yaml.safe_dump(self.to_dict(), sort_keys=True, default_flow_style=None)

    # merging ------------------------------------------------------------------------------------
    def merge_from_dict(self, other: dict, _prefix: str = "", source: str = "") -> None:
        """Merge ``other`` into this node; every key must already exist (typos fail)."""
        for k, v in other.items():
            full = f"{_prefix}{k}"
            if k not in self:
                where = f" in {source}" if source else ""
                raise KeyError(f"unknown config key {full!r}{where}; known keys here: {sorted(self.keys())}")
            if isinstance(self[k], CfgNode):
                if not isinstance(v, dict):
                    raise TypeError(f"config key {full!r} is a section; got a {type(v).__name__} ({v!r})")
                self[k].merge_from_dict(v, f"{full}.", source)
            else:
                self[k] = _check_type(full, self[k], v)

    def merge_from_file(self, path: str | Path) -> None:
        """Merge a YAML file, after recursively merging the files its ``_BASE_`` names."""
        self.merge_from_dict(load_yaml_with_base(path), source=str(path))

    def merge_from_list(self, opts: Iterable[str]) -> None:
        """Merge ``["MODEL.BACKBONE", "resnet50", "SOLVER.BASE_LR", "0.01"]``-style overrides.

        Values are parsed as Python literals when possible (numbers, lists, booleans),
        otherwise kept as strings.
        """
        opts = list(opts)
        if len(opts) % 2:
            raise ValueError(f"overrides must be KEY VALUE pairs; got an odd number of items: {opts}")
        for key, raw in zip(opts[0::2], opts[1::2]):
            node = self
            parts = key.split(".")
            for i, p in enumerate(parts[:-1]):
                if p not in node or not isinstance(node[p], CfgNode):
                    raise KeyError(f"unknown config key {'.'.join(parts[: i + 1])!r} (from override {key}={raw})")
                node = node[p]
            last = parts[-1]
            if last not in node:
                raise KeyError(f"unknown config key {key!r}; known keys in that section: {sorted(node.keys())}")
            node[last] = _check_type(key, node[last], _parse_value(raw))


def _parse_value(raw: Any) -> Any:
    if not isinstance(raw, str):
        return raw
    try:
        return ast.literal_eval(raw)
    except (ValueError, SyntaxError):
        low = raw.lower()
        if low in ("true", "false"):
            return low == "true"
        if low in ("none", "null"):
            return None
        return raw


def _check_type(key: str, old: Any, new: Any) -> Any:
    """Keep the default's type: ints become floats where a float is expected, tuples lists."""
    if old is None or new is None:
        return new
    if isinstance(old, bool) or isinstance(new, bool):
        if isinstance(old, bool) and isinstance(new, bool):
            return new
        raise TypeError(f"config key {key!r} expects {type(old).__name__}, got {new!r}")
    if isinstance(old, float) and isinstance(new, int):
        return float(new)
    if isinstance(old, (list, tuple)) and isinstance(new, (list, tuple)):
        return list(new)
    if isinstance(old, str) and not isinstance(new, str):
        return str(new)
    if type(old) is not type(new) and not (isinstance(old, (int, float)) and isinstance(new, (int, float))):
        raise TypeError(f"config key {key!r} expects {type(old).__name__}, got {type(new).__name__} ({new!r})")
    return new


def load_yaml_with_base(path: str | Path, _seen: tuple = ()) -> dict:
    """Load a YAML file, recursively merging the file(s) named by ``_BASE_`` beneath it.

    ``_BASE_`` paths are relative to the file that names them. Cycles are reported.
    """
    path = Path(path).resolve()
    if path in _seen:
        raise ValueError(f"{path}: _BASE_ cycle: {' -> '.join(str(p) for p in _seen + (path,))}")
    if not path.is_file():
        raise FileNotFoundError(f"config file not found: {path}")
    with open(path, "r", encoding="utf-8") as f:
        try:
            data = yaml.safe_load(f) or {}
        except yaml.YAMLError as e:
            raise ValueError(f"{path}: invalid YAML: {e}") from None
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected a mapping at the top level, got {type(data).__name__}")
    _resolve_path_lists(data, path)
    bases = data.pop(BASE_KEY, None)
    if bases is None:
        return data
    merged: dict = {}
    for base in [bases] if isinstance(bases, str) else bases:
        _deep_update(merged, load_yaml_with_base(path.parent / base, _seen + (path,)))
    _deep_update(merged, data)
    return merged


def _resolve_path_lists(data: dict, path: Path) -> None:
    for section, key in PATH_LIST_KEYS:
        node = data.get(section)
        if not isinstance(node, dict) or key not in node:
            continue
        value = node[key]
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise ValueError(f"{path}: {section}.{key} must be a list of file paths, got {value!r}")
        node[key] = [str((path.parent / v).resolve()) for v in value]


def _deep_update(dst: dict, src: dict) -> None:
    for k, v in src.items():
        if isinstance(v, dict) and isinstance(dst.get(k), dict):
            _deep_update(dst[k], v)
        else:
            dst[k] = copy.deepcopy(v)


def setup_cfg(defaults: CfgNode, config_file: str | None = None, opts: List[str] | None = None) -> CfgNode:
    """Defaults <- config file (with its bases) <- ``KEY VALUE`` overrides, then frozen."""
    cfg = defaults.clone()
    if config_file:
        cfg.merge_from_file(config_file)
    if opts:
        cfg.merge_from_list(opts)
    return cfg.freeze()


def save_config(cfg: CfgNode, output_dir: str, name: str = "config.yaml") -> str:
    """Write the merged config next to the run's outputs (atomically); returns its path."""
    path = Path(output_dir) / name
    with atomic_write(path) as f:
        f.write(cfg.dump())
    return str(path)
