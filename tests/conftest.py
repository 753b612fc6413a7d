"""Shared test configuration: the hypothesis profile (NOT-8) and the device under test."""

from __future__ import annotations

import os

import pytest
import torch

from refsae.checking import profiles

PROFILE = profiles.load()
DEVICE = os.environ.get("REFSAE_DEVICE", "cpu")


@pytest.fixture
def device() -> str:
    """The torch device the suite checks (`REFSAE_DEVICE`, default cpu); skips when it is absent."""
    if DEVICE.startswith("cuda") and not torch.cuda.is_available():
        pytest.skip("REFSAE_DEVICE=cuda but torch.cuda.is_available() is False: no GPU on this machine")
    return DEVICE


def pytest_report_header() -> list[str]:
    return [f"refsae: hypothesis profile {PROFILE}, device {DEVICE}"]
