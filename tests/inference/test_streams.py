"""StreamReader on a real MJPEG-over-HTTP stream served on 127.0.0.1 by a thread (the format IP
cameras serve): reading, a drop and reconnect, giving up, real-time frame dropping; URL helpers."""

import time

import pytest

from maskface.inference.streams import StreamReader, is_stream_url, redact_url, stream_file_name
from maskface.inference.testing import MjpegServer, moving_faces_frames
from maskface.inference.video import VideoOpenError

FAST = dict(reconnect_delay=0.1, max_reconnect_delay=0.4, open_timeout=2, read_timeout=2)


@pytest.fixture(scope="module")
def frames():
    return moving_faces_frames(12, width=160, height=120)


@pytest.fixture
def mjpeg(frames):
    server = MjpegServer(frames, fps=40).start()
    yield server
    server.stop()


def test_url_helpers():
    assert is_stream_url("rtsp://cam.local:554/live") and is_stream_url("HTTPS://x.org/live/index.m3u8")
    assert not is_stream_url("clip.mp4") and not is_stream_url("C:/videos/a.mp4") and not is_stream_url("file://a")
    assert redact_url("rtsp://admin:secret@10.0.0.5:554/s1") == "rtsp://admin:***@10.0.0.5:554/s1"
    assert redact_url("http://10.0.0.5/a.mjpg") == "http://10.0.0.5/a.mjpg"
    assert stream_file_name("rtsp://admin:secret@10.0.0.5:554/live/ch1?x=1") == "10.0.0.5_554_live_ch1_x_1"


def test_collect_inputs_keeps_urls():
    from maskface.inference.image_io import collect_inputs

    assert collect_inputs(["http://127.0.0.1:9/a.mjpg"]) == [("http://127.0.0.1:9/a.mjpg", "stream")]


def test_reads_frames_and_limits(mjpeg):
    with StreamReader(mjpeg.url, max_frames=10, **FAST) as r:
        got = list(r)
    assert len(got) == 10 and got[0].shape == (120, 160, 3) and (r.width, r.height) == (160, 120)
    assert r.position == 9 and r.problem is None and not r.ended_early()
    t0 = time.monotonic()
    with StreamReader(mjpeg.url, duration=0.5, **FAST) as r:
        n = sum(1 for _ in r)
    assert 0.4 < time.monotonic() - t0 < 3 and 5 <= n <= 30


def test_drop_and_reconnect(frames):
    with MjpegServer(frames, fps=40, outage_after=8, outage_s=0.6) as mjpeg:  # gone for 0.6 s after 8 frames
        r = StreamReader(mjpeg.url, max_frames=30, reconnect_timeout=10, **FAST)
        got = list(r)
        r.close()
    assert len(got) == 30 and r.reconnects == 1 and r.problem is None
    assert mjpeg.connections == 2


def test_lost_stream_gives_up_with_a_reason(mjpeg):
    r = StreamReader(mjpeg.url, reconnect_timeout=0.8, **FAST)
    t0, n = time.monotonic(), 0
    for _ in r:
        n += 1
        if n == 5:
            mjpeg.stop()
    r.close()
    assert time.monotonic() - t0 < 8
    assert r.ended_early() and "the stream was lost: no frame for 0.8 s" in r.problem
    assert 5 <= n < 40


def test_unreachable_stream_is_a_clear_error():
    server = MjpegServer(moving_faces_frames(1, 32, 32)).start()
    url = server.url
    server.stop()  # a free port now: connection refused
    with pytest.raises(VideoOpenError, match="cannot open the stream"):
        StreamReader(url, **FAST)
    with pytest.raises(ValueError, match="not a stream URL"):
        StreamReader("clip.mp4")


def test_realtime_mode_drops_frames_for_a_slow_consumer(mjpeg):
    r = StreamReader(mjpeg.url, realtime=True, max_frames=6, **FAST)
    positions = []
    for _ in r:
        positions.append(r.position)
        time.sleep(0.15)  # a model at ~7 fps on a 40 fps stream
    r.close()
    assert len(positions) == 6 and positions == sorted(positions)
    assert r.frames_dropped > 10 and positions[-1] - positions[0] > 10  # always the newest frame, never a backlog
