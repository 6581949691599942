"""tools/infer_ray.py on a local Ray instance (2 CPUs) with the shipped maskface-lite model, over 20
small pictures drawn from scikit-image's public-domain astronaut photo plus broken files: the same
faces and errors as tools/infer.py, rows with their error, resume without duplicates (through a
CSV list of file:// URIs), a refused resume with another threshold, and the message when Ray is
missing. One Ray instance for the module and two jobs on it (each starts its model workers afresh)."""

import json
import os
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pyarrow.parquet as pq
import pytest
from PIL import Image
from tool_loader import load_tool

from maskface.inference.results import rle_to_mask

REPO = Path(__file__).resolve().parents[2]
infer = load_tool("infer")
infer_ray = load_tool("infer_ray")
BROKEN = {"broken.jpg": "not a recognised image format", "empty.png": "empty file (0 bytes)",
          "truncated.jpg": "corrupt or truncated image"}


@pytest.fixture(scope="module")
def ray_local():
    import ray

    # the workers import this checkout's maskface, as the tool's own local instance does
    paths = [str(REPO)] + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
    for attempt in range(3):  # on a starved machine Ray's daemons can miss their start-up deadlines
        try:
            ray.init(num_cpus=2, include_dashboard=False, logging_level="WARNING",
                     runtime_env={"env_vars": {"PYTHONPATH": os.pathsep.join(dict.fromkeys(paths))}})
            break
        except Exception:  # noqa: BLE001
            ray.shutdown()
            if attempt == 2:
                raise
    yield ray
    ray.shutdown()


def _face_pictures(folder: Path, n: int = 17):
    """``n`` astronaut pictures, 144-272 px, mirrored, rotated by EXIF, grey and RGBA among them."""
    from skimage import data

    astronaut = data.astronaut()
    (folder / "sub").mkdir(parents=True)
    for i in range(n):
        size = 144 + 8 * i
        img = cv2.resize(astronaut, (size, size), interpolation=cv2.INTER_AREA)
        img = img[:, ::-1] if i % 3 == 1 else img
        path = folder / ("sub" if i % 4 == 3 else "") / f"face{i:02d}.{'png' if i % 2 else 'jpg'}"
        pil = Image.fromarray(np.ascontiguousarray(img))
        if i == 5:
            pil = pil.convert("L")
        elif i == 7:
            pil = pil.convert("RGBA")
        if i == 2:  # stored sideways, EXIF orientation 6 turns it upright
            exif = Image.Exif()
            exif[0x0112] = 6
            pil.transpose(Image.Transpose.ROTATE_90).save(path, exif=exif)
        else:
            pil.save(path)


def _broken_files(folder: Path):
    (folder / "broken.jpg").write_bytes(b"\xff\xd8\xff this is no JPEG")
    (folder / "empty.png").write_bytes(b"")
    good = (folder / "face00.jpg").read_bytes()
    (folder / "truncated.jpg").write_bytes(good[: len(good) // 2])


@pytest.fixture(scope="module")
def pictures(tmp_path_factory):
    folder = tmp_path_factory.mktemp("ray_pictures")
    _face_pictures(folder)
    _broken_files(folder)
    return folder


def _by_file(results):
    return {r["file"]: r for r in results["images"]}


def _shard_rows(out: Path):
    parquet = pq.read_table(out / "shards" / "parquet").to_pylist()
    jsonl = [json.loads(line) for f in sorted((out / "shards" / "jsonl").glob("*.jsonl"))
             for line in f.read_text().splitlines()]
    return parquet, jsonl


def test_same_faces_as_infer_py_errors_as_rows_then_resume(ray_local, pictures, tmp_path, capsys):
    ref, out = tmp_path / "ref", tmp_path / "ray"
    assert infer.main(["--input", str(pictures), "--output", str(ref), "--no-vis", "--quiet", "--device", "cpu"]) == 1
    rc = infer_ray.main(["--input", str(pictures), "--output", str(out), "--workers", "2", "--batch-size", "4",
                         "--merge", "--quiet"])
    text = capsys.readouterr().out
    assert rc == 1, text  # the broken files failed, the job went on
    expected = json.loads((ref / "results.json").read_text())
    got = json.loads((out / "results.json").read_text())
    assert len(expected["images"]) == 17 and sorted(_by_file(got)) == sorted(_by_file(expected))
    assert sorted(got["errors"], key=lambda e: e["file"]) == sorted(expected["errors"], key=lambda e: e["file"])
    assert {Path(e["file"]).name for e in got["errors"]} == set(BROKEN)
    n_faces = 0
    for name, e in _by_file(expected).items():
        g = _by_file(got)[name]
        assert (g["width"], g["height"]) == (e["width"], e["height"]), name
        assert len(g["faces"]) == len(e["faces"]), name
        for fg, fe in zip(g["faces"], e["faces"]):
            assert np.abs(np.subtract(fg["box"], fe["box"])).max() <= 0.5, (name, fg["box"], fe["box"])
            assert (fg["gender"], fg["emotion"], fg["age_group"]) == (fe["gender"], fe["emotion"], fe["age_group"])
            mg, me = rle_to_mask(fg["mask"]), rle_to_mask(fe["mask"])
            assert (mg & me).sum() / max(1, (mg | me).sum()) > 0.98, name
            n_faces += 1
    assert n_faces >= 17  # the astronaut is found in every picture (her patch sometimes too)

    # the shards: one row per input in each format, the same records, errors as rows
    parquet, jsonl = _shard_rows(out)
    assert sorted(r["file"] for r in parquet) == sorted(r["file"] for r in jsonl) \
        == sorted(list(_by_file(expected)) + [e["file"] for e in expected["errors"]])
    rows = {r["file"]: r for r in parquet}
    for rec in jsonl:
        row = rows[rec["file"]]
        if "error" in rec:
            assert row["error"] == rec["error"] and row["faces"] is None
            assert BROKEN[Path(rec["file"]).name] in rec["error"]
        else:
            assert row["error"] is None
            assert json.loads(row["faces"]) == rec["faces"] == _by_file(got)[rec["file"]]["faces"]
    summary = json.loads((out / "summary.json").read_text())
    assert (summary["processed"], summary["images"], len(summary["errors"]), summary["exit_code"]) == (20, 17, 3, 1)
    assert summary["images_per_s"] > 0 and summary["workers"]
    assert sum(w["images"] for w in summary["workers"].values()) == 20
    assert all(w["rss_mb"] > 100 and w["threads"] == 1 for w in summary["workers"].values())
    assert (out / "config.yaml").read_text() == (ref / "config.yaml").read_text()
    assert "3 failed" in text and "broken.jpg" in text

    # resume from a CSV list of file:// URIs of the same files plus a new one: only the new picture and
    # the broken files are done again, and every input stays in the shards once
    new = pictures / "later" / "new.jpg"
    new.parent.mkdir(exist_ok=True)
    Image.fromarray(cv2.resize(np.asarray(Image.open(pictures / "face04.jpg")), (200, 200))).save(new)
    files = sorted(str(p) for p in pictures.rglob("*") if p.is_file())
    (tmp_path / "list.csv").write_text("path\n" + "".join(f"file://{f}\n" for f in files), encoding="utf-8")
    rc = infer_ray.main(["--input", str(tmp_path / "list.csv"), "--output", str(out), "--workers", "1", "--quiet"])
    text = capsys.readouterr().out
    assert rc == 1, text
    summary = json.loads((out / "summary.json").read_text())
    assert (summary["skipped"], summary["processed"], summary["images"], summary["retried_errors"]) == (17, 4, 1, 3)
    parquet, jsonl = _shard_rows(out)
    for rows in (parquet, jsonl):
        keys = [os.path.realpath(r["file"].replace("file://", "")) for r in rows]
        assert len(keys) == len(set(keys)) == 21  # 17 + the new one + 3 errors, no duplicates
        assert sum(1 for r in rows if r.get("error")) == 3
    assert f"file://{new}" in {r["file"] for r in jsonl}

    # another threshold into the same output: refused before any worker starts, nothing changed
    rc = infer_ray.main(["--input", str(pictures), "--output", str(out), "--score-thresh", "0.3", "--quiet"])
    err = capsys.readouterr().err
    assert rc == 2 and "holds results of another setting (config differs" in err and "--overwrite" in err
    assert [len(rows) for rows in _shard_rows(out)] == [21, 21]


def test_overwrite_removes_the_shards_before_starting(tmp_path):
    from maskface.distributed.ray_infer import RayInferenceJob
    from maskface.distributed.shards import ShardWriter

    w = ShardWriter(tmp_path, run_id="old")
    w.add({"file": "/x.jpg", "error": "empty file (0 bytes)"})
    w.close()
    (tmp_path / "summary.json").write_text("{}")
    RayInferenceJob([], tmp_path, overwrite=True)._check_output({})
    assert not list((tmp_path / "shards").rglob("part-*")) and not (tmp_path / "summary.json").exists()


def test_too_many_workers_for_the_cpus(ray_local, tmp_path):
    from maskface.distributed.ray_infer import JobConfigError, RayInferenceJob

    job = RayInferenceJob([], tmp_path, workers=3)
    with pytest.raises(JobConfigError, match=r"3 worker\(s\) x 1 CPU = 3 CPUs, the cluster has 2 \(lower "
                                             r"--cpus-per-worker, e.g. 0.67\)"):
        job._check_resources(started_here=True)  # a local instance this job started: refused
    assert job._check_resources(started_here=False)["CPU"] == 2  # a cluster: a warning (an autoscaler may add nodes)


def test_bad_arguments_and_inputs(tmp_path, capsys):
    assert infer_ray.main(["--input", str(tmp_path / "nothing"), "--output", str(tmp_path / "o")]) == 2
    assert "no such file or folder" in capsys.readouterr().err
    assert infer_ray.main(["--input", str(tmp_path), "--output", str(tmp_path / "o"), "--format", "csv"]) == 2
    assert "--format" in capsys.readouterr().err
    assert infer_ray.main(["--input", str(tmp_path), "--output", str(tmp_path / "o"), "--workers", "0"]) == 2


def test_missing_ray_says_how_to_install(tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` raises ImportError
    assert infer_ray.main(["--input", str(tmp_path), "--output", str(tmp_path / "o")]) == 2
    assert "pip install -e '.[ray]'" in capsys.readouterr().err


def test_nothing_else_imports_ray():
    """Only maskface/distributed mentions ray, and importing it (and maskface) does not load ray."""
    offenders = [str(p.relative_to(REPO)) for p in (REPO / "maskface").rglob("*.py")
                 if "distributed" not in p.parts
                 and any(line.strip().startswith(("import ray", "from ray")) for line in p.read_text().splitlines())]
    assert offenders == []
    code = ("import sys, maskface, maskface.distributed.ray_infer, maskface.inference.runner; "
            "print('ray' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, check=True)
    assert out.stdout.strip() == "False"
