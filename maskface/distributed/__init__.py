"""Batch inference beyond one process: MaskFace on `Ray Data <https://docs.ray.io/en/latest/data/>`_.

    from maskface.distributed import RayInferenceJob
    job = RayInferenceJob(["photos/", "s3://bucket/list.parquet"], "out/", {"model": "maskface-lite"}, workers=4)
    summary = job.run()            # local Ray instance, or the cluster of ray.init() / RAY_ADDRESS

``tools/infer_ray.py`` is the command line of :class:`RayInferenceJob`. Modules:

* :mod:`maskface.distributed.inputs`: folders, globs and text / CSV / Parquet lists of image
  paths, local or on any filesystem pyarrow understands; reading one image with the rules of
  ``tools/infer.py`` (:func:`maskface.inference.image_io.load_image`);
* :mod:`maskface.distributed.shards`: the sharded output (Parquet and JSON-lines shards, one row
  per image), resume bookkeeping, merged ``results.json``;
* :mod:`maskface.distributed.ray_infer`: the Ray Data pipeline (decode stage, an actor pool of
  :class:`~maskface.inference.predictor.FacePredictor`, one model per actor) and the job driver.

Ray is an optional dependency (``pip install -e ".[ray]"``); only this package imports it, and
only when a job runs, so importing :mod:`maskface` never needs it.
"""

from __future__ import annotations

__all__ = ["RAY_INSTALL_HINT", "require_ray", "require_pyarrow", "RayInferenceJob", "RaySummary"]

RAY_INSTALL_HINT = "pip install -e '.[ray]'  (Ray Data and pyarrow, pinned in setup.py's extra \"ray\")"


def require_ray():
    """``import ray`` and ``ray.data``, or an ``ImportError`` that says how to install them."""
    from maskface.utils.optional import import_optional

    ray = import_optional("ray", "MaskFace on Ray", RAY_INSTALL_HINT)
    import_optional("ray.data", "MaskFace on Ray", RAY_INSTALL_HINT)
    return ray


def require_pyarrow():
    """``import pyarrow`` (installed with the ``ray`` extra), or an ``ImportError`` saying how."""
    from maskface.utils.optional import import_optional

    return import_optional("pyarrow", "reading image lists and writing Parquet shards", RAY_INSTALL_HINT)


def __getattr__(name):  # RayInferenceJob / RaySummary without importing ray at package import
    if name in ("RayInferenceJob", "RaySummary"):
        from maskface.distributed import ray_infer

        return getattr(ray_infer, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
