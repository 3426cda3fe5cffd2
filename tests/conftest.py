"""Shared test set-up: headless plotting, the project on sys.path, and real-data lookups."""
import os
import sys
from pathlib import Path

import pytest

os.environ.setdefault("MPLBACKEND", "Agg")
PROJECT = Path(__file__).resolve().parents[1]
if str(PROJECT) not in sys.path:
    sys.path.insert(0, str(PROJECT))

import apparatus  # noqa: E402  (quietens TensorFlow before any test imports it)
from apparatus import facedata, inputs  # noqa: E402


def real_input(name: str) -> Path:
    """Path of a real input found through data/ and DEEPNN_DATA, or skip the test with a reason."""
    path = inputs.locate(name)
    if path is None:
        pytest.skip(f"real input '{name}' not found in data/ or DEEPNN_DATA "
                    f"({os.environ.get('DEEPNN_DATA', 'unset')})")
    return path


@pytest.fixture
def real_data():
    return real_input


@pytest.fixture(scope="session")
def real_faces(tmp_path_factory):
    """``real_faces("gray")`` / ``real_faces("rgb")``: path of the real 60x60 gray or 227x227 RGB
    dataset of the six default actors. Found on the data search path when built; otherwise built
    once per test session from the shared FaceScrub cache (offline, about 10 s); skipped when
    neither is there."""
    built = {}

    def get(mode: str) -> Path:
        size = {"gray": (60, 60), "rgb": (227, 227)}[mode]
        name = facedata.dataset_name(facedata.DEFAULT_ACTORS, size, mode)
        found = inputs.locate(name)
        if found is not None:
            return found
        if not built:
            import get_all_imgs
            if inputs.locate("uncropped") is None or inputs.locate("facescrub_actors.txt") is None:
                pytest.skip(f"neither {name} nor the FaceScrub lists and uncropped/ cache are on "
                            f"the data search path (DEEPNN_DATA={os.environ.get('DEEPNN_DATA')})")
            dest = tmp_path_factory.mktemp("real_faces")
            get_all_imgs.main(["--offline", "--dest", str(dest), "--out", str(dest)])
            built["dir"] = dest
        return built["dir"] / name

    return get
