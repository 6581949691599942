"""Shared fixtures of the inference tests: tiny random-weight models (written once per session)."""

import numpy as np
import pytest


@pytest.fixture(scope="session")
def tiny_files(tmp_path_factory):
    from maskface.inference.testing import session_tiny_models

    return session_tiny_models(tmp_path_factory)


@pytest.fixture(scope="session")
def tiny_predictor(tiny_files):
    from maskface.inference.predictor import FacePredictor

    return FacePredictor(**tiny_files.predictor_kwargs(), device="cpu")


@pytest.fixture
def rng():
    return np.random.default_rng(0)
