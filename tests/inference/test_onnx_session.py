"""ONNX Runtime sessions: the optimised graph is cached next to the model and reused."""

import os

import numpy as np
import pytest
import torch

ort = pytest.importorskip("onnxruntime")  # the [onnx] extra, installed by the test command


def _export(path):
    net = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3, padding=1), torch.nn.BatchNorm2d(8), torch.nn.ReLU()).eval()
    torch.onnx.export(net, torch.rand(1, 3, 16, 16), str(path), input_names=["x"], output_names=["y"],
                      dynamic_axes={"x": {2: "h", 3: "w"}}, dynamo=False)
    return net


def test_optimised_graph_is_saved_once_and_reused(tmp_path):
    from maskface.inference.onnx_runtime import make_session

    path = tmp_path / "net.onnx"
    net = _export(path)
    x = np.random.default_rng(0).random((1, 3, 20, 24), dtype=np.float32)
    first = make_session(path, threads=1)
    saved = [p for p in os.listdir(tmp_path) if p.endswith(".opt.onnx")]
    assert saved == [f"net.ort{ort.__version__}.opt.onnx"]
    assert not [p for p in os.listdir(tmp_path) if p.endswith(".tmp")]
    mtime = (tmp_path / saved[0]).stat().st_mtime_ns
    second = make_session(path, threads=1)  # loads the saved graph, optimisation off
    assert (tmp_path / saved[0]).stat().st_mtime_ns == mtime
    with torch.no_grad():
        ref = net(torch.from_numpy(x)).numpy()
    for s in (first, second):
        np.testing.assert_allclose(s.run(None, {"x": x})[0], ref, atol=1e-5)
    # a damaged copy is replaced, not fatal
    (tmp_path / saved[0]).write_bytes(b"not onnx")
    third = make_session(path, threads=1)
    np.testing.assert_allclose(third.run(None, {"x": x})[0], ref, atol=1e-5)
    assert (tmp_path / saved[0]).stat().st_size > 100


def test_unwritable_folder_still_gives_a_session(tmp_path, monkeypatch):
    import maskface.inference.onnx_runtime as onnx_runtime

    path = tmp_path / "net.onnx"
    _export(path)
    monkeypatch.setattr(onnx_runtime.os, "access", lambda p, mode: False)  # a read-only deploy folder
    s = onnx_runtime.make_session(path, threads=1)
    assert s.run(None, {"x": np.zeros((1, 3, 8, 8), np.float32)})[0].shape == (1, 8, 8, 8)
    assert sorted(os.listdir(tmp_path)) == ["net.onnx"]
