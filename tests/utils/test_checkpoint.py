"""load_checkpoint_file / load_model_weights: a weights file that is missing, unreadable, not a
dict or does not fit the model fails with an error naming the file and the offending keys."""

import pytest
import torch

from maskface.utils.checkpoint import load_checkpoint_file, load_model_weights


def test_load_checkpoint_file_errors_name_the_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="checkpoint not found: .*nope.pth"):
        load_checkpoint_file(str(tmp_path / "nope.pth"))
    (tmp_path / "junk.pth").write_bytes(b"not a torch file")
    with pytest.raises(RuntimeError, match=r"junk.pth: cannot read checkpoint"):
        load_checkpoint_file(str(tmp_path / "junk.pth"))
    torch.save([1, 2], tmp_path / "list.pth")
    with pytest.raises(RuntimeError, match=r"list.pth: expected a dict checkpoint, got list"):
        load_checkpoint_file(str(tmp_path / "list.pth"))
    torch.save({"model": {"w": torch.ones(2)}, "iteration": 3}, tmp_path / "ok.pth")
    data = load_checkpoint_file(str(tmp_path / "ok.pth"))
    assert data["iteration"] == 3 and data["model"]["w"].device.type == "cpu"


def test_load_model_weights_reports_mismatches_and_casts_fp16():
    model = torch.nn.Linear(3, 2)
    bad = {"weight": torch.zeros(4, 3), "extra": torch.zeros(1)}
    with pytest.raises(RuntimeError, match=r"(?s)w.pth: checkpoint does not match.*shape mismatch \(1\): weight: "
                                           r"checkpoint \(4, 3\) vs model \(2, 3\).*missing \(1\): bias.*unexpected \(1\): extra"):
        load_model_weights(model, bad, source="w.pth")
    half = {k: torch.full_like(v, 0.5).half() for k, v in model.state_dict().items()}
    load_model_weights(model, half, source="w.pth")
    assert model.weight.dtype == torch.float32 and torch.all(model.weight == 0.5)
    load_model_weights(model, {"weight": torch.ones(2, 3)}, source="w.pth", strict=False)  # bias kept
    assert torch.all(model.weight == 1) and torch.all(model.bias == 0.5)
