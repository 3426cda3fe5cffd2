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


@pytest.fixture(scope="session")
def real_faces(tmp_path_factory):
    """``real_faces("gray")`` / ``real_faces("rgb")``: path of the real 60x60 gray or 227x227 RGB
    face dataset. Found on the data search path when built; otherwise built once per test session
    from the shared FaceScrub cache (offline, about 10-20 s); the test is skipped when neither the
    dataset nor the cache is there."""
    import deepnn_io
    built = {}

    def get(mode: str) -> Path:
        name = {"gray": "faces_60x60_gray.npz", "rgb": "faces_227x227_rgb.npz"}[mode]
        found = deepnn_io.locate(name)
        if found is not None:
            return found
        if not built:
            import get_all_imgs
            cache = deepnn_io.locate("uncropped")
            lists = [deepnn_io.locate(n) for n in get_all_imgs.LIST_FILES]
            if cache is None or None in lists:
                pytest.skip(f"neither {name} nor the FaceScrub lists and uncropped/ cache are on "
                            f"the data search path (DEEPNN_DATA={os.environ.get('DEEPNN_DATA')})")
            dest = tmp_path_factory.mktemp("real_faces")
            get_all_imgs.main(["--offline", "--dest", str(dest), "--out", str(dest)])
            built["dir"] = dest
        return built["dir"] / name

    return get
