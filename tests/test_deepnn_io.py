"""The shared module: search path, atomic writes, verified downloads, the safe unpickler."""
import hashlib
import http.server
import json
import os
import pickle
import threading

import numpy as np
import pytest

import deepnn_io


class _Evil:
    def __reduce__(self):
        return (os.system, ("echo pwned",))


def test_search_path_order(tmp_path, monkeypatch):
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir(), b.mkdir()
    (b / "x.txt").write_text("b")
    monkeypatch.setattr(deepnn_io, "DATA_DIR", tmp_path / "data")
    monkeypatch.setenv("DEEPNN_DATA", f"{a}{os.pathsep}{b}")
    assert deepnn_io.search_dirs() == [tmp_path / "data", a, b]
    assert deepnn_io.locate("x.txt") == b / "x.txt"
    (a / "x.txt").write_text("a")
    assert deepnn_io.locate("x.txt") == a / "x.txt"


def test_missing_input_message_names_file_places_and_source(tmp_path, monkeypatch):
    monkeypatch.setattr(deepnn_io, "DATA_DIR", tmp_path / "data")
    monkeypatch.setenv("DEEPNN_DATA", str(tmp_path / "nowhere"))
    with pytest.raises(deepnn_io.MissingInputError) as err:
        deepnn_io.find_input("snapshot50.pkl", download=False)
    text = str(err.value)
    assert "snapshot50.pkl" in text and str(tmp_path / "nowhere") in text
    assert "guerzhoy/411/proj2/snapshot50.pkl" in text and "d302858c" in text


def test_restricted_unpickler_loads_arrays_and_refuses_code(tmp_path):
    weights = {"W0": np.arange(6, dtype=np.float32).reshape(2, 3), "b0": [np.zeros(2), 1.5]}
    good = tmp_path / "good.pkl"
    good.write_bytes(pickle.dumps(weights, protocol=2))
    loaded = deepnn_io.load_pickle_safely(good)
    np.testing.assert_array_equal(loaded["W0"], weights["W0"])
    evil = tmp_path / "evil.pkl"
    evil.write_bytes(pickle.dumps({"W0": _Evil()}))
    with pytest.raises(deepnn_io.InputFormatError, match="posix.system|os.system|nt.system"):
        deepnn_io.load_pickle_safely(evil)
    truncated = tmp_path / "cut.pkl"
    truncated.write_bytes(good.read_bytes()[:40])
    with pytest.raises(deepnn_io.InputFormatError, match="cut.pkl"):
        deepnn_io.load_pickle_safely(truncated)


def test_npy_object_loader_matches_numpy_and_refuses_code(tmp_path):
    weights = {"conv1": [np.ones((2, 2, 3, 4), np.float32), np.zeros(4, np.float32)]}
    path = tmp_path / "w.npy"
    np.save(path, weights, allow_pickle=True)
    loaded = deepnn_io.load_npy_object_safely(path)
    np.testing.assert_array_equal(loaded["conv1"][0], weights["conv1"][0])
    bad = tmp_path / "bad.npy"
    np.save(bad, np.array({"x": _Evil()}, dtype=object), allow_pickle=True)
    with pytest.raises(deepnn_io.InputFormatError, match="refused"):
        deepnn_io.load_npy_object_safely(bad)


def test_atomic_write_leaves_nothing_on_failure(tmp_path):
    dest = tmp_path / "out.bin"
    dest.write_bytes(b"old")
    with pytest.raises(RuntimeError):
        with deepnn_io.atomic_path(dest) as tmp:
            tmp.write_bytes(b"half")
            raise RuntimeError("interrupted")
    assert dest.read_bytes() == b"old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.bin"]


def test_npz_cache_roundtrip_and_refuses_objects(tmp_path):
    path = deepnn_io.save_npz_atomic(tmp_path / "c.npz", x=np.arange(3), names=np.array(["a", "b"]))
    data = deepnn_io.load_npz(path)
    assert data["names"].tolist() == ["a", "b"]
    with pytest.raises(ValueError):
        deepnn_io.save_npz_atomic(tmp_path / "d.npz", x=np.array([{}], dtype=object))
    (tmp_path / "broken.npz").write_bytes(b"PK\x03\x04garbage")
    with pytest.raises(deepnn_io.InputFormatError, match="broken.npz"):
        deepnn_io.load_npz(tmp_path / "broken.npz")


@pytest.fixture
def http_server():
    body = b"hello, coursework" * 100

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            if self.path == "/file.bin":
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)
            else:
                self.send_error(404)

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", body
    server.shutdown()


def test_download_checks_hash_and_scheme(tmp_path, http_server):
    base, body = http_server
    good = hashlib.sha256(body).hexdigest()
    path = deepnn_io.download_file(f"{base}/file.bin", tmp_path / "f.bin", sha256=good, timeout=5)
    assert path.read_bytes() == body
    with pytest.raises(deepnn_io.DownloadError, match="sha256"):
        deepnn_io.download_file(f"{base}/file.bin", tmp_path / "g.bin", sha256="0" * 64, timeout=5)
    with pytest.raises(deepnn_io.DownloadError, match="larger"):
        deepnn_io.download_file(f"{base}/file.bin", tmp_path / "h.bin", max_bytes=10, timeout=5)
    with pytest.raises(deepnn_io.DownloadError, match="HTTP 404"):
        deepnn_io.download_file(f"{base}/nope", tmp_path / "i.bin", timeout=5, backoff=0.01)
    with pytest.raises(deepnn_io.DownloadError, match="refused scheme file:"):
        deepnn_io.download_file("file:///etc/passwd", tmp_path / "j.bin")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["f.bin"]  # no partial files


def test_write_results_record(tmp_path):
    path = deepnn_io.write_results(tmp_path, "digits.py", "part1", seed=3, quick=True,
                                   settings={"a": np.int64(1)}, metrics={"acc": np.float32(0.5)},
                                   figures=["images/x.png"], seconds=1.23456)
    record = json.loads(path.read_text())
    assert path.name == "digits_part1.json"
    assert record["seed"] == 3 and record["quick"] is True
    assert record["metrics"]["acc"] == 0.5 and record["timings"]["seconds"] == 1.235
    assert "digits.py part1" in record["command"] or "digits.py" in record["command"]


@pytest.fixture
def tricky_server():
    """Redirects to ftp:, and a body cut short of its Content-Length."""

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            if self.path == "/to-ftp":
                self.send_response(302)
                self.send_header("Location", "ftp://127.0.0.1/secret")
                self.end_headers()
            elif self.path == "/short":
                self.send_response(200)
                self.send_header("Content-Length", "1000")
                self.end_headers()
                self.wfile.write(b"x" * 10)
            else:
                self.send_error(404)

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def test_download_refuses_ftp_redirect_and_short_body(tmp_path, tricky_server):
    with pytest.raises(deepnn_io.DownloadError, match="redirect to ftp"):
        deepnn_io.download_file(f"{tricky_server}/to-ftp", tmp_path / "a.bin", timeout=5)
    with pytest.raises(deepnn_io.DownloadError):
        deepnn_io.download_file(f"{tricky_server}/short", tmp_path / "b.bin", timeout=5,
                                retries=1, backoff=0.01)
    assert list(tmp_path.iterdir()) == []


def test_atomic_files_are_not_private(tmp_path):
    path = deepnn_io.atomic_write_text(tmp_path / "r.json", "{}")
    assert path.stat().st_mode & 0o044 == 0o044 & ~deepnn_io._UMASK
