"""``tools/serve.py`` over real HTTP (waitress, 127.0.0.1 only): the production server keeps the
limits, time-outs and 4xx answers of the app, refuses decompression bombs from their header fast
and without memory growth, survives a bounded concurrent load, and stops cleanly on SIGTERM."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor

import pytest

requests = pytest.importorskip("requests")


def _peak_rss_reset(pid: int) -> bool:
    """Reset the process's peak resident size (VmHWM); False where the kernel does not allow it."""
    try:
        with open(f"/proc/{pid}/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def _status_kb(pid: int, key: str) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    raise KeyError(key)


def _analyze(url: str, data: bytes, name: str, timeout: float = 60, **fields):
    return requests.post(url + "api/v1/analyze", files={"file": (name, data)}, data=fields, timeout=timeout)


@pytest.mark.skipif(not __import__("os").path.exists("/proc/self/status"), reason="needs Linux /proc")
def test_200_megapixel_images_refused_fast_without_memory_growth(serve_tool):
    from maskface.inference.testing import OVERSIZED_FORMATS, oversized_image_bytes

    server = serve_tool()
    pid = server.proc.pid
    health = requests.get(server.url + "api/v1/health", timeout=30)
    assert health.status_code == 200 and "werkzeug" not in health.headers.get("Server", "").lower()
    assert health.json()["limits"]["max_pixels"] == 100_000_000
    exact_peak = _peak_rss_reset(pid)
    before = _status_kb(pid, "VmHWM" if exact_peak else "VmRSS")
    for fmt in ("png", "jpeg", "bmp", "tiff", "webp"):  # the upload formats (GIF / PPM are not accepted uploads)
        assert fmt in OVERSIZED_FORMATS
        t0 = time.perf_counter()
        r = _analyze(server.url, oversized_image_bytes(fmt, 14142, 14143), f"bomb.{fmt}")
        seconds = time.perf_counter() - t0
        assert r.status_code == 413, (fmt, r.text)
        assert r.json()["error"] == "image too large" and "200 megapixels" in r.json()["detail"]
        assert seconds < 1.0, f"{fmt}: refused after {seconds:.2f} s"
    growth_mb = (_status_kb(pid, "VmHWM" if exact_peak else "VmRSS") - before) / 1024
    assert growth_mb < 100, f"server memory grew by {growth_mb:.0f} MB"


def test_http_limits_and_bounded_concurrent_load(serve_tool, astronaut_jpeg):
    server = serve_tool("--max-upload-mb", "1", "--max-pending", "16")
    # a body over the limit is refused (by waitress before it is read, or by the app): 413 either way
    big = astronaut_jpeg + b"\0" * (3 << 20)
    assert _analyze(server.url, big, "big.jpg").status_code == 413
    over = astronaut_jpeg + b"\0" * int(1.5 * (1 << 20))  # within the app's form slack: its JSON answer
    r = _analyze(server.url, over, "over.jpg")
    assert r.status_code == 413 and r.json() == {"error": "upload too large", "detail": "the limit is 1 MB"}
    assert _analyze(server.url, b"plain text\n" * 20, "x.jpg").status_code == 415
    assert _analyze(server.url, astronaut_jpeg[:1500], "cut.jpg").status_code == 422

    # bounded load: 24 requests from 8 client threads, each with a deadline; all answered, all 200
    n, clients = 24, 8
    t0 = time.perf_counter()
    with ThreadPoolExecutor(max_workers=clients) as pool:
        answers = list(pool.map(lambda i: _analyze(server.url, astronaut_jpeg, f"p{i}.jpg", timeout=120), range(n)))
    elapsed = time.perf_counter() - t0
    assert [a.status_code for a in answers] == [200] * n
    assert sorted(a.json()["images"][0]["file"] for a in answers) == sorted(f"p{i}.jpg" for i in range(n))
    faces = [a.json()["images"][0]["faces"] for a in answers]
    assert all(f == faces[0] for f in faces)  # same picture, same answer: no cross-talk between requests
    assert elapsed < 240
    assert requests.get(server.url + "api/v1/health", timeout=30).json()["pending"] == 0
    assert list(server.uploads.iterdir()) == []
    assert server.stop() == 0  # SIGTERM: a clean exit
