import pytest


@pytest.fixture
def ctx():
    """An MLIR context with the mpk dialect, entered, with an unknown location."""
    # Imported here: the GPU machine runs the gpu tests without MLIR installed.
    from mlir import ir

    from mpk import dialects

    context = dialects.context()
    with context, ir.Location.unknown():
        yield context
