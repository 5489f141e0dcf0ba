"""Fixtures shared by the test modules."""

from __future__ import annotations

import pytest
import torch


@pytest.fixture(scope="module")
def one_thread():
    """Tiny matmuls gain nothing from threads, and on a shared CPU spinning OpenMP workers cost 10x. Restored after
    the module, so no setting leaks into the next one. Use with `pytestmark = pytest.mark.usefixtures("one_thread")`
    or as a fixture argument."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
