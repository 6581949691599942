"""What a distributed job reads: image paths from folders, globs and lists, and the images themselves.

An ``--input`` of ``tools/infer_ray.py`` is one of

* an image file, a folder (searched recursively) or a glob pattern, exactly as ``tools/infer.py``
  takes them (:func:`maskface.inference.image_io.collect_inputs`) when local; the same on any
  filesystem pyarrow understands when given as a URI (``s3://bucket/photos/``,
  ``gs://bucket/shots/*.jpg``, ``hdfs://...``, ``file:///data/photos``);
* a list of image paths: a text file (``.txt``, ``.lst``, ``.list``: one path a line, blank lines
  and ``#`` comments skipped), a CSV / TSV file (``.csv``, ``.tsv``: a header row and a column
  ``path``, or ``file``, or the one named by ``path_column``) or a Parquet file (``.parquet``,
  ``.pq``: the same column), local or a URI. Relative entries are relative to the list's own
  folder, so a list can travel with its images; entries may be URIs themselves.

Images are read by :func:`read_image`: a local path (or ``file://`` URI) goes straight to
:func:`~maskface.inference.image_io.load_image`, the decoder of ``tools/infer.py`` (EXIF
orientation, grayscale / RGBA / 16-bit / CMYK conversion, the pixel cap read from the header);
a remote file is copied to a temporary local file first and decoded by the same function, so
both give the same pixels and the same error messages (naming the URI).

pyarrow comes with the ``ray`` extra; it is imported only for URIs, CSV and Parquet lists.
"""

from __future__ import annotations

import fnmatch
import glob
import logging
import os
import re
import tempfile
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence

import numpy as np

from maskface.inference.image_io import (
    DEFAULT_MAX_PIXELS,
    IMAGE_EXTS,
    VIDEO_EXTS,
    ImageLoadError,
    InputSpecError,
    collect_inputs,
    load_image,
)

logger = logging.getLogger(__name__)

__all__ = [
    "LIST_EXTS",
    "ImageInputs",
    "is_uri",
    "path_key",
    "list_inputs",
    "read_path_list",
    "read_image",
    "decode_error_message",
]

#: Suffixes read as lists of image paths rather than as images.
TEXT_LIST_EXTS = frozenset({".txt", ".lst", ".list"})
CSV_LIST_EXTS = frozenset({".csv", ".tsv"})
PARQUET_LIST_EXTS = frozenset({".parquet", ".pq"})
LIST_EXTS = TEXT_LIST_EXTS | CSV_LIST_EXTS | PARQUET_LIST_EXTS
#: Columns looked for in CSV / Parquet lists, in this order, when none is named.
DEFAULT_PATH_COLUMNS = ("path", "file")

_URI = re.compile(r"^[A-Za-z][A-Za-z0-9+.\-]*://")


def is_uri(path: str) -> bool:
    """``scheme://...`` (``s3://``, ``gs://``, ``hdfs://``, ``file://``...), as opposed to a local path."""
    return bool(_URI.match(str(path)))


def _file_uri_path(uri: str) -> Optional[str]:
    """The local path of a ``file://`` URI, ``None`` for other URIs."""
    if not uri.lower().startswith("file://"):
        return None
    from urllib.parse import unquote, urlparse

    return unquote(urlparse(uri).path)


def path_key(path: str) -> str:
    """What makes two spellings one input (resume, duplicates): the real path of a local file
    (``a.jpg``, ``./a.jpg``, ``/abs/a.jpg`` and a link to it are one, as in ``tools/infer.py``),
    the URI itself otherwise (``file://`` URIs count as their local path)."""
    local = _file_uri_path(path) if is_uri(path) else path
    return os.path.realpath(local) if local is not None else str(path)


def _suffix(path: str) -> str:
    name = path.rstrip("/").rsplit("/", 1)[-1]
    return os.path.splitext(name)[1].lower()


def _hidden(rel: str) -> bool:
    return any(part.startswith(".") for part in rel.replace("\\", "/").split("/") if part)


@dataclass
class ImageInputs:
    """The expanded ``--input``: image ``paths`` (as given or listed, duplicates removed, in
    order), ``unreadable`` sub-folders (reported as failed inputs), ``videos`` left out (the
    distributed path does images only; ``tools/infer.py`` does videos)."""

    paths: List[str] = field(default_factory=list)
    unreadable: List[str] = field(default_factory=list)
    videos: List[str] = field(default_factory=list)
    duplicates: int = 0

    def add(self, path: str, seen: Dict[str, None]) -> None:
        key = path_key(path)
        if key in seen:
            self.duplicates += 1
            return
        seen[key] = None
        self.paths.append(path)


# filesystems ------------------------------------------------------------------------------------------


def _filesystem(uri: str):
    """``(pyarrow filesystem, path inside it)`` of a URI."""
    from maskface.distributed import require_pyarrow

    require_pyarrow()
    import pyarrow.fs as pafs

    try:
        return pafs.FileSystem.from_uri(uri)
    except (ValueError, OSError) as e:  # pyarrow.ArrowInvalid is a ValueError
        raise InputSpecError(f"{uri}: pyarrow cannot open this filesystem ({e})") from None


def _join_uri(base: str, rel: str) -> str:
    return base.rstrip("/") + "/" + rel.lstrip("/")


def _uri_prefix(uri: str, fs_path: str) -> str:
    """What goes back in front of a path listed by the filesystem of ``uri`` to make it a URI:
    ``s3://`` for ``s3://bucket/a`` (path ``bucket/a``), ``hdfs://host:8020`` for
    ``hdfs://host:8020/a`` (path ``/a``)."""
    start = uri.find("://") + 3
    at = uri.find(fs_path, start) if fs_path else -1
    return uri[:at] if at >= start else uri[:start]


def _list_uri(spec: str, out: ImageInputs, seen: Dict[str, None]) -> None:
    """A folder, glob or single file given as a URI (on object stores a ``*`` also matches ``/``)."""
    local = _file_uri_path(spec)
    if local is not None:  # file:// URIs: the local rules, paths reported as the URI's
        for p in _list_local(local, out):
            out.add("file://" + p if os.path.isabs(p) else p, seen)
        return
    fs, path = _filesystem(spec)  # says how to install pyarrow when it is missing
    import pyarrow.fs as pafs

    prefix = _uri_prefix(spec, path)
    pattern = None
    if glob.has_magic(path):
        parts = path.split("/")
        k = next(i for i, p in enumerate(parts) if glob.has_magic(p))
        base, pattern = "/".join(parts[:k]), path
    else:
        base = path
    try:
        info = fs.get_file_info(base)
    except OSError as e:
        raise InputSpecError(f"{spec}: cannot read ({e})") from None
    if info.type == pafs.FileType.NotFound:
        raise InputSpecError(f"{spec}: no such file or folder")
    if info.type == pafs.FileType.File and pattern is None:
        out.add(spec, seen)
        return
    try:
        infos = fs.get_file_info(pafs.FileSelector(base, recursive=True))
    except OSError as e:
        raise InputSpecError(f"{spec}: cannot list folder ({e})") from None
    found = 0
    for f in sorted((i for i in infos if i.type == pafs.FileType.File), key=lambda i: i.path):
        rel = f.path[len(base):].lstrip("/")
        if _hidden(rel) or (pattern is not None and not fnmatch.fnmatchcase(f.path, pattern)):
            continue
        ext = _suffix(f.path)
        if ext in IMAGE_EXTS:
            out.add(prefix + f.path, seen)
            found += 1
        elif ext in VIDEO_EXTS:
            out.videos.append(prefix + f.path)
            found += 1
    if not found:
        raise InputSpecError(f"{spec}: {'pattern' if pattern else 'folder'} matched no image files "
                             f"(looked for {', '.join(sorted(IMAGE_EXTS))})")


def _list_local(spec: str, out: ImageInputs) -> List[str]:
    """Image paths of a local file / folder / glob, through ``tools/infer.py``'s own
    :func:`collect_inputs` (its order, hidden files, links and unreadable sub-folders)."""
    paths = []
    for p, kind in collect_inputs(spec):
        if kind == "image":
            paths.append(p)
        elif kind == "video":
            out.videos.append(p)
        else:
            out.unreadable.append(p)
    return paths


# lists of paths ---------------------------------------------------------------------------------------


def read_path_list(spec: str, path_column: Optional[str] = None) -> List[str]:
    """The entries of a text / CSV / TSV / Parquet list of image paths (see the module docstring),
    relative entries resolved against the list's folder.

    Raises:
        InputSpecError: the list cannot be read, lacks the path column, or is empty.
    """
    ext = _suffix(spec)
    uri = is_uri(spec) and _file_uri_path(spec) is None
    local = _file_uri_path(spec) if is_uri(spec) else spec
    try:
        if ext in TEXT_LIST_EXTS:
            if uri:
                fs, path = _filesystem(spec)
                with fs.open_input_stream(path) as f:
                    text = f.read().decode("utf-8")
            else:
                with open(local, "r", encoding="utf-8") as f:
                    text = f.read()
            entries = [ln.strip() for ln in text.splitlines()]
            entries = [e for e in entries if e and not e.startswith("#")]
        else:
            entries = _read_table_column(spec, local, uri, ext, path_column)
    except InputSpecError:
        raise
    except FileNotFoundError:
        raise InputSpecError(f"{spec}: list file not found") from None
    except UnicodeDecodeError as e:
        raise InputSpecError(f"{spec}: a text list must be UTF-8 ({e})") from None
    except (OSError, ValueError) as e:
        raise InputSpecError(f"{spec}: cannot read the list of image paths ({type(e).__name__}: {e})") from None
    if not entries:
        raise InputSpecError(f"{spec}: the list of image paths is empty")
    if uri:
        base = spec.rsplit("/", 1)[0]
        return [e if is_uri(e) else _join_uri(base, e) for e in entries]
    folder = os.path.dirname(local)
    prefix = "file://" if is_uri(spec) else ""
    return [e if is_uri(e) or os.path.isabs(e) else prefix + os.path.join(folder, e) for e in entries]


def _read_table_column(spec: str, local: Optional[str], uri: bool, ext: str,
                       path_column: Optional[str]) -> List[str]:
    from maskface.distributed import require_pyarrow

    require_pyarrow()
    import pyarrow as pa

    source = local
    fs = None
    if uri:
        fs, source = _filesystem(spec)
    if ext in CSV_LIST_EXTS:
        import pyarrow.csv as pacsv

        opts = pacsv.ParseOptions(delimiter="\t" if ext == ".tsv" else ",")
        # paths such as "0001" stay strings, not numbers
        names = [path_column] if path_column else list(DEFAULT_PATH_COLUMNS)
        conv = pacsv.ConvertOptions(strings_can_be_null=False, column_types={c: pa.string() for c in names})
        if fs is not None:
            with fs.open_input_stream(source) as f:
                table = pacsv.read_csv(f, parse_options=opts, convert_options=conv)
        else:
            table = pacsv.read_csv(source, parse_options=opts, convert_options=conv)
    else:
        import pyarrow.parquet as pq

        table = pq.read_table(source, filesystem=fs)
    names = list(table.column_names)
    wanted = [path_column] if path_column else list(DEFAULT_PATH_COLUMNS)
    col = next((c for c in wanted if c in names), None)
    if col is None:
        raise InputSpecError(f"{spec}: no column {' or '.join(repr(c) for c in wanted)} with the image paths "
                             f"(columns: {', '.join(names) or 'none'}); name it with --path-column")
    column = table.column(col)
    if table.num_rows == 0:
        return []
    if not (pa.types.is_string(column.type) or pa.types.is_large_string(column.type)):
        raise InputSpecError(f"{spec}: column {col!r} must hold paths (strings), got {column.type}")
    values = column.to_pylist()
    bad = next((i for i, v in enumerate(values) if v is None or not str(v).strip()), None)
    if bad is not None:
        raise InputSpecError(f"{spec}: row {bad + 1} of column {col!r} has no path")
    return [str(v).strip() for v in values]


def list_inputs(specs: Sequence[str], path_column: Optional[str] = None) -> ImageInputs:
    """Expand every ``--input`` (see the module docstring) into one :class:`ImageInputs`.

    Raises:
        InputSpecError: an input matches nothing usable (missing, an empty folder, a list without
            its path column...), naming it.
    """
    out = ImageInputs()
    seen: Dict[str, None] = {}
    for spec in specs:
        spec = str(spec)
        if _suffix(spec) in LIST_EXTS and not glob.has_magic(spec):
            for p in read_path_list(spec, path_column):
                out.add(p, seen)
        elif is_uri(spec):
            _list_uri(spec, out, seen)
        else:
            for p in _list_local(spec, out):
                out.add(p, seen)
    if out.videos:
        logger.warning("%d video file(s) left out (the distributed path does images; run tools/infer.py on "
                       "videos), e.g. %s", len(out.videos), out.videos[0])
    return out


# one image -------------------------------------------------------------------------------------------


def read_image(path: str, max_pixels: Optional[int] = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """``H x W x 3`` uint8 RGB of a local path or URI, decoded by
    :func:`~maskface.inference.image_io.load_image` (``tools/infer.py``'s rules).

    Raises:
        ImageLoadError: the file cannot be read or decoded; the message names ``path``.
    """
    path = str(path)
    if not is_uri(path):
        return load_image(path, max_pixels=max_pixels)
    local = _file_uri_path(path)
    if local is not None:
        return _renamed(lambda: load_image(local, max_pixels=max_pixels), local, path)
    try:
        fs, inner = _filesystem(path)
        import pyarrow.fs as pafs

        info = fs.get_file_info(inner)
        if info.type == pafs.FileType.NotFound:
            raise ImageLoadError(f"{path}: file not found")
        if info.type == pafs.FileType.Directory:
            raise ImageLoadError(f"{path}: is a folder, not a file")
        with fs.open_input_stream(inner) as f:
            data = f.read()
    except ImageLoadError:
        raise
    except InputSpecError as e:
        raise ImageLoadError(str(e)) from None
    except (OSError, ValueError) as e:
        raise ImageLoadError(f"{path}: cannot read ({type(e).__name__}: {e})") from None
    # The same decoder as local files, on a private temporary copy with the same suffix.
    fd, tmp = tempfile.mkstemp(prefix="maskface-", suffix=_suffix(path))
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        return _renamed(lambda: load_image(tmp, max_pixels=max_pixels), tmp, path)
    finally:
        os.unlink(tmp)


def _renamed(load, local: str, shown: str) -> np.ndarray:
    """Run ``load()``; an :class:`ImageLoadError` names ``shown`` instead of ``local``."""
    try:
        return load()
    except ImageLoadError as e:
        msg = str(e)
        if msg.startswith(local):
            msg = shown + msg[len(local):]
        err = type(e).__new__(type(e))
        err.__dict__.update(e.__dict__)
        err.args = (msg,)
        raise err from None


def decode_error_message(path: str, err: BaseException) -> str:
    """An :class:`ImageLoadError`'s message without its leading ``"<path>: "`` (records carry the
    file separately), as ``tools/infer.py`` writes it; other errors with their type."""
    msg = str(err)
    if isinstance(err, ImageLoadError):
        return msg[len(path) + 2:] if msg.startswith(path + ": ") else msg
    if isinstance(err, MemoryError):
        return "out of memory while decoding (image too large?)"
    return f"cannot decode: {type(err).__name__}: {msg}"
