"""``tools/serve.py`` through its ``main()`` (the server itself runs in test_serving_browser.py)."""


import pytest
from tool_loader import load_tool


@pytest.fixture(scope="module")
def serve_main():
    return load_tool("serve").main


def test_help_lists_flags_and_examples(serve_main, capsys):
    with pytest.raises(SystemExit) as e:
        serve_main(["--help"])
    assert e.value.code == 0
    out = capsys.readouterr().out
    for flag in ("--host", "--port", "--model", "--device", "--max-upload-mb", "--timeout", "--max-video-frames",
                 "--max-megapixels", "--http-threads", "--threads"):
        assert flag in out
    assert "Examples:" in out and "curl -F file=@photo.jpg" in out
    assert "default 127.0.0.1" in out


@pytest.mark.parametrize("argv,message", [
    (["--port", "70000"], "--port must be in 0..65535"),
    (["--timeout", "0"], "must be > 0"),
    (["--max-upload-mb", "-1"], "must be > 0"),
    (["--max-video-frames", "0"], ">= 1"),
    (["--max-megapixels", "0"], "--max-megapixels must be > 0"),
    (["--http-threads", "0"], "--http-threads >= 1"),
])
def test_bad_limits_exit_2(serve_main, capsys, argv, message):
    assert serve_main(argv) == 2
    assert message in capsys.readouterr().err


def test_unloadable_model_exits_2(serve_main, capsys, tmp_path, tiny_model_files):
    argv = ["--detector-config", tiny_model_files.detector_config, "--detector-weights", str(tmp_path / "missing.pth"),
            "--device", "cpu"]
    assert serve_main(argv) == 2
    err = capsys.readouterr().err
    assert "cannot load the model" in err and "missing.pth" in err


def test_port_in_use_exits_2(serve_main, capsys, tiny_model_files):
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen(1)
        port = s.getsockname()[1]
        argv = ["--port", str(port), "--device", "cpu"]
        for k, v in tiny_model_files.predictor_kwargs().items():
            argv += ["--" + k.replace("_", "-"), v]
        assert serve_main(argv) == 2
    assert f"cannot listen on 127.0.0.1:{port}" in capsys.readouterr().err
