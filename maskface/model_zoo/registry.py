"""Named models: ``name -> detector config + weights, attribute config + weights``, each
weights file checked against its sha256 when loaded.

The table lives in ``maskface/model_zoo/models.json``::

    {"maskface-lite": {
        "description": "...",
        "detector_config": "configs/maskface_R18_FPN_lite.yaml",
        "detector_weights": "weights/maskface_lite_detector.pth",
        "detector_sha256": "<64 hex>" | null,
        "detector_url": "https://..." | null,
        "attribute_config": "configs/attributes/<name>.yaml" | null,
        "attribute_weights": "weights/maskface_lite_attributes.pth" | null,
        "attribute_sha256": "<64 hex>" | null,
        "attribute_url": "https://..." | null,
        "license": "...", "notes": "..."}}

Relative paths are looked up first next to ``models.json`` (``maskface/model_zoo/``), then
in the repository root (where ``configs/`` lives). A ``null`` sha256 means "not registered
yet": the file is used with a warning. Weights that are not on disk but have a ``url`` are
downloaded once to the cache (``$MASKFACE_CACHE`` or ``~/.cache/maskface``); offline, the
error says where to put the file by hand. An explicit local path always works.

The lead registers trained weights with :func:`register_weights`, which (optionally) copies
the files into ``maskface/model_zoo/weights/`` stripped to ``{"model": state_dict}`` (fp16
storage allowed; cast back on load), computes the sha256s and rewrites the table atomically.
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import tempfile
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, List, Optional

from maskface.utils.io import current_umask, load_json, save_json

logger = logging.getLogger(__name__)

__all__ = [
    "DEFAULT_MODEL",
    "MODELS_JSON",
    "ModelEntry",
    "ModelZooError",
    "WeightsIntegrityError",
    "list_models",
    "get_model",
    "sha256_file",
    "verify_sha256",
    "cache_dir",
    "fetch_weights",
    "register_weights",
]

ZOO_DIR = Path(__file__).resolve().parent
REPO_ROOT = ZOO_DIR.parent.parent
MODELS_JSON = ZOO_DIR / "models.json"
WEIGHTS_DIR = ZOO_DIR / "weights"
DEFAULT_MODEL = "maskface-lite"

_FIELDS = ("description", "detector_config", "detector_weights", "detector_sha256", "detector_url",
           "attribute_config", "attribute_weights", "attribute_sha256", "attribute_url", "license", "notes")


class ModelZooError(ValueError):
    """Unknown model name, missing file, or a download that failed."""


class WeightsIntegrityError(RuntimeError):
    """A weights file's sha256 differs from the registered one."""


@dataclass
class ModelEntry:
    """One row of ``models.json``; paths as written in the table (see :meth:`resolve`)."""

    name: str
    detector_config: str
    detector_weights: Optional[str] = None
    detector_sha256: Optional[str] = None
    detector_url: Optional[str] = None
    attribute_config: Optional[str] = None
    attribute_weights: Optional[str] = None
    attribute_sha256: Optional[str] = None
    attribute_url: Optional[str] = None
    description: str = ""
    license: str = ""
    notes: str = ""
    table_dir: Optional[str] = None  # folder of the models.json it came from (relative paths)

    def _bases(self) -> List[Path]:
        return [Path(self.table_dir)] if self.table_dir else []

    def config_path(self, which: str) -> Optional[str]:
        """Resolved path of ``"detector"`` / ``"attribute"`` config (``None`` if not set)."""
        rel = getattr(self, f"{which}_config")
        if not rel:
            return None
        p = _resolve_path(rel, self._bases())
        if p is None:
            raise ModelZooError(f"model {self.name!r}: {which} config {rel!r} not found "
                                f"(looked in {', '.join(str(b) for b in _search_dirs(self._bases()))})")
        return str(p)

    def weights_path(self, which: str, verify: bool = True, download: bool = True) -> Optional[str]:
        """Local, sha256-checked path of the ``"detector"`` / ``"attribute"`` weights.

        Returns ``None`` when the entry has no such weights. Downloads from the entry's URL
        into the cache when the file is not on disk.
        """
        rel = getattr(self, f"{which}_weights")
        url = getattr(self, f"{which}_url")
        sha = getattr(self, f"{which}_sha256")
        if not rel and not url:
            return None
        return fetch_weights(rel, sha256=sha if verify else None, url=url if download else None,
                             what=f"model {self.name!r} {which} weights", search=self._bases())

    def to_dict(self) -> Dict[str, Any]:
        return {k: getattr(self, k) for k in _FIELDS}


def _search_dirs(extra=()) -> List[Path]:
    out: List[Path] = []
    for d in list(extra) + [ZOO_DIR, REPO_ROOT, Path.cwd()]:
        if d not in out:
            out.append(d)
    return out


def _resolve_path(rel: str, extra=()) -> Optional[Path]:
    p = Path(os.path.expanduser(rel))
    if p.is_absolute():
        return p if p.exists() else None
    for base in _search_dirs(extra):
        if (base / p).exists():
            return base / p
    return None


def _table_path(path: Optional[os.PathLike] = None) -> Path:
    return Path(path or os.environ.get("MASKFACE_MODELS_JSON") or MODELS_JSON)


def _load_table(path: Optional[os.PathLike] = None) -> Dict[str, Dict[str, Any]]:
    path = _table_path(path)
    if not path.exists():
        return {}
    table = load_json(path)
    if not isinstance(table, dict):
        raise ModelZooError(f"{path}: expected an object {{name: entry}}, got {type(table).__name__}")
    return {k: v for k, v in table.items() if not k.startswith("_")}


def list_models(models_json: Optional[os.PathLike] = None) -> List[str]:
    """Names of the registered models."""
    return sorted(_load_table(models_json))


def get_model(name: str, models_json: Optional[os.PathLike] = None) -> ModelEntry:
    """The entry of a named model; an unknown name lists the known ones."""
    table = _load_table(models_json)
    if name not in table:
        known = ", ".join(sorted(table)) or "(none registered)"
        raise ModelZooError(f"unknown model {name!r}; known models: {known}")
    row = dict(table[name])
    unknown = set(row) - set(_FIELDS)
    if unknown:
        raise ModelZooError(f"models.json entry {name!r} has unknown keys {sorted(unknown)}; allowed: {_FIELDS}")
    if not row.get("detector_config"):
        raise ModelZooError(f"models.json entry {name!r} has no detector_config")
    values = {k: row.get(k) if row.get(k) is not None else ModelEntry.__dataclass_fields__[k].default
              for k in _FIELDS}
    return ModelEntry(name=name, table_dir=str(_table_path(models_json).resolve().parent), **values)


# integrity ---------------------------------------------------------------------------------------


def model_for_config(config: os.PathLike, models_json: Optional[os.PathLike] = None) -> Optional[str]:
    """The zoo model whose detector config is ``config`` or one of the files it inherits from
    (``_BASE_``, followed recursively), so that a zoo config variant (the crowd setting) runs with
    that model's weights; ``None`` when no entry fits. The nearest file in the chain wins."""
    import yaml

    from maskface.config.config import BASE_KEY

    owners: Dict[Path, str] = {}
    for name in list_models(models_json):
        try:
            owners.setdefault(Path(get_model(name, models_json).config_path("detector")).resolve(), name)
        except ModelZooError:
            continue
    path, seen = Path(config).resolve(), set()
    while path not in seen and path.is_file():
        if path in owners:
            return owners[path]
        seen.add(path)
        with open(path, encoding="utf-8") as f:
            base = (yaml.safe_load(f) or {}).get(BASE_KEY)
        if not isinstance(base, str):  # none, or a list of bases: no single owner to inherit from
            return None
        path = (path.parent / base).resolve()
    return None


def sha256_file(path: os.PathLike, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(chunk), b""):
            h.update(block)
    return h.hexdigest()


def verify_sha256(path: os.PathLike, expected: Optional[str], what: str = "weights") -> str:
    """Check ``path`` against ``expected`` (skipped with a warning when ``expected`` is None).

    Raises:
        WeightsIntegrityError: the hashes differ.
    """
    got = sha256_file(path)
    if not expected:
        logger.warning("%s: no sha256 registered for %s; file not verified (sha256 %s)", what, path, got)
        return got
    if got.lower() != expected.lower():
        raise WeightsIntegrityError(
            f"{what} at {path}: file corrupted or replaced; expected sha256 {expected.lower()} got {got}. "
            "Delete it and fetch it again, or register the new file with maskface.model_zoo.register_weights()."
        )
    return got


def cache_dir() -> Path:
    """``$MASKFACE_CACHE`` or ``~/.cache/maskface``."""
    return Path(os.environ.get("MASKFACE_CACHE") or Path.home() / ".cache" / "maskface")


def fetch_weights(rel: Optional[str], sha256: Optional[str] = None, url: Optional[str] = None,
                  what: str = "weights", timeout: float = 30.0, search=()) -> str:
    """A local, verified weights file: the path itself when it exists (relative paths resolved
    like the table's, ``search`` first), else the cached download of ``url`` (downloaded when
    missing)."""
    local = _resolve_path(rel, search) if rel else None
    if local is not None and local.is_file():
        verify_sha256(local, sha256, what)
        return str(local)
    if not url:
        dirs = ", ".join(str(d) for d in _search_dirs(search))
        where = rel if rel and os.path.isabs(rel) else f"{rel} (looked in {dirs})"
        target = rel if not rel or os.path.isabs(rel) else str(_search_dirs(search)[0] / rel)
        raise ModelZooError(
            f"{what} not found: {where}. The trained weights are not in this checkout: "
            f"place the file at {target}, or pass explicit weights paths (FacePredictor(detector_weights=..., "
            "attribute_weights=...) / tools/infer.py --detector-weights ... --attribute-weights ...)."
        )
    name = os.path.basename(urllib.request.url2pathname(url.split("?")[0]))
    name = name or os.path.basename(rel or "") or "weights.pth"
    target = cache_dir() / name
    if target.is_file():
        verify_sha256(target, sha256, what)
        return str(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    logger.info("Downloading %s from %s to %s", what, url, target)
    fd, tmp = tempfile.mkstemp(prefix=f".{name}.", suffix=".part", dir=str(target.parent))
    os.fchmod(fd, 0o666 & ~current_umask())  # mkstemp's 0600 would ignore the umask
    os.close(fd)
    try:
        with urllib.request.urlopen(url, timeout=timeout) as r, open(tmp, "wb") as f:
            shutil.copyfileobj(r, f, 1 << 20)
        verify_sha256(tmp, sha256, what)
        os.replace(tmp, target)
    except WeightsIntegrityError:
        os.unlink(tmp)
        raise
    except (urllib.error.URLError, OSError, ValueError) as e:
        if os.path.exists(tmp):
            os.unlink(tmp)
        reason = getattr(e, "reason", e)
        raise ModelZooError(
            f"{what}: could not download {url} ({reason}). If this machine is offline, download the file "
            f"on a connected machine and place it at {target}"
            + (f" or {_search_dirs(search)[0] / rel}" if rel and not os.path.isabs(rel) else "")
            + ", or pass a local weights path explicitly."
        ) from None
    return str(target)


# registration -----------------------------------------------------------------------------------


def _store_weights(src: str, dst: Path, fp16: bool) -> None:
    """Copy ``src`` to ``dst`` as ``{"model": state_dict}`` (optionally fp16), atomically.

    fp16 keeps BatchNorm statistics (``running_mean`` / ``running_var``) in fp32: variances of
    1e-5 and below lose most of their digits or become 0 in fp16, and a frozen BatchNorm divides
    by their square root (the MobileNet-SSH detector lost 4 points of mask IoU that way)."""
    import torch

    from maskface.utils.checkpoint import load_checkpoint_file
    from maskface.utils.io import atomic_write

    data = load_checkpoint_file(src)
    state = data.get("model", data)
    if fp16:
        state = {k: (v.half() if hasattr(v, "is_floating_point") and v.is_floating_point()
                     and not k.endswith(("running_mean", "running_var")) else v)
                 for k, v in state.items()}
    dst.parent.mkdir(parents=True, exist_ok=True)
    with atomic_write(dst, "wb") as f:
        torch.save({"model": state}, f)


def register_weights(
    name: str,
    detector_weights: Optional[str] = None,
    attribute_weights: Optional[str] = None,
    detector_config: Optional[str] = None,
    attribute_config: Optional[str] = None,
    copy_into_zoo: bool = True,
    fp16: bool = False,
    detector_url: Optional[str] = None,
    attribute_url: Optional[str] = None,
    models_json: Optional[os.PathLike] = None,
    **fields: Any,
) -> Dict[str, Any]:
    """Add or update the entry ``name`` in ``models.json``, computing the sha256s.

    With ``copy_into_zoo`` the given checkpoints are re-saved as
    ``maskface/model_zoo/weights/<name>_{detector,attributes}.pth`` holding only
    ``{"model": state_dict}`` (``fp16=True`` halves their size; they are cast back on load),
    and the table points at those copies; otherwise it points at the given paths as they are.
    Arguments left ``None`` keep the existing entry's value. Returns the written entry.

    Example (the lead, after training)::

        from maskface.model_zoo import register_weights
        register_weights("maskface-lite",
                         detector_weights="output/lite/model_final.pth",
                         attribute_weights="output/attributes/model_final.pth",
                         attribute_config="configs/attributes/depthwise.yaml", fp16=True)
    """
    path = Path(models_json or MODELS_JSON)
    table = load_json(path) if path.exists() else {}
    entry = dict(table.get(name, {}))
    for k, v in dict(detector_config=detector_config, attribute_config=attribute_config,
                     detector_url=detector_url, attribute_url=attribute_url, **fields).items():
        if k not in _FIELDS:
            raise ModelZooError(f"unknown field {k!r}; allowed: {_FIELDS}")
        if v is not None:
            entry[k] = v
    zoo_dir = path.parent
    for which, src in (("detector", detector_weights), ("attribute", attribute_weights)):
        if src is None:
            continue
        if not os.path.isfile(src):
            raise ModelZooError(f"{which} weights to register not found: {src}")
        if copy_into_zoo:
            stem = name.replace("-", "_")
            rel = f"weights/{stem}_{'attributes' if which == 'attribute' else 'detector'}.pth"
            dst = zoo_dir / rel
            _store_weights(src, dst, fp16)
            entry[f"{which}_weights"] = rel
            entry[f"{which}_sha256"] = sha256_file(dst)
        else:
            entry[f"{which}_weights"] = os.path.abspath(src)
            entry[f"{which}_sha256"] = sha256_file(src)
    if not entry.get("detector_config"):
        raise ModelZooError(f"entry {name!r} needs a detector_config")
    for k in _FIELDS:
        entry.setdefault(k, None if k not in ("description", "license", "notes") else "")
    table[name] = {k: entry[k] for k in _FIELDS}
    save_json(table, path, indent=2)
    logger.info("Registered model %r in %s", name, path)
    return table[name]
