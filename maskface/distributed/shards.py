"""The output of a distributed job: result shards, resume bookkeeping, merged files.

Layout of ``DIR`` (``tools/infer_ray.py --output DIR``)::

    shards/parquet/part-<run>-<k>.parquet  one row per image: file, width, height, frame, faces,
                                           num_faces, error (pandas.read_parquet("DIR/shards/parquet"))
    shards/jsonl/part-<run>-<k>.jsonl      the same rows as results.jsonl lines: an image record
                                           {"file", "width", "height", "frame", "faces": [...]} or an
                                           error record {"file", "error"} (maskface/inference/SCHEMA.md)
    shards/unreadable/                     shard files found unreadable when resuming (set aside)
    summary.json                           counts, errors, throughput, workers' memory of the last run
    config.yaml, attributes_config.yaml    the merged configs
    run.json                               what produced the shards (a resumed job must match it)
    results.json, results.csv              with --merge: what tools/infer.py writes, from all shards

In the Parquet shards ``faces`` is the JSON text of the image's face list, exactly the
``"faces"`` of ``results.json`` (box, score, mask as COCO RLE, age, gender, emotion...), so
``json.loads(row.faces)`` gives the records of :meth:`maskface.inference.results.Face.from_dict`;
``error`` is null for images that were processed and the reason for those that failed.

Every shard is written atomically (temporary hidden file, then rename): a stopped job leaves whole
shards or none. The shards hold each input at most once: a resumed job (:func:`prepare_resume`)
first rewrites the shards with failed rows without them, then does those inputs again with the
ones never done.
"""

from __future__ import annotations

import json
import logging
import os
import secrets
import time
from pathlib import Path
from typing import Any, Callable, Dict, Iterator, List, Optional, Sequence, Set, Tuple

from maskface.inference.writers import read_jsonl, write_results_csv, write_results_json
from maskface.utils.io import atomic_write

logger = logging.getLogger(__name__)

__all__ = [
    "SHARD_DIR",
    "FORMATS",
    "ShardWriter",
    "ResumeState",
    "prepare_resume",
    "iter_records",
    "remove_shards",
    "write_merged",
]

SHARD_DIR = "shards"
FORMATS = ("parquet", "jsonl")
_EXT = {"parquet": ".parquet", "jsonl": ".jsonl"}
#: Parquet columns, in order.
COLUMNS = ("file", "width", "height", "frame", "faces", "num_faces", "error")


def _dumps(obj: Any) -> str:
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":"))


def _arrow_schema():
    import pyarrow as pa

    return pa.schema([("file", pa.string()), ("width", pa.int32()), ("height", pa.int32()), ("frame", pa.int32()),
                      ("faces", pa.string()), ("num_faces", pa.int32()), ("error", pa.string())])


def records_to_table(records: Sequence[Dict[str, Any]]):
    """Image / error records (results.jsonl lines) -> a pyarrow Table of :data:`COLUMNS`."""
    import pyarrow as pa

    cols: Dict[str, List[Any]] = {c: [] for c in COLUMNS}
    for r in records:
        ok = "faces" in r
        cols["file"].append(str(r["file"]))
        cols["width"].append(r.get("width") if ok else None)
        cols["height"].append(r.get("height") if ok else None)
        cols["frame"].append(r.get("frame"))
        cols["faces"].append(_dumps(r["faces"]) if ok else None)
        cols["num_faces"].append(len(r["faces"]) if ok else None)
        cols["error"].append(None if ok else str(r.get("error")))
    return pa.table(cols, schema=_arrow_schema())


def table_to_records(table) -> Iterator[Dict[str, Any]]:
    """Inverse of :func:`records_to_table`."""
    for row in table.to_pylist():
        if row.get("error") is not None:
            yield {"file": row["file"], "error": row["error"]}
        else:
            yield {"file": row["file"], "width": row["width"], "height": row["height"], "frame": row.get("frame"),
                   "faces": json.loads(row["faces"]) if row.get("faces") else []}


class ShardWriter:
    """Buffers records and writes them as shards ``part-<run>-<k>.<ext>``, one file per format.

    A shard is written when ``shard_rows`` records are buffered, when ``flush_seconds`` passed
    since the last one, and by :meth:`close`. ``written`` lists the shard stems written.
    """

    def __init__(self, output_dir, formats: Sequence[str] = FORMATS, shard_rows: int = 5000,
                 flush_seconds: float = 300.0, run_id: Optional[str] = None):
        bad = [f for f in formats if f not in FORMATS]
        if bad or not formats:
            raise ValueError(f"formats must be some of {FORMATS}, got {list(formats)}")
        if shard_rows < 1:
            raise ValueError(f"shard_rows must be >= 1, got {shard_rows}")
        self.dir = Path(output_dir) / SHARD_DIR
        self.formats = tuple(dict.fromkeys(formats))
        self.shard_rows = shard_rows
        self.flush_seconds = flush_seconds
        self.run_id = run_id or time.strftime("%Y%m%d-%H%M%S") + "-" + secrets.token_hex(3)
        self._buf: List[Dict[str, Any]] = []
        self._k = 0
        self._last = time.monotonic()
        self.written: List[str] = []
        self.rows = 0

    def add(self, record: Dict[str, Any]) -> None:
        self._buf.append(record)
        if len(self._buf) >= self.shard_rows or time.monotonic() - self._last >= self.flush_seconds:
            self.flush()

    def flush(self) -> Optional[str]:
        """Write the buffered records as one shard (nothing when empty); returns its stem."""
        self._last = time.monotonic()
        if not self._buf:
            return None
        stem = f"part-{self.run_id}-{self._k:05d}"
        write_shard(self.dir, stem, self._buf, self.formats)
        self._k += 1
        self.rows += len(self._buf)
        self.written.append(stem)
        self._buf = []
        return stem

    def close(self) -> None:
        self.flush()


def write_shard(folder: Path, stem: str, records: Sequence[Dict[str, Any]], formats: Sequence[str]) -> None:
    """``folder/parquet/stem.parquet`` and / or ``folder/jsonl/stem.jsonl``, each atomically."""
    for fmt in formats:
        path = folder / fmt / (stem + _EXT[fmt])
        if fmt == "parquet":
            import pyarrow.parquet as pq

            table = records_to_table(records)
            with atomic_write(path, "wb") as f:
                pq.write_table(table, f, compression="zstd")
        else:
            with atomic_write(path, "w") as f:
                for r in records:
                    f.write(_dumps(r) + "\n")


# reading ---------------------------------------------------------------------------------------------


def _shard_files(output_dir) -> Dict[str, Dict[str, Path]]:
    """``{stem: {format: path}}`` of the shards in ``output_dir/shards/<format>/`` (hidden
    temporary files skipped)."""
    found: Dict[str, Dict[str, Path]] = {}
    for fmt, ext in _EXT.items():
        folder = Path(output_dir) / SHARD_DIR / fmt
        if not folder.is_dir():
            continue
        for p in sorted(folder.iterdir()):
            if p.name.endswith(ext) and not p.name.startswith(".") and p.is_file():
                found.setdefault(p.name[:-len(ext)], {})[fmt] = p
    return dict(sorted(found.items()))


def _read_shard(paths: Dict[str, Path]) -> Tuple[Optional[List[Dict[str, Any]]], List[Path]]:
    """Records of one shard (its Parquet file, else its JSON lines) and the files that could not be read."""
    bad: List[Path] = []
    if "parquet" in paths:
        try:
            import pyarrow.parquet as pq

            return list(table_to_records(pq.read_table(paths["parquet"]))), bad
        except Exception as e:  # noqa: BLE001 - any unreadable file is set aside the same way
            logger.warning("%s: unreadable Parquet shard (%s)", paths["parquet"], e)
            bad.append(paths["parquet"])
    if "jsonl" in paths:
        try:
            return list(read_jsonl(paths["jsonl"])), bad
        except (OSError, UnicodeDecodeError) as e:
            logger.warning("%s: unreadable shard (%s)", paths["jsonl"], e)
            bad.append(paths["jsonl"])
    return None, bad


def iter_records(output_dir) -> Iterator[Dict[str, Any]]:
    """Every record of every shard of ``output_dir``, shard by shard."""
    for stem, paths in _shard_files(output_dir).items():
        records, _ = _read_shard(paths)
        yield from records or ()


class ResumeState:
    """What the shards of an output folder already hold: ``done`` path keys (processed images),
    ``images`` / ``faces`` counts, ``dropped_errors`` (failed rows removed to be redone),
    ``set_aside`` (unreadable shard files renamed ``*.unreadable``)."""

    def __init__(self):
        self.done: Set[str] = set()
        self.images = 0
        self.faces = 0
        self.dropped_errors = 0
        self.set_aside: List[str] = []


def prepare_resume(output_dir, key: Callable[[str], str]) -> ResumeState:
    """Read the shards of ``output_dir`` for a resumed job.

    Shards with failed rows are rewritten (atomically, every format) without them, so the job
    does those inputs again and each input stays in the shards at most once; a shard left
    empty is deleted. Unreadable shard files (not written by this code: its writes are atomic)
    are moved to ``shards/unreadable/`` and their inputs redone. ``key`` maps a record's ``file``
    to its identity (:func:`maskface.distributed.inputs.path_key`).
    """
    state = ResumeState()
    for stem, paths in _shard_files(output_dir).items():
        records, bad = _read_shard(paths)
        for p in bad:
            aside = Path(output_dir) / SHARD_DIR / "unreadable" / p.name
            aside.parent.mkdir(parents=True, exist_ok=True)
            os.replace(p, aside)
            state.set_aside.append(str(aside))
        if records is None:
            continue
        keep = []
        for r in records:
            if "faces" in r and key(r["file"]) not in state.done:
                state.done.add(key(r["file"]))
                keep.append(r)
        state.dropped_errors += sum(1 for r in records if "faces" not in r)
        state.images += len(keep)
        state.faces += sum(len(r["faces"]) for r in keep)
        formats = [f for f in FORMATS if f in paths and paths[f].exists()]
        if len(keep) == len(records) and not bad:
            continue
        if keep:
            write_shard(Path(output_dir) / SHARD_DIR, stem, keep, formats)
        else:
            for f in formats:
                paths[f].unlink()
    if state.dropped_errors:
        logger.info("resume: %d failed image(s) of earlier runs will be tried again", state.dropped_errors)
    return state


def remove_shards(output_dir) -> int:
    """Delete every shard of ``output_dir`` (``--overwrite``); returns how many files."""
    n = 0
    for paths in _shard_files(output_dir).values():
        for p in paths.values():
            p.unlink()
            n += 1
    return n


def write_merged(output_dir, model: Any = None) -> Dict[str, str]:
    """``results.json`` and ``results.csv`` of ``tools/infer.py`` from the shards (images sorted
    by file); returns ``{name: path}``."""
    out = Path(output_dir)

    def images() -> Iterator[Dict[str, Any]]:
        recs = [r for r in iter_records(out) if "faces" in r]
        recs.sort(key=lambda r: r["file"])
        yield from recs

    errors = sorted((r for r in iter_records(out) if "error" in r), key=lambda r: r["file"])
    write_results_json(out / "results.json", images(), errors, model=model)
    write_results_csv(out / "results.csv", images())
    return {"results": str(out / "results.json"), "table": str(out / "results.csv")}
