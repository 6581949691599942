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
