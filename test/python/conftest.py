import pytest
from mlir import ir

from mpk import dialects


@pytest.fixture
def ctx():
    """An MLIR context with the mpk dialect, entered, with an unknown location."""
    context = dialects.context()
    with context, ir.Location.unknown():
        yield context
