"""Shared fixtures of the inference tests: a predictor on the tiny random-weight models (``tiny_files``,
in tests/conftest.py)."""

import numpy as np
import pytest


@pytest.fixture(scope="session")
def tiny_predictor(tiny_files):
    from maskface.inference.predictor import FacePredictor

    return FacePredictor(**tiny_files.predictor_kwargs(), device="cpu")


@pytest.fixture
def rng():
    return np.random.default_rng(0)
