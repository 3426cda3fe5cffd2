"""Shared test set-up: headless plotting, the project on sys.path, real-data lookups, and the
fixtures of synthetic inputs more than one test module uses (their helpers: fakes.py)."""
import http.server
import os
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

os.environ.setdefault("MPLBACKEND", "Agg")
PROJECT = Path(__file__).resolve().parents[1]
if str(PROJECT) not in sys.path:
    sys.path.insert(0, str(PROJECT))

import apparatus  # noqa: E402  (quietens TensorFlow before any test imports it)
import get_all_imgs as gai  # noqa: E402
from apparatus import facedata, inputs, runs  # noqa: E402
from fakes import sha, write_mnist, write_snapshot  # noqa: E402


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


# --------------------------------------------------------------------------- synthetic inputs

@pytest.fixture
def fake_inputs(tmp_path, monkeypatch):
    """Synthetic mnist_all.mat (2200 + 1100 images) and snapshot50.pkl as the inputs found.

    Their sha256 is not the registered one, so the registry entries are emptied for the test
    (an input without a published hash is checked by its loader only), and data/ is moved aside.
    """
    rng = np.random.default_rng(0)
    folder = tmp_path / "inputs"
    folder.mkdir()
    write_mnist(folder / "mnist_all.mat", rng, n_train=220, n_test=110)
    write_snapshot(folder / "snapshot50.pkl", rng)
    monkeypatch.setenv("DEEPNN_DATA", str(folder))
    monkeypatch.setattr(inputs, "DATA_DIR", tmp_path / "no-data")
    for name in ("mnist_all.mat", "snapshot50.pkl"):
        monkeypatch.setitem(inputs.REGISTRY, name, (None, ()))
    return folder


@pytest.fixture
def server():
    """A local server: ``routes[path] = (status, body, seconds between bytes)``."""
    routes = {}

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 - the stdlib's name
            status, body, trickle = routes.get(self.path, (404, b"not found", 0))
            try:
                self.send_response(status)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                for k in range(0, len(body), 1 if trickle else len(body) or 1):
                    self.wfile.write(body[k:k + (1 if trickle else len(body))])
                    time.sleep(trickle)
            except (BrokenPipeError, ConnectionResetError):
                pass  # the client gave up: the deadline case

        def log_message(self, *args):
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    httpd.daemon_threads = True
    threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True).start()
    routes["base"] = f"http://127.0.0.1:{httpd.server_address[1]}"
    yield routes
    httpd.shutdown()
    httpd.server_close()


@pytest.fixture
def project(tmp_path, monkeypatch):
    """A project without real data (data/ in tmp_path, DEEPNN_DATA empty); ``lists(lines)``
    writes both list files there and registers their sha256 as the known one."""
    monkeypatch.setenv("DEEPNN_DATA", "")
    monkeypatch.setattr(inputs, "DATA_DIR", tmp_path / "data")
    (tmp_path / "data" / "uncropped").mkdir(parents=True)

    def lists(actor_lines, actress_lines=()):
        for name, lines in zip(gai.LIST_FILES, (actor_lines, actress_lines)):
            text = "".join(f"{x}\n" for x in lines)
            (tmp_path / "data" / name).write_text(text)
            monkeypatch.setitem(inputs.REGISTRY, name, (None, (sha(text.encode()),)))
    return lists


@pytest.fixture
def data_dir(tmp_path, monkeypatch):
    """An empty project data/ (and data/quick/) in tmp_path; no other data folders searched."""
    monkeypatch.setattr(inputs, "DATA_DIR", tmp_path / "data")
    monkeypatch.setattr(facedata, "QUICK_DIR", tmp_path / "data" / "quick")
    monkeypatch.setattr(runs, "RUNS_DIR", tmp_path / "runs")
    monkeypatch.setenv("DEEPNN_DATA", str(tmp_path / "nothing_here"))
    (tmp_path / "data" / "quick").mkdir(parents=True)
    return tmp_path / "data"
