"""Tiny random-weight models for tests, smoke runs and benchmarks of the inference plumbing.

They are *untrained*: with ``SCORE_THRESH 0`` the detector returns ``DETECTIONS_PER_IMAGE``
arbitrary "faces" per image, which is what tests of writers, tracking and the CLI need.

    >>> files = write_tiny_models(tmp_path)
    >>> predictor = FacePredictor(**files.predictor_kwargs(), device="cpu")
    >>> # or: tools/infer.py --detector-config {files.detector_config} --detector-weights ...
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, List, Optional

#: Detector overrides: ResNet-18 with slim FPN / heads on 128 px inputs, few proposals.
TINY_DETECTOR_OPTS: List[str] = [
    "MODEL.BACKBONE", "resnet18", "MODEL.FPN_CHANNELS", "32", "MODEL.BOX_HEAD_DIM", "64",
    "MODEL.MASK_HEAD_DIM", "32", "MODEL.MIN_SIZE", "128", "MODEL.MAX_SIZE", "192",
    "MODEL.RPN_PRE_NMS_TOP_N_TEST", "100", "MODEL.RPN_POST_NMS_TOP_N_TEST", "50",
    "MODEL.SCORE_THRESH", "0.0", "MODEL.DETECTIONS_PER_IMAGE", "3", "MODEL.DEVICE", "cpu",
]
#: Attribute-net overrides: width 8, 32 px crops.
TINY_ATTRIBUTE_OPTS: List[str] = ["MODEL.WIDTH", "8", "MODEL.CROP_SIZE", "32"]


@dataclass
class TinyModelFiles:
    detector_config: str
    detector_weights: str
    attribute_config: str
    attribute_weights: str

    def predictor_kwargs(self, attributes: bool = True) -> Dict[str, Any]:
        kw: Dict[str, Any] = {"detector_config": self.detector_config, "detector_weights": self.detector_weights}
        if attributes:
            kw.update(attribute_config=self.attribute_config, attribute_weights=self.attribute_weights)
        return kw


def _opts_to_yaml(defaults, opts: List[str]) -> str:
    cfg = defaults.clone()
    cfg.merge_from_list(opts)
    return cfg.dump()


def write_tiny_models(directory, seed: int = 0, attributes: bool = True) -> TinyModelFiles:
    """Write tiny random-weight detector (+ attribute net) checkpoints and their full YAML
    configs into ``directory``; returns the paths."""
    import torch

    from maskface.config import get_attr_cfg, get_cfg
    from maskface.modeling.face_rcnn import build_face_rcnn

    d = Path(directory)
    d.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(seed)
    det_cfg = d / "tiny_detector.yaml"
    det_cfg.write_text(_opts_to_yaml(get_cfg(), TINY_DETECTOR_OPTS), encoding="utf-8")
    cfg = get_cfg()
    cfg.merge_from_file(str(det_cfg))
    det_w = d / "tiny_detector.pth"
    torch.save({"model": build_face_rcnn(cfg).state_dict()}, det_w)
    attr_cfg_path = d / "tiny_attributes.yaml"
    attr_w = d / "tiny_attributes.pth"
    if attributes:
        from maskface.modeling.attributes import AttributeNet

        attr_cfg_path.write_text(_opts_to_yaml(get_attr_cfg(), TINY_ATTRIBUTE_OPTS), encoding="utf-8")
        acfg = get_attr_cfg()
        acfg.merge_from_file(str(attr_cfg_path))
        torch.save({"model": AttributeNet.from_config(acfg).state_dict()}, attr_w)
    return TinyModelFiles(str(det_cfg), str(det_w), str(attr_cfg_path), str(attr_w))


def session_tiny_models(tmp_path_factory) -> TinyModelFiles:
    """The tiny models written once per pytest session (shared by every test folder):
    ``tiny = session_tiny_models(tmp_path_factory)`` inside a session/module fixture."""
    d = Path(tmp_path_factory.getbasetemp()) / "maskface_tiny_models"
    files = TinyModelFiles(str(d / "tiny_detector.yaml"), str(d / "tiny_detector.pth"),
                           str(d / "tiny_attributes.yaml"), str(d / "tiny_attributes.pth"))
    if all(Path(p).is_file() for p in vars(files).values()):
        return files
    return write_tiny_models(d)


# decompression bombs ------------------------------------------------------------------------------

#: Formats :func:`oversized_image_bytes` writes (the upload formats of the web app, plus GIF and PPM).
OVERSIZED_FORMATS = ("png", "jpeg", "bmp", "tiff", "webp", "gif", "ppm")


def oversized_image_bytes(fmt: str, width: int, height: int) -> bytes:
    """A small, valid-looking file of format ``fmt`` whose header announces ``width x height`` px.

    A real 4 x 4 picture is encoded and its header's size fields rewritten (CRCs fixed), so
    header readers see a huge image while the file stays a few hundred bytes: what a
    decompression bomb looks like before decoding. Decoding it would fail (or allocate
    ``width * height * 3`` bytes), so it is only for tests of size checks made *before* decoding.
    Width and height must fit the format's fields (16 bits for JPEG / GIF, 14 for WebP).
    """
    import io
    import struct
    import zlib

    import numpy as np
    from PIL import Image

    small = Image.fromarray(np.full((4, 4, 3), 128, np.uint8))
    buf = io.BytesIO()
    options = {"lossless": True} if fmt == "webp" else {}  # VP8L: its size fields are simple to rewrite
    small.save(buf, format={"jpeg": "JPEG", "ppm": "PPM"}.get(fmt, fmt.upper()), **options)
    data = bytearray(buf.getvalue())
    if fmt == "png":  # IHDR right after the signature: width, height (big-endian) then its CRC
        data[16:24] = struct.pack(">II", width, height)
        data[29:33] = struct.pack(">I", zlib.crc32(bytes(data[12:29])) & 0xFFFFFFFF)
    elif fmt == "jpeg":  # SOF0 / SOF2: FF C0|C2, length, precision, height, width
        k = next(i for i in range(2, len(data) - 9) if data[i] == 0xFF and data[i + 1] in (0xC0, 0xC1, 0xC2))
        data[k + 5:k + 9] = struct.pack(">HH", height, width)
    elif fmt == "bmp":
        data[18:26] = struct.pack("<ii", width, height)
    elif fmt == "gif":  # logical screen and the first image descriptor
        data[6:10] = struct.pack("<HH", width, height)
        k = data.index(b"\x2c", 13)
        data[k + 5:k + 9] = struct.pack("<HH", width, height)
    elif fmt == "webp":  # lossless VP8L: 14-bit width-1 and height-1 after the 0x2f signature
        assert data[12:16] == b"VP8L", "Pillow wrote a lossy WebP; expected lossless for a 4 x 4 picture"
        bits = (width - 1) | ((height - 1) << 14) | (int.from_bytes(data[21:25], "little") & ~((1 << 28) - 1))
        data[21:25] = bits.to_bytes(4, "little")
    elif fmt == "tiff":  # classic little-endian TIFF: rewrite the ImageWidth / ImageLength entries
        (ifd,) = struct.unpack("<I", data[4:8])
        (n,) = struct.unpack("<H", data[ifd:ifd + 2])
        for k in range(n):
            at = ifd + 2 + 12 * k
            tag, kind = struct.unpack("<HH", data[at:at + 4])
            if tag in (256, 257):
                value = width if tag == 256 else height
                data[at + 8:at + 12] = struct.pack("<HH", value, 0) if kind == 3 else struct.pack("<I", value)
    elif fmt == "ppm":
        header_end = data.index(b"255\n") + 4
        data = bytearray(f"P6\n{width} {height}\n255\n".encode("ascii")) + data[header_end:]
    else:
        raise ValueError(f"unknown format {fmt!r}; one of {OVERSIZED_FORMATS}")
    return bytes(data)


class PredictorWrapper:
    """A :class:`FacePredictor` for tests whose model calls (``predict_results`` /
    ``predict_batch``) go through :meth:`around`; every other attribute (thresholds,
    ``model_info``, ``device``) reads and writes through to the wrapped predictor.

    Subclasses override :meth:`around` (to record, slow down or interrupt the calls) and set their
    own attributes with ``object.__setattr__`` in ``__init__``; later assignments to those stay here.
    """

    def __init__(self, predictor):
        object.__setattr__(self, "_p", predictor)

    def around(self, fn, *args, **kwargs):
        return fn(*args, **kwargs)

    def predict_results(self, *args, **kwargs):
        return self.around(self._p.predict_results, *args, **kwargs)

    def predict_batch(self, *args, **kwargs):
        return self.around(self._p.predict_batch, *args, **kwargs)

    def __getattr__(self, name):
        return getattr(self._p, name)

    def __setattr__(self, name, value):
        if name in self.__dict__:
            object.__setattr__(self, name, value)
        else:
            setattr(self._p, name, value)


# live sources ------------------------------------------------------------------------------------------------


def moving_faces_frames(n_frames: int, width: int = 640, height: int = 480, seed: int = 0):
    """``n_frames`` BGR frames (``height x width x 3`` uint8) of two real faces moving on a grey
    background: skimage's astronaut and matplotlib's grace_hopper.jpg (both public domain),
    ~40 % of the frame height each, gliding back and forth (the last frame leads smoothly into
    the first, so a looping player shows continuous motion). For live-video tests and benchmarks."""
    import cv2
    import matplotlib
    import numpy as np
    from skimage import data

    hopper = cv2.imread(str(Path(matplotlib.get_data_path()) / "sample_data" / "grace_hopper.jpg"))
    side = int(height * 0.45)
    faces = [cv2.resize(np.ascontiguousarray(data.astronaut()[40:300, 120:380, ::-1]), (side, side)),
             cv2.resize(hopper[30:420, 60:450], (side, side))]
    rng = np.random.default_rng(seed)
    base = np.full((height, width, 3), 118, np.uint8)
    base = np.clip(base.astype(np.int16) + rng.integers(-6, 7, (height, width, 1)), 0, 255).astype(np.uint8)
    frames = []
    for i in range(n_frames):
        t = 2 * np.pi * i / max(1, n_frames)  # one period per clip: loops seamlessly
        frame = base.copy()
        for k, face in enumerate(faces):
            cx = width * (0.27 + 0.46 * k) + 0.08 * width * np.sin(t + k * np.pi / 2)
            cy = height * 0.5 + 0.08 * height * np.cos(t + k)
            x0 = int(np.clip(cx - side / 2, 0, width - side))
            y0 = int(np.clip(cy - side / 2, 0, height - side))
            frame[y0:y0 + side, x0:x0 + side] = face
        frames.append(frame)
    return frames


class MjpegServer:
    """An MJPEG stream (HTTP ``multipart/x-mixed-replace``, as IP cameras serve it) on
    ``127.0.0.1`` from a thread, looping ``frames`` at ``fps``. :meth:`stop` drops every
    connection at once (a camera going away); :meth:`start` again serves on the same port.

        >>> server = MjpegServer(moving_faces_frames(30), fps=15).start()
        >>> server.url                 # "http://127.0.0.1:PORT/stream.mjpg"
        >>> server.stop(); server.start(); server.close()
    """

    def __init__(self, frames, fps: float = 15.0, port: int = 0, quality: int = 80,
                 outage_after: Optional[int] = None, outage_s: float = 1.0):
        import cv2

        self.jpegs = [cv2.imencode(".jpg", f, [cv2.IMWRITE_JPEG_QUALITY, quality])[1].tobytes() for f in frames]
        self.fps = float(fps)
        self.port = port
        self.frames_sent = 0
        self.connections = 0
        # a scripted outage: after ``outage_after`` frames in all, the server goes away for
        # ``outage_s`` seconds (connections dropped, new ones refused), then serves again
        self.outage_after, self.outage_s = outage_after, outage_s
        self._server = None
        self._thread = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/stream.mjpg"

    def start(self) -> "MjpegServer":
        import http.server
        import socket
        import threading
        import time

        owner = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *a):  # quiet
                pass

            def do_GET(self):
                owner.connections += 1
                self.send_response(200)
                self.send_header("Content-Type", "multipart/x-mixed-replace; boundary=maskfaceframe")
                self.send_header("Cache-Control", "no-cache")
                self.end_headers()
                k, t_next = 0, time.monotonic()
                try:
                    while not server.stopping.is_set():
                        jpeg = owner.jpegs[k % len(owner.jpegs)]
                        self.wfile.write(b"--maskfaceframe\r\nContent-Type: image/jpeg\r\nContent-Length: "
                                         + str(len(jpeg)).encode() + b"\r\n\r\n" + jpeg + b"\r\n")
                        self.wfile.flush()
                        owner.frames_sent += 1
                        if owner.frames_sent == owner.outage_after:
                            threading.Thread(target=owner._outage, daemon=True).start()
                            return
                        k += 1
                        t_next += 1.0 / owner.fps
                        server.stopping.wait(max(0.0, t_next - time.monotonic()))
                except (BrokenPipeError, ConnectionResetError, OSError):
                    pass

        class Server(http.server.ThreadingHTTPServer):
            allow_reuse_address = True
            daemon_threads = True

            def process_request(self, request, client_address):
                self.clients.append(request)
                super().process_request(request, client_address)

        server = Server(("127.0.0.1", self.port), Handler)
        server.stopping = threading.Event()
        server.clients = []
        self.port = server.server_address[1]
        self._server = server
        self._socket_module = socket
        self._thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and drop every open connection (clients see the stream end)."""
        if self._server is None:
            return
        server, self._server = self._server, None
        server.stopping.set()
        server.shutdown()
        for sock in server.clients:
            try:
                sock.shutdown(self._socket_module.SHUT_RDWR)
            except OSError:
                pass
            sock.close()
        server.server_close()
        self._thread.join(timeout=5)

    def _outage(self) -> None:
        import time

        self.stop()
        time.sleep(self.outage_s)
        self.start()

    close = stop

    def __enter__(self):
        return self.start() if self._server is None else self

    def __exit__(self, *exc):
        self.stop()
