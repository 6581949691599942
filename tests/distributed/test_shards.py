"""maskface.distributed.shards: Parquet and JSON-lines shards hold the same records, resume drops
failed rows (each input stays once), unreadable shards are set aside; PredictorActor's fallback
from a failing batch to image by image. No Ray needed."""

import json

import numpy as np
import pyarrow.parquet as pq

from maskface.distributed.inputs import path_key
from maskface.distributed.ray_infer import PredictorActor
from maskface.distributed.shards import SHARD_DIR, ShardWriter, iter_records, prepare_resume, write_merged
from maskface.inference.results import Face, ImageResult


def _image_record(name, n_faces=1):
    mask = np.zeros((8, 10), bool)
    mask[2:5, 3:7] = True
    faces = [Face(box=[1, 2, 6.5, 7.25], score=0.9, mask=mask) for _ in range(n_faces)]
    return ImageResult(file=name, width=10, height=8, faces=faces).to_dict()


def test_writer_formats_hold_the_same_records(tmp_path):
    recs = [_image_record("/d/a.jpg"), {"file": "/d/b.jpg", "error": "empty file (0 bytes)"},
            _image_record("/d/c.jpg", 2)]
    w = ShardWriter(tmp_path, shard_rows=2, run_id="r1")
    for r in recs:
        w.add(r)
    w.close()
    assert w.written == ["part-r1-00000", "part-r1-00001"] and w.rows == 3
    folder = tmp_path / SHARD_DIR
    lines = [json.loads(x) for f in sorted((folder / "jsonl").glob("*.jsonl")) for x in f.read_text().splitlines()]
    assert lines == recs
    table = pq.read_table(folder / "parquet")  # the whole folder reads as one table
    assert sorted(table.column("file").to_pylist()) == ["/d/a.jpg", "/d/b.jpg", "/d/c.jpg"]
    rows = {r["file"]: r for r in table.to_pylist()}
    assert rows["/d/b.jpg"]["error"] == "empty file (0 bytes)" and rows["/d/b.jpg"]["faces"] is None
    assert json.loads(rows["/d/c.jpg"]["faces"]) == recs[2]["faces"] and rows["/d/c.jpg"]["num_faces"] == 2
    assert rows["/d/a.jpg"]["error"] is None and rows["/d/a.jpg"]["width"] == 10
    assert sorted(iter_records(tmp_path), key=lambda r: r["file"]) == recs


def test_resume_drops_failed_rows_and_sets_aside_unreadable_shards(tmp_path):
    w = ShardWriter(tmp_path, run_id="r1")
    for r in (_image_record("/d/a.jpg"), {"file": "/d/b.jpg", "error": "corrupt"}):
        w.add(r)
    w.flush()
    w.add({"file": "/d/c.jpg", "error": "corrupt"})  # a shard of failures only
    w.flush()
    w.add(_image_record("/d/e.jpg"))
    w.close()
    folder = tmp_path / SHARD_DIR
    (folder / "parquet" / "part-r1-00002.parquet").write_bytes(b"PAR1 cut short")  # its JSON lines are used
    state = prepare_resume(tmp_path, path_key)
    assert state.done == {path_key("/d/a.jpg"), path_key("/d/e.jpg")}
    assert (state.images, state.faces, state.dropped_errors) == (2, 2, 2)
    assert state.set_aside == [str(folder / "unreadable" / "part-r1-00002.parquet")]
    # failed rows are gone from both formats; the all-failed shard is gone
    assert sorted(p.name for p in (folder / "parquet").iterdir()) == ["part-r1-00000.parquet"]
    assert sorted(p.name for p in (folder / "jsonl").iterdir()) == ["part-r1-00000.jsonl", "part-r1-00002.jsonl"]
    assert pq.read_table(folder / "parquet").column("file").to_pylist() == ["/d/a.jpg"]
    assert [json.loads(x)["file"] for x in (folder / "jsonl" / "part-r1-00000.jsonl").read_text().splitlines()] \
        == ["/d/a.jpg"]
    assert sorted(r["file"] for r in iter_records(tmp_path)) == ["/d/a.jpg", "/d/e.jpg"]
    merged = write_merged(tmp_path, model={"name": "m"})
    data = json.loads(open(merged["results"]).read())
    assert [r["file"] for r in data["images"]] == ["/d/a.jpg", "/d/e.jpg"] and data["errors"] == []


class _FailingPredictor:
    """predict_results fails on any batch holding the image named bad.jpg."""

    def __init__(self):
        self.calls = []

    def predict_results(self, images, color, files):
        self.calls.append(list(files))
        if any(f.endswith("bad.jpg") for f in files):
            raise RuntimeError("boom")
        return [ImageResult(file=f, width=a.shape[1], height=a.shape[0]) for f, a in zip(files, images)]


def test_actor_retries_a_failed_batch_image_by_image():
    actor = PredictorActor.__new__(PredictorActor)  # its model is not needed here
    actor.predictor, actor.worker, actor.device, actor.load_s, actor.threads = _FailingPredictor(), "w:1", "cpu", 0.1, 1
    images = np.empty(3, dtype=object)
    for i, shape in enumerate([(4, 5, 3), (6, 7, 3), (1, 1, 3)]):
        images[i] = np.zeros(shape, np.uint8)
    batch = {"file": np.array(["a.jpg", "bad.jpg", "c.png"], dtype=object), "image": images,
             "error": np.array(["", "", "empty file (0 bytes)"], dtype=object)}
    out = actor(batch)
    recs = [json.loads(r) for r in out["record"]]
    assert recs[0] == {"file": "a.jpg", "width": 5, "height": 4, "frame": None, "faces": []}
    assert recs[1] == {"file": "bad.jpg", "error": "prediction failed: RuntimeError: boom"}
    assert recs[2] == {"file": "c.png", "error": "empty file (0 bytes)"}  # a decode error is kept, not predicted
    assert actor.predictor.calls == [["a.jpg", "bad.jpg"], ["a.jpg"], ["bad.jpg"]]
    assert list(out["worker"]) == ["w:1"] * 3 and (out["rss_mb"] > 0).all()
