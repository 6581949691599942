"""REST API tests through Flask's test client, with a tiny random-weight model."""

from __future__ import annotations

import base64
import json
import threading

import cv2
import numpy as np
import pytest

from maskface.inference.results import validate_face_dict

# --- images ------------------------------------------------------------------------------------


def test_image_returns_results_json_schema(client, post, astronaut_jpeg):
    r = post(client, astronaut_jpeg, "astronaut.jpg", score_thresh=0.0)
    assert r.status_code == 200, r.get_json()
    assert r.mimetype == "application/json"
    doc = r.get_json()
    assert list(doc) == ["model", "images", "errors"]  # no visualization unless ?vis=1
    assert doc["errors"] == []
    assert doc["model"]["detector_weights"] == "tiny_detector.pth"  # file name only, no server path
    (img,) = doc["images"]
    assert (img["file"], img["width"], img["height"], img["frame"]) == ("astronaut.jpg", 512, 512, None)
    assert img["faces"], "SCORE_THRESH 0: the random model returns faces"
    for i, face in enumerate(img["faces"]):
        assert validate_face_dict(face, f"face {i}") == []
        assert face["mask"]["size"] == [512, 512]
        assert face["age"] is not None and face["gender"] in ("female", "male")


def test_same_document_as_tools_infer(client, post, astronaut_jpeg, predictor, tmp_path):
    """The API answers what the command line (InferenceRunner) writes for the same picture."""
    from maskface.inference.runner import InferenceRunner

    path = tmp_path / "astronaut.jpg"
    path.write_bytes(astronaut_jpeg)
    InferenceRunner(predictor, str(tmp_path / "out"), vis=False, progress=False).run([(str(path), "image")])
    cli = json.loads((tmp_path / "out" / "results.json").read_text())
    api = post(client, astronaut_jpeg, "astronaut.jpg").get_json()
    assert set(api) == set(cli)
    assert set(api["model"]) == set(cli["model"])
    (a,), (c,) = api["images"], cli["images"]
    assert a.keys() == c.keys()
    assert [f["box"] for f in a["faces"]] == [f["box"] for f in c["faces"]]
    assert a["faces"] == c["faces"]


def test_vis_adds_annotated_jpeg(client, post, astronaut_jpeg, astronaut_rgb):
    doc = post(client, astronaut_jpeg, query="?vis=1").get_json()
    vis = doc["visualization"]
    assert vis["media_type"] == "image/jpeg" and vis["frame"] is None
    img = cv2.imdecode(np.frombuffer(base64.b64decode(vis["data"]), np.uint8), cv2.IMREAD_COLOR)
    assert img.shape == (512, 512, 3)
    # masks / boxes were drawn: clearly different from the plain picture
    assert np.abs(img.astype(int) - astronaut_rgb[:, :, ::-1].astype(int)).mean() > 3


def test_anonymize_returns_the_image_with_faces_covered(client, post, astronaut_jpeg):
    r = post(client, astronaut_jpeg, score_thresh=0.0, anonymize="fill", anonymize_margin=0)
    assert r.status_code == 200, r.get_json()
    doc = r.get_json()
    anon = doc["anonymized"]
    assert (anon["media_type"], anon["method"], anon["region"]) == ("image/jpeg", "fill", "mask")
    out = cv2.imdecode(np.frombuffer(base64.b64decode(anon["data"]), np.uint8), cv2.IMREAD_COLOR)
    sent = cv2.imdecode(np.frombuffer(astronaut_jpeg, np.uint8), cv2.IMREAD_COLOR)
    assert out.shape == (512, 512, 3)  # full size, not the shrunk preview
    from maskface.inference.results import rle_to_mask

    union = np.any([rle_to_mask(f["mask"]) for f in doc["images"][0]["faces"]], axis=0)
    assert union.sum() > 100
    core = cv2.erode(union.astype(np.uint8), np.ones((9, 9), np.uint8)) > 0  # away from JPEG ringing at the edge
    far = cv2.dilate(union.astype(np.uint8), np.ones((9, 9), np.uint8)) == 0
    assert out[core].mean() < 8  # filled black
    assert np.abs(out[far].astype(int) - sent[far].astype(int)).mean() < 3  # the rest as sent (JPEG re-encoding)
    # box mode covers at least the mask
    doc = post(client, astronaut_jpeg, score_thresh=0.0, anonymize="pixelate", anonymize_region="box").get_json()
    assert doc["anonymized"]["region"] == "box" and "visualization" not in doc


def test_anonymize_video_returns_an_mp4(client, post, write_video, tmp_path):
    data = open(write_video(tmp_path / "clip.avi", 5), "rb").read()
    doc = post(client, data, "clip.avi", anonymize="blur", every_n_frames=2).get_json()
    anon = doc["anonymized"]
    assert anon["media_type"] == "video/mp4"
    path = tmp_path / "anon.mp4"
    path.write_bytes(base64.b64decode(anon["data"]))
    cap = cv2.VideoCapture(str(path))
    frames = []
    while True:
        ok, frame = cap.read()
        if not ok:
            break
        frames.append(frame)
    assert len(frames) == 5 and frames[0].shape == (96, 96, 3)  # every frame, processed or not


def test_content_decides_not_the_name(client, post, astronaut_jpeg):
    r = post(client, astronaut_jpeg, "notes.txt")
    assert r.status_code == 200
    assert r.get_json()["images"][0]["file"] == "notes.txt"


@pytest.mark.parametrize("fmt", [".png", ".bmp", ".webp", ".tiff"])
def test_other_image_formats(client, post, astronaut_rgb, fmt):
    ok, buf = cv2.imencode(fmt, astronaut_rgb[::4, ::4, ::-1].copy())
    assert ok
    r = post(client, buf.tobytes(), "small" + fmt)
    assert r.status_code == 200, r.get_json()
    assert r.get_json()["images"][0]["width"] == 128


def test_client_path_is_not_used(client, post, astronaut_jpeg):
    r = post(client, astronaut_jpeg, "../../etc/passwd.jpg")
    assert r.status_code == 200
    assert r.get_json()["images"][0]["file"] == "passwd.jpg"


# --- videos -------------------------------------------------------------------------------------


@pytest.mark.parametrize("name,fourcc", [("clip.avi", "MJPG"), ("clip.mp4", "mp4v")])
def test_video(client, post, write_video, tmp_path, name, fourcc):
    data = open(write_video(tmp_path / name, 5, fourcc=fourcc), "rb").read()
    r = post(client, data, name, query="?vis=1")
    assert r.status_code == 200, r.get_json()
    doc = r.get_json()
    assert [i["frame"] for i in doc["images"]] == [0, 1, 2, 3, 4]
    assert {i["file"] for i in doc["images"]} == {name}
    assert all(i["width"] == 96 for i in doc["images"])
    assert doc["visualization"]["frame"] in range(5)
    faces = [f for i in doc["images"] for f in i["faces"]]
    assert all(validate_face_dict(f) == [] for f in faces)


def test_video_every_n_frames(client, post, write_video, tmp_path):
    data = open(write_video(tmp_path / "clip.avi", 7), "rb").read()
    doc = post(client, data, "clip.avi", every_n_frames=3).get_json()
    assert [i["frame"] for i in doc["images"]] == [0, 3, 6]


def test_video_over_frame_cap_is_refused(make_app, predictor, post, write_video, tmp_path):
    app, _ = make_app(predictor, max_video_frames=8)
    data = open(write_video(tmp_path / "long.avi", 9, size=32), "rb").read()
    r = post(app.test_client(), data, "long.avi")
    assert r.status_code == 413
    assert r.get_json()["error"] == "video too long"
    assert "8" in r.get_json()["detail"]
    ok = post(app.test_client(), open(write_video(tmp_path / "ok.avi", 8, size=32), "rb").read(), "ok.avi")
    assert ok.status_code == 200 and len(ok.get_json()["images"]) == 8


def test_corrupt_video_is_422(client, post, write_video, tmp_path):
    data = open(write_video(tmp_path / "clip.avi", 3), "rb").read()
    r = post(client, data[:300], "clip.avi")  # the RIFF/AVI header survives, the stream does not
    assert r.status_code == 422, r.get_json()
    assert set(r.get_json()) == {"error", "detail"}


# --- bad uploads --------------------------------------------------------------------------------


def test_empty_file_is_400(client, post):
    r = post(client, b"", "empty.jpg")
    assert r.status_code == 400
    assert r.get_json()["error"] == "empty file"


def test_text_renamed_jpg_is_415(client, post):
    r = post(client, b"just some text, honestly\n" * 10, "photo.jpg")
    assert r.status_code == 415
    body = r.get_json()
    assert body["error"] == "unsupported file type" and "JPEG" in body["detail"]


def test_truncated_jpeg_is_422(client, post, astronaut_jpeg):
    r = post(client, astronaut_jpeg[:1500], "cut.jpg")
    assert r.status_code == 422
    assert "JPEG" in r.get_json()["error"]


def test_missing_file_field_is_400(client):
    r = client.post("/api/v1/analyze", data={"score_thresh": "0.5"}, content_type="multipart/form-data")
    assert r.status_code == 400
    assert r.get_json()["error"] == "no file"


@pytest.mark.parametrize("size", [int(1.5 * (1 << 20)), 3 << 20])  # under / over Flask's body cap
def test_oversize_upload_is_413(make_app, predictor, post, astronaut_jpeg, size):
    app, _ = make_app(predictor, max_upload_bytes=1 << 20)
    data = astronaut_jpeg + b"\0" * (size - len(astronaut_jpeg))
    r = post(app.test_client(), data, "big.jpg")
    assert r.status_code == 413
    assert r.get_json() == {"error": "upload too large", "detail": "the limit is 1 MB"}


@pytest.mark.parametrize("field,value", [
    ("score_thresh", "abc"), ("score_thresh", "1.5"), ("score_thresh", "nan"), ("mask_thresh", "-0.1"),
    ("max_size", "10"), ("max_size", "100000"), ("max_size", "64.5"), ("every_n_frames", "0"),
])
def test_invalid_parameter_is_400(client, post, astronaut_jpeg, field, value):
    r = post(client, astronaut_jpeg, **{field: value})
    assert r.status_code == 400
    body = r.get_json()
    assert body["error"] == "invalid parameter"
    assert field in body["detail"] and repr(value) in body["detail"]


@pytest.mark.parametrize("fields, message", [
    ({"anonymize": "smudge"}, "anonymize must be one of blur, pixelate, fill, got 'smudge'"),
    ({"anonymize": "blur", "anonymize_region": "circle"}, "anonymize_region must be one of mask, box, ellipse"),
    ({"anonymize": "blur", "anonymize_margin": "-1"}, "anonymize_margin must be in [0, 1000], got '-1'"),
    ({"anonymize_margin": "4"}, "anonymize_region and anonymize_margin need anonymize (blur | pixelate | fill)"),
])
def test_invalid_anonymize_option_is_400(client, post, astronaut_jpeg, fields, message):
    r = post(client, astronaut_jpeg, **fields)
    assert r.status_code == 400
    assert r.get_json()["error"] == "invalid parameter" and message in r.get_json()["detail"]


def test_invalid_vis_is_400(client, post, astronaut_jpeg):
    assert post(client, astronaut_jpeg, query="?vis=yes please").status_code == 400


def test_request_settings_apply_and_are_restored(client, post, astronaut_jpeg, predictor):
    before = (predictor.score_thresh, predictor.mask_thresh, predictor.max_size)
    base = post(client, astronaut_jpeg).get_json()["images"][0]["faces"]
    cut = sorted(f["score"] for f in base)[len(base) // 2]
    strict = post(client, astronaut_jpeg, score_thresh=cut).get_json()["images"][0]["faces"]
    assert 0 < len(strict) < len(base) and all(f["score"] >= cut for f in strict)
    assert (predictor.score_thresh, predictor.mask_thresh, predictor.max_size) == before
    again = post(client, astronaut_jpeg).get_json()["images"][0]["faces"]
    assert again == base


# --- limits: time-out, queue, concurrency -------------------------------------------------------


def test_timeout_is_504_and_cleans_up(make_app, predictor, recorder, post, astronaut_jpeg):
    slow = recorder(predictor, delay=1.0)
    app, tmp = make_app(slow, timeout_s=0.3)
    results = {}

    def call(key):
        results[key] = post(app.test_client(), astronaut_jpeg)

    # the first job is running when its request gives up; the second times out while still queued
    threads = [threading.Thread(target=call, args=(k,)) for k in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for r in results.values():
        assert r.status_code == 504
        assert r.get_json()["error"] == "analysis timed out"
    assert app.extensions["maskface"].worker.wait_idle(timeout=10)
    assert len(slow.calls) == 1  # the queued job never ran
    assert list(tmp.iterdir()) == []


def test_queue_full_is_503(make_app, predictor, recorder, post, astronaut_jpeg):
    slow = recorder(predictor, delay=0.6)
    app, _ = make_app(slow, max_pending=1)
    codes = []
    started = threading.Event()

    def first():
        started.set()
        codes.append(post(app.test_client(), astronaut_jpeg).status_code)

    t = threading.Thread(target=first)
    t.start()
    started.wait()
    worker = app.extensions["maskface"].worker
    for _ in range(200):  # until the first request holds the only slot
        if worker.pending:
            break
        threading.Event().wait(0.01)
    r = post(app.test_client(), astronaut_jpeg)
    t.join()
    assert r.status_code == 503 and r.headers["Retry-After"]
    assert codes == [200]


def test_concurrent_requests_succeed_and_run_serially(make_app, predictor, recorder, post, astronaut_jpeg):
    spy = recorder(predictor, delay=0.05)
    app, tmp = make_app(spy)
    n = 4
    results = [None] * n
    barrier = threading.Barrier(n)

    def call(i):
        c = app.test_client()
        barrier.wait()
        results[i] = post(c, astronaut_jpeg, f"p{i}.jpg")

    threads = [threading.Thread(target=call, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert [r.status_code for r in results] == [200] * n
    assert sorted(r.get_json()["images"][0]["file"] for r in results) == [f"p{i}.jpg" for i in range(n)]
    faces = [r.get_json()["images"][0]["faces"] for r in results]
    assert all(f == faces[0] for f in faces)  # same picture, same answer: no cross-talk
    calls = sorted(spy.calls, key=lambda c: c[1])
    assert len(calls) == n
    assert len({c[0] for c in calls}) == 1, "model called from more than one thread"
    for prev, nxt in zip(calls, calls[1:]):
        assert nxt[1] >= prev[2], "two model calls overlapped"
    assert list(tmp.iterdir()) == []


# --- health, spec, pages ------------------------------------------------------------------------


def test_health(client):
    import maskface

    h = client.get("/api/v1/health").get_json()
    assert h["status"] == "ok" and h["device"] == "cpu" and h["version"] == maskface.__version__
    assert h["model"] == "tiny_detector" and h["attributes"] is True
    assert h["limits"]["max_upload_bytes"] == 2 << 20
    assert h["limits"]["params"]["max_size"] == [32, 192]


def test_openapi_matches_responses(client, post, astronaut_jpeg):
    spec = client.get("/api/v1/openapi.json").get_json()
    assert spec["openapi"].startswith("3.")
    assert {"/api/v1/analyze", "/api/v1/health"} <= set(spec["paths"])
    schemas = spec["components"]["schemas"]
    doc = post(client, astronaut_jpeg, query="?vis=1").get_json()
    assert set(schemas["Results"]["required"]) <= set(doc)
    assert set(doc) <= set(schemas["Results"]["properties"])
    assert set(schemas["Image"]["required"]) == set(doc["images"][0])
    assert set(schemas["Face"]["required"]) == set(doc["images"][0]["faces"][0])
    assert set(schemas["Health"]["required"]) <= set(client.get("/api/v1/health").get_json())
    fields = spec["paths"]["/api/v1/analyze"]["post"]["requestBody"]["content"]["multipart/form-data"]
    props = fields["schema"]["properties"]
    assert set(props) == {"file", "score_thresh", "mask_thresh", "max_size", "every_n_frames", "anonymize",
                          "anonymize_region", "anonymize_margin"}
    assert props["anonymize"]["enum"] == ["blur", "pixelate", "fill"]
    anon = post(client, astronaut_jpeg, anonymize="blur").get_json()["anonymized"]
    assert set(anon) <= set(schemas["Results"]["properties"]["anonymized"]["properties"])
    # the ranges published are the running server's (tiny model: MAX_SIZE 192; frame cap 20)
    assert (props["max_size"]["minimum"], props["max_size"]["maximum"]) == (32, 192)
    assert props["every_n_frames"]["maximum"] == 20


@pytest.mark.parametrize("path", ["/", "/api/docs"])
def test_pages_use_only_local_assets(client, path):
    import re

    r = client.get(path)
    assert r.status_code == 200 and r.mimetype == "text/html"
    html = r.get_data(as_text=True)
    refs = re.findall(r'(?:src|href)="([^"]+)"', html)
    assert refs, "page references no assets?"
    assert all(ref.startswith("/") for ref in refs), refs
    for ref in refs:
        assert client.get(ref).status_code == 200, ref
    assert "default-src 'self'" in r.headers["Content-Security-Policy"]


def test_unknown_api_route_is_json_404(client):
    r = client.get("/api/v1/nothing")
    assert r.status_code == 404 and r.get_json()["error"] == "not found"
    r = client.get("/api/v1/analyze")
    assert r.status_code == 405 and "error" in r.get_json()


# --- issue 18: pixel cap before decoding, cancelled time-outs -----------------------------------


@pytest.mark.parametrize("fmt", ["png", "jpeg", "bmp", "tiff", "webp"])
def test_200_megapixel_image_is_413_before_decoding(make_app, predictor, recorder, post, fmt, monkeypatch):
    from PIL import ImageFile

    from maskface.inference.testing import oversized_image_bytes

    def decoded(*a, **kw):
        raise AssertionError("pixels were decoded before the size check")

    monkeypatch.setattr(ImageFile.ImageFile, "load", decoded)
    monkeypatch.setattr(cv2, "imdecode", decoded)
    spy = recorder(predictor)
    app, _ = make_app(spy)
    r = post(app.test_client(), oversized_image_bytes(fmt, 14142, 14143), f"bomb.{fmt}")
    assert r.status_code == 413
    assert r.get_json() == {"error": "image too large", "detail": "image too large: 200 megapixels; the limit is "
                                                                  "100 megapixels; send a smaller image"}
    assert spy.calls == [] and app.extensions["maskface"].worker.pending == 0  # never queued


def test_pixel_cap_is_configurable(make_app, predictor, post, astronaut_jpeg, write_video, tmp_path):
    app, _ = make_app(predictor, max_pixels=512 * 512 - 1)
    r = post(app.test_client(), astronaut_jpeg, "astronaut.jpg")
    assert r.status_code == 413 and "512 x 512 px" in r.get_json()["detail"]
    assert app.test_client().get("/api/v1/health").get_json()["limits"]["max_pixels"] == 512 * 512 - 1
    small, _ = make_app(predictor, max_pixels=96 * 96 - 1)
    clip = open(write_video(tmp_path / "clip.avi", 3), "rb").read()  # 96 x 96 frames
    r = post(small.test_client(), clip, "clip.avi")
    assert r.status_code == 413 and r.get_json()["error"] == "video frames too large"
    assert "96 x 96 px" in r.get_json()["detail"]


def test_timed_out_image_job_is_cancelled(make_app, predictor, recorder, post, astronaut_jpeg, monkeypatch):
    """The request gives up while its image decodes: the job stops there, the model never runs."""
    import time

    from maskface.inference import image_io

    real_load = image_io.load_image

    def slow_load(*a, **kw):
        time.sleep(1.0)
        return real_load(*a, **kw)

    monkeypatch.setattr(image_io, "load_image", slow_load)
    spy = recorder(predictor)
    app, tmp = make_app(spy, timeout_s=0.3)
    r = post(app.test_client(), astronaut_jpeg)
    assert r.status_code == 504
    assert app.extensions["maskface"].worker.wait_idle(timeout=10)
    assert spy.calls == []  # cancelled after decoding: the single worker is free for the next request
    assert list(tmp.iterdir()) == []
