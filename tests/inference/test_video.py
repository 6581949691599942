"""Video I/O and the frame loop: reader properties and errors, writer, process_video with
batching, every-n-frames and tracking (a fake predictor that 'detects' the drawn blobs)."""

import os

import cv2
import numpy as np
import pytest

from maskface.inference.results import Face
from maskface.inference.video import VideoOpenError, VideoReader, VideoWriter, process_video

W, H, FPS, N = 128, 96, 12.0, 16


def blob_centres(t):
    """Two blobs moving in opposite directions."""
    return [(20 + 5 * t, 40), (108 - 5 * t, 60)]


def write_video(path, n=N, fourcc="mp4v"):
    w = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*fourcc), FPS, (W, H))
    assert w.isOpened()
    for t in range(n):
        frame = np.full((H, W, 3), 30, np.uint8)
        for k, (cx, cy) in enumerate(blob_centres(t)):
            cv2.circle(frame, (cx, cy), 10, (0, 255, 0) if k == 0 else (0, 0, 255), -1)
        w.write(frame)
    w.release()
    return str(path)


class BlobPredictor:
    """Stands in for FacePredictor: finds green and red blobs by colour."""

    score_thresh = 0.5

    def __init__(self):
        self.calls = []

    def predict_batch(self, images, color="bgr"):
        self.calls.append(len(images))
        out = []
        for im in images:
            faces = []
            for ch in (1, 2):
                m = (im[:, :, ch] > 150) & (im[:, :, 3 - ch if ch == 1 else 1] < 100)
                ys, xs = np.nonzero(m)
                if len(xs):
                    f = Face(box=[xs.min(), ys.min(), xs.max() + 1, ys.max() + 1], score=0.9, mask=m)
                    f.set_attributes({"age": 20.0 + ch, "gender": "male", "gender_prob": 0.9})
                    faces.append(f)
            out.append(faces)
        return out


def test_reader_properties(tmp_path):
    p = write_video(tmp_path / "v.mp4")
    with VideoReader(p) as r:
        assert (r.width, r.height) == (W, H) and r.fps == pytest.approx(FPS, abs=0.1)
        frames = list(r)
        assert len(frames) == N == r.frames_read and frames[0].shape == (H, W, 3)
        assert not r.ended_early()
    r = VideoReader(p, max_frames=5)
    assert len(list(r)) == 5 and r.total == 5


def test_reader_errors(tmp_path):
    with pytest.raises(VideoOpenError, match="not found"):
        VideoReader(str(tmp_path / "missing.mp4"))
    empty = tmp_path / "empty.mp4"
    empty.write_bytes(b"")
    with pytest.raises(VideoOpenError, match="empty file"):
        VideoReader(str(empty))
    junk = tmp_path / "junk.mp4"
    junk.write_bytes(os.urandom(4096))
    with pytest.raises(VideoOpenError, match="junk.mp4"):
        VideoReader(str(junk))


def test_truncated_video_reported(tmp_path):
    p = write_video(tmp_path / "t.avi", n=40, fourcc="MJPG")
    data = open(p, "rb").read()
    cut = tmp_path / "cut.avi"
    cut.write_bytes(data[: len(data) // 2])
    try:
        r = VideoReader(str(cut))
    except VideoOpenError:
        return  # some FFmpeg builds refuse the file outright: also a clear error
    n = len(list(r))
    assert n < 40 and r.ended_early()


def test_writer_atomic(tmp_path):
    out = tmp_path / "o.mp4"
    w = VideoWriter(str(out), 10.0, (W, H))
    for _ in range(3):
        w.write(np.zeros((H, W, 3), np.uint8))
    assert not out.exists()  # only the .partial file until closed
    w.close()
    r = VideoReader(str(out))
    assert len(list(r)) == 3 and r.fps == pytest.approx(10.0)


def test_process_video_tracks_and_batches(tmp_path):
    p = write_video(tmp_path / "v.mp4")
    pred = BlobPredictor()
    frames = list(process_video(pred, VideoReader(p), batch_size=4))
    assert [f.index for f in frames] == list(range(N)) and all(f.processed for f in frames)
    assert pred.calls == [4, 4, 4, 4]
    ids_per_frame = [sorted(x.track_id for x in f.faces) for f in frames]
    assert all(len(i) == 2 and None not in i for i in ids_per_frame)
    # The blobs cross mid-video; each keeps its id: follow the green one by its colour.
    green_ids = {x.track_id for f in frames for x in f.faces if x.age == pytest.approx(21.0)}
    red_ids = {x.track_id for f in frames for x in f.faces if x.age == pytest.approx(22.0)}
    assert len(green_ids) == 1 and len(red_ids) == 1 and green_ids != red_ids


def test_every_n_frames(tmp_path):
    p = write_video(tmp_path / "v.mp4")
    pred = BlobPredictor()
    frames = list(process_video(pred, VideoReader(p), batch_size=3, every_n_frames=3))
    assert len(frames) == N
    assert [f.index for f in frames if f.processed] == list(range(0, N, 3))
    assert sum(pred.calls) == len(range(0, N, 3))
    assert frames[1].faces is frames[0].faces  # skipped frames reuse the last faces


class ThrottledBlobPredictor(BlobPredictor):
    """BlobPredictor with the attribute split of FacePredictor: records which faces got attributes."""

    has_attributes = True

    def __init__(self):
        super().__init__()
        self.attribute_calls = []

    def predict_batch(self, images, color="bgr", attributes=True):
        out = super().predict_batch(images, color)
        if not attributes:
            for faces in out:
                for f in faces:
                    f.age = f.age_std = f.gender = f.gender_prob = f.age_group = None
        return out

    def predict_attributes(self, images, faces, color="bgr"):
        self.attribute_calls.append([len(fs) for fs in faces])
        for fs in faces:
            for f in fs:
                f.set_attributes({"age": 30.0, "gender": "female", "gender_prob": 0.8})


def test_frame_analyzer_runs_attributes_every_k_frames_per_track():
    from maskface.inference.video import FrameAnalyzer

    pred = ThrottledBlobPredictor()
    analyzer = FrameAnalyzer(pred, attributes_every=3)
    frames = []
    for t in range(7):
        frame = np.full((H, W, 3), 30, np.uint8)
        for k, (cx, cy) in enumerate(blob_centres(t)):
            cv2.circle(frame, (cx, cy), 10, (0, 255, 0) if k == 0 else (0, 0, 255), -1)
        frames.append(frame)
    results = analyzer.analyze(frames[:4]) + analyzer.analyze(frames[4:])
    # two tracks born on frame 1: attributes on frames 1, 4, 7 (both faces), none in between
    assert pred.attribute_calls == [[2, 0, 0, 2], [0, 0, 2]]
    assert [f.track_id for f in results[0]] == [1, 2] and [f.track_id for f in results[6]] == [1, 2]
    for faces in results:  # the tracks carry their (smoothed) labels on every frame
        assert all(f.age == pytest.approx(30.0) and f.gender == "female" for f in faces)
    analyzer.reset()
    analyzer.analyze(frames[:1])
    assert pred.attribute_calls[-1] == [2]  # new tracks after a reset are analysed at once
