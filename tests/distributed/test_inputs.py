"""maskface.distributed.inputs: folders, globs, text / CSV / Parquet lists, file:// URIs, duplicates,
videos left out, and read_image's error messages naming the URI. No Ray needed (pyarrow is)."""

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from PIL import Image

from maskface.distributed.inputs import (
    _uri_prefix,
    is_uri,
    list_inputs,
    path_key,
    read_image,
    read_path_list,
)
from maskface.inference.image_io import ImageLoadError, InputSpecError, load_image


def _img(path, seed=0, size=(12, 16)):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.random.default_rng(seed).integers(0, 255, (*size, 3), dtype=np.uint8)).save(path)
    return str(path)


@pytest.fixture
def folder(tmp_path):
    root = tmp_path / "photos"
    a = _img(root / "a.png", 0)
    b = _img(root / "sub" / "b.jpg", 1)
    _img(root / ".hidden" / "h.png", 2)
    (root / "clip.mp4").write_bytes(b"not really a video")
    (root / "notes.md").write_text("not an image")
    return root, a, b


def test_folder_glob_and_videos(folder):
    root, a, b = folder
    got = list_inputs([str(root)])
    assert got.paths == [a, b]  # tools/infer.py's order; hidden folders and other files left out
    assert got.videos == [str(root / "clip.mp4")]
    assert list_inputs([str(root / "**" / "*.jpg")]).paths == [b]
    with pytest.raises(InputSpecError, match="no such file or folder"):
        list_inputs([str(root / "missing")])


def test_text_list_relative_to_the_list_with_comments_and_duplicates(folder, tmp_path):
    root, a, b = folder
    lst = root / "list.txt"
    lst.write_text("# images to do\na.png\n\nsub/b.jpg\n./a.png\n" + a + "\n", encoding="utf-8")
    got = list_inputs([str(lst)])
    assert got.paths == [str(root / "a.png"), str(root / "sub/b.jpg")]
    assert got.duplicates == 2  # ./a.png and the absolute path are the same file
    assert path_key("file://" + a) == path_key(a)


def test_csv_and_parquet_lists(folder, tmp_path):
    root, a, b = folder
    csv = tmp_path / "list.csv"
    csv.write_text("id,path\n1," + a + "\n2," + b + "\n", encoding="utf-8")
    assert read_path_list(str(csv)) == [a, b]
    pq.write_table(pa.table({"uri": ["file://" + a, b]}), tmp_path / "list.parquet")
    assert read_path_list(str(tmp_path / "list.parquet"), path_column="uri") == ["file://" + a, b]
    # a Parquet list read through its file:// URI: relative entries resolve against its folder
    pq.write_table(pa.table({"file": ["photos/a.png"]}), tmp_path / "rel.parquet")
    assert read_path_list("file://" + str(tmp_path / "rel.parquet")) == ["file://" + a]


@pytest.mark.parametrize("content, message", [
    ("name,size\nx.png,3\n", "no column 'path' or 'file'.*columns: name, size.*--path-column"),
    ("path\n\n", "empty"),
])
def test_bad_csv_lists_name_the_file_and_the_problem(tmp_path, content, message):
    csv = tmp_path / "bad.csv"
    csv.write_text(content, encoding="utf-8")
    with pytest.raises(InputSpecError, match=message) as e:
        list_inputs([str(csv)])
    assert str(csv) in str(e.value)


def test_missing_list_and_wrong_column_type(tmp_path):
    with pytest.raises(InputSpecError, match="list file not found"):
        list_inputs([str(tmp_path / "nope.txt")])
    pq.write_table(pa.table({"path": [1, 2]}), tmp_path / "ints.parquet")
    with pytest.raises(InputSpecError, match="must hold paths"):
        list_inputs([str(tmp_path / "ints.parquet")])


def test_file_uri_folder_and_read_image(folder):
    root, a, b = folder
    got = list_inputs(["file://" + str(root)])
    assert got.paths == ["file://" + a, "file://" + b]
    assert np.array_equal(read_image("file://" + a), load_image(a))
    (root / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    with pytest.raises(ImageLoadError) as e:
        read_image("file://" + str(root / "broken.png"))
    assert str(e.value).startswith("file://" + str(root / "broken.png") + ": ")


def test_uri_helpers():
    assert is_uri("s3://bucket/a.jpg") and is_uri("file:///x") and not is_uri("/data/a.jpg")
    assert not is_uri("C:/photos/a.jpg")
    assert _uri_prefix("s3://bucket/photos", "bucket/photos") == "s3://"
    assert _uri_prefix("hdfs://namenode:8020/photos", "/photos") == "hdfs://namenode:8020"
