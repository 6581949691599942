"""Model zoo: named models (``"maskface-lite"``) -> detector and attribute configs + weights,
with sha256 checks, optional download to a local cache, and :func:`register_weights` for
adding trained weights. See :mod:`maskface.model_zoo.registry` and ``models.json``."""

from maskface.model_zoo.registry import (
    DEFAULT_MODEL,
    MODELS_JSON,
    ModelEntry,
    ModelZooError,
    WeightsIntegrityError,
    cache_dir,
    fetch_weights,
    get_model,
    list_models,
    model_for_config,
    register_weights,
    sha256_file,
    verify_sha256,
)

__all__ = [
    "DEFAULT_MODEL",
    "MODELS_JSON",
    "ModelEntry",
    "ModelZooError",
    "WeightsIntegrityError",
    "cache_dir",
    "fetch_weights",
    "get_model",
    "list_models",
    "model_for_config",
    "register_weights",
    "sha256_file",
    "verify_sha256",
]
