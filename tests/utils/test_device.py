"""resolve_device: "auto" picks CUDA when available, a named device is checked."""

import pytest
import torch

from maskface.utils.device import resolve_device


def test_resolve_device():
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    for spec in ("auto", "", None):
        assert resolve_device(spec).type == expected
    assert resolve_device("cpu") == torch.device("cpu")


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_resolve_device_refuses_cuda_without_cuda():
    with pytest.raises(RuntimeError, match="'cuda:0' requested but CUDA is not available.*--device cpu"):
        resolve_device("cuda:0")
