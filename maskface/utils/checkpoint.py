"""Reading weights files with clear errors: a missing or unreadable file, or a state dict that
does not fit the model, is reported by name.

Shared by modeling (``load_detector``, ``load_attribute_net``), the model zoo, the integrations
and the trainers; the trainers' :class:`~maskface.engine.checkpoint.Checkpointer` (saving and
exact resume) builds on these.
"""

from __future__ import annotations

import os
from typing import Any, Dict

import torch


def load_checkpoint_file(path: str) -> Dict[str, Any]:
    """The dict stored in the ``torch.save`` file ``path``, loaded onto the CPU.

    Raises ``FileNotFoundError`` when ``path`` is not a file and ``RuntimeError`` (naming the
    file) when it cannot be read (truncated, not a torch file) or does not hold a dict.
    """
    if not os.path.isfile(path):
        raise FileNotFoundError(f"checkpoint not found: {path}")
    try:
        data = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as e:  # truncated or non-torch files
        raise RuntimeError(f"{path}: cannot read checkpoint ({type(e).__name__}: {e})") from None
    if not isinstance(data, dict):
        raise RuntimeError(f"{path}: expected a dict checkpoint, got {type(data).__name__}")
    return data


def load_model_weights(model: torch.nn.Module, state: Dict[str, torch.Tensor], source: str, strict: bool = True) -> None:
    """Load a state dict, reporting missing / unexpected / wrongly shaped keys by name.

    ``source`` names the file in the error message. fp16-stored tensors are cast to the model's
    dtype.
    """
    own = model.state_dict()
    shape_mismatch = [
        f"{k}: checkpoint {tuple(v.shape)} vs model {tuple(own[k].shape)}"
        for k, v in state.items()
        if k in own and tuple(v.shape) != tuple(own[k].shape)
    ]
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    if strict and (shape_mismatch or missing or unexpected):
        lines = [f"{source}: checkpoint does not match the model (wrong config or file?)"]
        for title, items in (("shape mismatch", shape_mismatch), ("missing", missing), ("unexpected", unexpected)):
            if items:
                lines.append(f"  {title} ({len(items)}): " + ", ".join(items[:5]) + (" ..." if len(items) > 5 else ""))
        raise RuntimeError("\n".join(lines))
    cast = {k: (v.to(own[k].dtype) if k in own and v.is_floating_point() else v) for k, v in state.items()}
    model.load_state_dict(cast, strict=strict)
