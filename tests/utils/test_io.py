import json

import pytest

from maskface.utils.io import atomic_write, load_json, save_json


def test_atomic_write_leaves_old_file_on_error(tmp_path):
    path = tmp_path / "out.json"
    save_json({"a": 1}, path)
    with pytest.raises(RuntimeError):
        with atomic_write(path) as f:
            f.write('{"half": ')
            raise RuntimeError("interrupted")
    assert load_json(path) == {"a": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["out.json"]  # no temp file left behind


def test_load_json_names_file_and_line(tmp_path):
    path = tmp_path / "bad.json"
    path.write_text('{\n  "a": 1,\n  oops\n}\n')
    with pytest.raises(ValueError, match=r"bad.json: invalid JSON at line 3"):
        load_json(path)
    with pytest.raises(FileNotFoundError, match="missing.json"):
        load_json(tmp_path / "missing.json")
    save_json([1, 2], tmp_path / "sub" / "x.json")
    assert json.loads((tmp_path / "sub" / "x.json").read_text()) == [1, 2]


@pytest.fixture
def umask():
    """``umask(mask)`` sets the process umask for the test; the old one is restored after."""
    import os

    old = os.umask(0o022)
    yield os.umask
    os.umask(old)


@pytest.mark.parametrize("mask", [0o022, 0o027, 0o002])
def test_atomic_write_respects_umask(tmp_path, umask, mask):
    """A plain open() and atomic_write give the same mode (mkstemp alone gives 0600)."""
    umask(mask)
    save_json({"a": 1}, tmp_path / "atomic.json")
    with atomic_write(tmp_path / "atomic.bin", "wb") as f:
        f.write(b"x")
    (tmp_path / "plain.txt").write_text("x")
    modes = {p.name: p.stat().st_mode & 0o777 for p in tmp_path.iterdir()}
    assert modes == dict.fromkeys(["atomic.json", "atomic.bin", "plain.txt"], 0o666 & ~mask)


def test_file_problem_tells_reasons_apart(tmp_path, monkeypatch):
    import builtins
    import os

    from maskface.utils.io import file_problem

    (tmp_path / "ok.jpg").write_bytes(b"x")
    (tmp_path / "empty.jpg").write_bytes(b"")
    os.symlink("loop_b.jpg", tmp_path / "loop_a.jpg")
    os.symlink("loop_a.jpg", tmp_path / "loop_b.jpg")
    os.symlink("gone.jpg", tmp_path / "dangling.jpg")
    (tmp_path / "secret.jpg").write_bytes(b"x")
    real_open = builtins.open

    def no_read(path, *a, **kw):  # root reads any file, so deny it by hand
        if str(path) == str(tmp_path / "secret.jpg"):
            raise PermissionError(13, "Permission denied", str(path))
        return real_open(path, *a, **kw)

    monkeypatch.setattr(builtins, "open", no_read)
    assert file_problem(tmp_path / "ok.jpg") is None
    assert file_problem(tmp_path / "missing.jpg") == "file not found"
    assert file_problem(tmp_path / "empty.jpg") == "empty file (0 bytes)"
    assert "symbolic link loop" in file_problem(tmp_path / "loop_a.jpg")
    assert "broken symbolic link" in file_problem(tmp_path / "dangling.jpg")
    assert "permission denied" in file_problem(tmp_path / "secret.jpg")
    assert "folder" in file_problem(tmp_path)
