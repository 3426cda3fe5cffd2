"""Shared test set-up: headless plotting, the project on sys.path, and real-data lookups."""
import os
import sys
from pathlib import Path

import pytest

os.environ.setdefault("MPLBACKEND", "Agg")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
PROJECT = Path(__file__).resolve().parents[1]
if str(PROJECT) not in sys.path:
    sys.path.insert(0, str(PROJECT))


def real_input(name: str) -> Path:
    """Path of a real input found through data/ and DEEPNN_DATA, or skip the test with a reason."""
    import deepnn_io
    path = deepnn_io.locate(name)
    if path is None:
        pytest.skip(f"real input '{name}' not found in data/ or DEEPNN_DATA "
                    f"({os.environ.get('DEEPNN_DATA', 'unset')})")
    return path


@pytest.fixture
def real_data():
    return real_input
