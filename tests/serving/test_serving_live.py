"""The camera WebSocket (maskface.serving.live) with a real ``websockets`` client on 127.0.0.1:
every frame is answered once (result or dropped: nothing queues), answers carry boxes, RLE masks,
outlines and labels, anonymised frames come first, bad input is answered with an error and the
session goes on; cross-origin and surplus sessions are refused at the handshake."""

from __future__ import annotations

import json
import time

import cv2
import pytest

from maskface.inference.testing import moving_faces_frames, oversized_image_bytes
from maskface.serving.live import LiveServer, decode_frame, frame_message, mask_outline

websockets_client = pytest.importorskip("websockets.sync.client")


@pytest.fixture
def live(make_app, recorder, predictor):
    """A LiveServer over an app whose predictor is slowed to 0.15 s per call (a slow model)."""
    app, _ = make_app(recorder(predictor, delay=0.15))
    server = LiveServer(app.extensions["maskface"], port=0, max_sessions=1, attributes_every=3).start()
    yield server
    server.shutdown()


@pytest.fixture(scope="module")
def jpegs():
    return [cv2.imencode(".jpg", f)[1].tobytes() for f in moving_faces_frames(6, width=160, height=120)]


def _connect(server, **kw):
    return websockets_client.connect(f"ws://127.0.0.1:{server.port}/live", open_timeout=10, **kw)


def _answers(ws, n):
    texts, binaries = [], []
    while len(texts) < n:
        msg = ws.recv(timeout=30)
        (binaries if isinstance(msg, bytes) else texts).append(msg if isinstance(msg, bytes) else json.loads(msg))
    return texts, binaries


def test_every_frame_is_answered_once_and_a_burst_is_dropped_not_queued(live, jpegs):
    with _connect(live) as ws:
        for i, jpeg in enumerate(jpegs, 1):  # six frames at once, the model takes 0.15 s each
            ws.send(frame_message(i, jpeg))
        texts, _ = _answers(ws, len(jpegs))
    assert sorted(m["id"] for m in texts) == list(range(1, 7))
    results = [m for m in texts if m["type"] == "result"]
    dropped = [m for m in texts if m["type"] == "dropped"]
    assert len(dropped) >= 3 and len(results) + len(dropped) == 6
    assert results[-1]["id"] == 6  # the newest frame is always analysed
    face = results[0]["faces"][0]
    assert results[0]["width"] == 160 and results[0]["height"] == 120 and len(results[0]["faces"]) == 3
    assert face["mask"]["size"] == [120, 160] and face["label"] and isinstance(face["outline"], list)
    assert face["age"] is not None and face["gender"] in ("female", "male")


def test_anonymised_frame_precedes_its_result_and_bad_input_is_answered(live, jpegs):
    with _connect(live) as ws:
        ws.send(json.dumps({"type": "options", "anonymize": "sparkle"}))
        (err,), _ = _answers(ws, 1)
        assert err["type"] == "error" and "anonymize must be one of blur, pixelate, fill" in err["detail"]
        ws.send(json.dumps({"type": "options", "anonymize": "fill", "anonymize_region": "box"}))
        ws.send(frame_message(7, jpegs[0]))
        (res,), (anon,) = _answers(ws, 1)
        assert res["type"] == "result" and res["anonymized"] and anon[:4] == b"\x00\x00\x00\x07"
        frame = decode_frame(anon[4:])
        assert frame.shape == (120, 160, 3)
        texts = []
        for i, data in ((8, b"not a jpeg"), (9, oversized_image_bytes("jpeg", 20000, 20000))):
            ws.send(frame_message(i, data))  # one at a time: a second frame at once would replace the first
            texts += _answers(ws, 1)[0]
        assert [m["error"] for m in texts] == ["invalid frame", "invalid frame"]
        assert "must be a JPEG" in texts[0]["detail"] and "frame too large: 20000 x 20000" in texts[1]["detail"]
        ws.send(frame_message(10, jpegs[1]))  # the session goes on
        (res,), _ = _answers(ws, 1)
        assert res["type"] == "result" and res["id"] == 10


def test_handshake_refusals(live):
    from websockets.exceptions import InvalidStatus

    with pytest.raises(InvalidStatus) as e:
        with _connect(live, origin="http://evil.example"):
            pass
    assert e.value.response.status_code == 403
    with _connect(live, origin=f"http://127.0.0.1:{live.port - 1}") as ws:  # the page's own host: fine
        ws.ping().wait(5)
        # a session counts once its handler thread has started (the ping can be answered before)
        deadline = time.monotonic() + 10
        while live.sessions < 1 and time.monotonic() < deadline:
            time.sleep(0.01)
        with pytest.raises(InvalidStatus) as e:  # max_sessions=1
            with _connect(live):
                pass
        assert e.value.response.status_code == 503


def test_mask_outline():
    import numpy as np

    m = np.zeros((50, 60), bool)
    m[10:30, 20:45] = True
    (poly,) = mask_outline(m)
    xs, ys = [p[0] for p in poly], [p[1] for p in poly]
    assert (min(xs), max(xs), min(ys), max(ys)) == (20, 44, 10, 29)
    assert mask_outline(None) == [] and mask_outline(np.zeros((4, 4), bool)) == []


def test_page_config_and_csp_name_the_live_port(make_app, predictor):
    app, _ = make_app(predictor)
    client = app.test_client()
    assert "ws://" not in client.get("/").headers["Content-Security-Policy"]  # no live server: no WebSocket
    app.config["MASKFACE_LIVE_PORT"] = 9123
    r = client.get("/", headers={"Host": "127.0.0.1:9122"})
    csp = r.headers["Content-Security-Policy"]
    assert "connect-src 'self' blob: ws://127.0.0.1:9123 wss://127.0.0.1:9123;" in csp
    assert "live_port&#34;: 9123" in r.get_data(as_text=True)


def test_shutdown_closes_open_sessions_and_waits_for_them(make_app, predictor, recorder, jpegs, caplog):
    app, _ = make_app(recorder(predictor, delay=0.8))
    server = LiveServer(app.extensions["maskface"], port=0).start()
    ws = _connect(server).__enter__()
    ws.send(frame_message(1, jpegs[0]))
    assert _answers(ws, 1)[0][0]["type"] == "result" and server.sessions == 1
    ws.send(frame_message(2, jpegs[1]))  # the session is busy with it (0.8 s) when shutdown() comes
    time.sleep(0.2)
    with caplog.at_level("INFO", logger="maskface.serving.live"):
        server.shutdown()
        assert server.sessions == 0  # the handler ended (and logged) before shutdown() returned
    assert any("camera session closed" in r.getMessage() for r in caplog.records)
    with pytest.raises(Exception):  # the client sees the connection closed
        ws.recv(timeout=5)
