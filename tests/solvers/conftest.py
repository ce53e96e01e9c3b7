"""Fixtures shared by the solver tests."""

from __future__ import annotations

import pytest


@pytest.fixture
def one_thread():
    """torch on one thread for the test (training runs are then reproducible and cheap)."""
    torch = pytest.importorskip("torch")
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)
