"""Tests of get_all_imgs.py: list lines, crops, downloads from a server on 127.0.0.1, the guard.

Offline: the HTTP server runs in this process (conftest.py's ``server``; the test picture, list
lines and a small build: fakes.py). The real-data test builds the six actors' faces from the
shared cache (small outputs, a few seconds) and skips when the cache is absent.
"""
import io
import json
import time

import numpy as np
import pytest
import requests
from PIL import Image

import get_all_imgs as gai
from apparatus import facedata, inputs, runs
from apparatus.inputs import UserError
from fakes import PIXELS, PNG, RECT, build, encode, line, sha

OTHER = encode(PIXELS[::-1])  # what a host serves instead of the listed file


def dataset(tmp_path, mode="rgb", actors=("Ann Alpha", "Bob Beta")):
    return inputs.load_npz(tmp_path / "data" / facedata.dataset_name(actors, (16, 24), mode))


# ---- Lists and crops ---------------------------------------------------------------------------

def test_parse_line_and_cache_name():
    row = gai.parse_line(line("Ann Marie Alpha", 7, "http://h/x/Photo.JPG?s=1", "ab" * 32))
    assert (row.face_id, row.bbox, row.filename) == (7, RECT, "alpha_7.jpg")
    assert gai.parse_line(line("A B", 1, "http://h/x", "ab" * 32)).filename == "b_1.jpg"
    evil = gai.parse_line(line("A ../etc", 3, "http://h/x.png", "ab" * 32))
    assert evil.filename == "___etc_3.png"  # no '/' can reach the cache path
    for bad in ("A B\t1\t2\thttp://h/x\t1,2,3,4\tnothex",           # sha256 not hex
                "A B\t1\t2\thttp://h/x\t1,2,3,4",                    # five fields
                "A B\tone\t2\thttp://h/x\t1,2,3,4\t" + "0" * 64,      # image_id not a number
                "A B\t1\t2\thttp://h/x\t1,2,3\t" + "0" * 64):         # three bbox numbers
        assert gai.parse_line(bad) is None


def test_read_lists_skips_bad_lines_and_duplicates(project, tmp_path):
    project([line("Ann Alpha", 1, "http://h/a.png", "1" * 64), "garbage line", "",
             line("Ann Alpha", 1, "http://h/a.png", "1" * 64)],
            [line("Bob Beta", 2, "http://h/b.png", "2" * 64)])
    rows, malformed, duplicates = gai.read_lists(tmp_path / "data", offline=True)
    assert [r.face_id for r in rows] == [1, 2] and (malformed, duplicates) == (1, 1)


def test_crop_of_a_known_bbox():
    outputs = ((16, 24, "rgb"), (16, 24, "gray"), (40, 40, "gray"))
    verdict, (rgb, gray, gray40) = gai.crop_faces(PNG, RECT, outputs)
    x1, y1, x2, y2 = RECT
    crop = PIXELS[y1:y2, x1:x2]
    assert verdict == "kept" and rgb.shape == (16, 24, 3) and gray40.shape == (40, 40)
    np.testing.assert_array_equal(rgb, crop)  # bbox == output size: pixel-exact
    np.testing.assert_array_equal(gray, np.asarray(Image.fromarray(crop).convert("L")))
    ref = Image.fromarray(crop).convert("L").resize((40, 40), Image.LANCZOS)
    np.testing.assert_array_equal(gray40, np.asarray(ref))
    assert gai.crop_faces(PNG, (30, 20, 60, 30), outputs) == ("bad bbox", None)  # outside
    assert gai.crop_faces(PNG, (5, 5, 5, 20), outputs) == ("bad bbox", None)     # empty
    assert gai.crop_faces(b"<html>gone</html>", RECT, outputs) == ("undecodable", None)


def test_transparency_is_laid_on_white():
    rgba = np.dstack([PIXELS, np.full(PIXELS.shape[:2], 255, np.uint8)])
    rgba[0, 0, 3] = 0
    _, (out,) = gai.crop_faces(encode(rgba), (0, 0, 48, 32), ((32, 48, "rgb"),))
    assert tuple(out[0, 0]) == (255, 255, 255)
    np.testing.assert_array_equal(out[1:], PIXELS[1:])


def test_draft_keeps_the_bbox_on_the_raw_pixel_grid():
    """A large JPEG is decoded at 1/4 scale: it must agree with a full-size crop and resize."""
    y, x = np.mgrid[0:600, 0:800]
    img = np.stack([x * 255 // 800, y * 255 // 600, (x + y) * 255 // 1400], -1).astype(np.uint8)
    img[300:500, 350:550] = (250, 20, 20)
    data, bbox = encode(img, "JPEG"), (300, 250, 700, 550)
    assert gai.draft_scale(bbox, ((60, 60, "gray"),)) == 4
    got = gai.crop_faces(data, bbox, ((60, 60, "gray"),))[1][0].astype(int)
    with Image.open(io.BytesIO(data)) as full:
        ref = np.asarray(full.crop(bbox).convert("L").resize((60, 60), Image.LANCZOS)).astype(int)
    # DCT scaling vs Lanczos: a grey level or two; a bbox off by the scale factor moves the red
    # square's edge by several pixels, differences ~100
    assert np.abs(got - ref).mean() < 3 and np.abs(got - ref).max() < 40


# ---- Downloads ----------------------------------------------------------------------------------

def test_download_good_404_and_scheme(server, tmp_path):
    """(A trickling host and the per-file deadline: test_bad_inputs.py, class 3.)"""
    server["/a.png"] = (200, PNG, 0)
    settings = gai.Build(request_timeout=1.0)
    session, far = requests.Session(), time.monotonic() + 60
    assert gai.download(session, server["base"] + "/a.png", tmp_path / "a.png", settings, far) == ""
    assert (tmp_path / "a.png").read_bytes() == PNG
    assert gai.download(session, server["base"] + "/gone.jpg", tmp_path / "g.jpg", settings,
                        far) == "HTTP 404"
    assert gai.download(session, "ftp://127.0.0.1/a.png", tmp_path / "f.png", settings, far)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.png"]  # no .part, no partial file


def test_run_budget_fails_the_rest_at_once(server, tmp_path):
    server["/slow.jpg"] = (200, b"x" * 40, 0.2)
    jobs = {i: (server["base"] + "/slow.jpg", tmp_path / f"{i}.jpg") for i in range(4)}
    t0 = time.monotonic()
    reasons = gai.download_all(jobs, gai.Build(download_workers=1), budget=0.5)
    assert time.monotonic() - t0 < 3
    assert reasons == {0: "deadline", 1: "--timeout spent", 2: "--timeout spent",
                       3: "--timeout spent"}


def test_build_from_the_server(server, project, tmp_path):
    base = server["base"]
    server.update({"/a.png": (200, PNG, 0), "/b.png": (200, OTHER, 0),
                   "/slow.png": (200, PNG, 0.05)})  # 0.05 s a byte: far past the 1 s deadline
    project([line("Ann Alpha", 1, f"{base}/a.png", sha(PNG)),       # kept
             line("Ann Alpha", 2, f"{base}/b.png", sha(PNG)),       # sha256 mismatch
             line("Ann Alpha", 3, f"{base}/gone.png", sha(PNG))],   # HTTP 404
            [line("Bob Beta", 4, f"{base}/a.png", sha(PNG)),        # kept
             line("Bob Beta", 5, f"{base}/slow.png", sha(PNG)),     # cut by the deadline
             line("Cid Gamma", 6, f"{base}/a.png", sha(PNG))])      # not asked for
    m = build(tmp_path, "--set", "file_deadline=1.0")
    assert (m["rows_total"], m["kept_total"], m["kept_alpha"], m["kept_beta"]) == (5, 2, 1, 1)
    assert (m["downloaded_total"], m["download_failed_total"], m["sha256_mismatch_total"]) == \
        (3, 2, 1)
    record = json.loads((tmp_path / "out" / "results" / "get_all_imgs.json").read_text())
    assert record["download_errors"] == {"HTTP 404": 1, "deadline": 1}
    assert record["metrics"] == m and (tmp_path / "out" / record["figures"][0]).is_file()
    cache = sorted(p.name for p in (tmp_path / "data" / "uncropped").iterdir())
    assert cache == ["alpha_1.png", "alpha_2.png", "beta_4.png"]  # no .part; mismatch kept
    rgb, gray = dataset(tmp_path, "rgb"), dataset(tmp_path, "gray")
    np.testing.assert_array_equal(rgb["face_ids"], [1, 4])
    np.testing.assert_array_equal(gray["labels"], [0, 1])
    x1, y1, x2, y2 = RECT
    np.testing.assert_array_equal(rgb["images"][1], PIXELS[y1:y2, x1:x2])
    assert list(rgb["sha256"]) == [sha(PNG)] * 2 and list(rgb["actors"]) == ["Ann Alpha",
                                                                            "Bob Beta"]
    server.clear()  # a re-run asks only for what failed: the cache holds the rest
    server["base"] = base
    again = build(tmp_path, "--set", "file_deadline=1.0")
    assert (again["cached_total"], again["kept_total"], again["downloaded_total"]) == (3, 2, 0)


def test_a_build_warns_of_an_actor_it_found_no_photos_of(server, project, tmp_path, capsys):
    base = server["base"]
    server.update({"/a.png": (200, PNG, 0)})
    project([line("Ann Alpha", 1, f"{base}/a.png", sha(PNG))],
            [line("Bob Beta", 2, f"{base}/gone.png", sha(PNG))])  # HTTP 404: no face of Bob
    m = build(tmp_path)
    assert (m["kept_alpha"], m["kept_beta"]) == (1, 0)
    warning = capsys.readouterr().err
    assert "warning: too few faces kept" in warning
    assert "Ann Alpha (1), Bob Beta (0)" in warning and "get_all_imgs.py with a network" in warning


def test_verified_copy_further_along_wins(project, tmp_path, monkeypatch):
    shared = tmp_path / "shared"
    (shared / "uncropped").mkdir(parents=True)
    monkeypatch.setenv("DEEPNN_DATA", str(shared))
    project([line("Ann Alpha", 1, "http://h/a.png", sha(PNG))],
            [line("Bob Beta", 2, "http://h/b.png", sha(PNG))])
    (tmp_path / "data" / "uncropped" / "alpha_1.png").write_bytes(OTHER)  # a bad copy first
    (shared / "uncropped" / "alpha_1.png").write_bytes(PNG)
    (shared / "uncropped" / "beta_2.png").write_bytes(PNG)
    m = build(tmp_path, "--offline")
    assert (m["cached_total"], m["kept_total"], m["sha256_mismatch_total"]) == (2, 2, 0)


# ---- Nothing lost ---------------------------------------------------------------------------

def test_smaller_or_empty_dataset_is_refused(project, tmp_path):
    project([line("Ann Alpha", i, f"http://h/{i}.png", sha(PNG)) for i in (1, 2)],
            [line("Bob Beta", 3, "http://h/3.png", sha(PNG))])
    for name in ("alpha_1.png", "alpha_2.png", "beta_3.png"):
        (tmp_path / "data" / "uncropped" / name).write_bytes(PNG)
    assert build(tmp_path, "--offline")["kept_total"] == 3
    path = tmp_path / "data" / facedata.dataset_name(("Ann Alpha", "Bob Beta"), (16, 24), "rgb")
    before = path.read_bytes()
    (tmp_path / "data" / "uncropped" / "alpha_2.png").unlink()
    with pytest.raises(SystemExit) as stop:  # the command line: one message, exit code 2
        runs.main_guard(lambda: build(tmp_path, "--offline"))
    assert stop.value.code == 2 and path.read_bytes() == before
    with pytest.raises(UserError, match="holds 3 faces"):
        build(tmp_path, "--offline")
    assert build(tmp_path, "--offline", "--force")["kept_total"] == 2
    assert len(dataset(tmp_path)["labels"]) == 2
    for name in ("alpha_1.png", "beta_3.png"):
        (tmp_path / "data" / "uncropped" / name).unlink()
    with pytest.raises(UserError, match="0 of 1 originals found: --offline and no cache"):
        build(tmp_path, "--offline", actors="Bob Beta")  # a new dataset, but empty
    assert build(tmp_path, "--offline", "--force", actors="Bob Beta")["kept_total"] == 0
    assert len(dataset(tmp_path, actors=("Bob Beta",))["labels"]) == 0


def test_empty_build_writes_nothing(project, tmp_path):
    project([line("Ann Alpha", 1, "http://h/1.png", sha(PNG))])
    with pytest.raises(UserError, match="0 of 1 originals found: --offline and no cache"):
        build(tmp_path, "--offline", actors="Ann Alpha")
    assert sorted(p.name for p in (tmp_path / "data").iterdir()) == [*gai.LIST_FILES, "uncropped"]
    assert not (tmp_path / "out" / "results").exists()


# ---- Real data -------------------------------------------------------------------------------

def test_real_build_keeps_exactly_the_matching_files(real_data, tmp_path):
    lists = [real_data(name) for name in gai.LIST_FILES]
    cache = lists[0].parent / "uncropped"
    if not cache.is_dir():
        pytest.skip(f"no download cache at {cache}")
    rows = gai.select_rows(gai.read_lists(lists[0].parent, offline=True)[0],
                           facedata.DEFAULT_ACTORS)
    # computed independently: the cached files whose bytes hash to the list's sha256
    paths = {r.face_id: (cache / r.filename, r.sha256) for r in rows}
    want = {i for i, (p, digest) in paths.items() if p.is_file() and sha(p.read_bytes()) == digest}
    # 16 x 16 outputs let most JPEGs decode at 1/8 scale: the same rows survive, in seconds
    m = gai.main(["--offline", "--dest", str(tmp_path / "data"), "--out", str(tmp_path),
                  "--set", "outputs=((16, 16, 'gray'),)"])
    assert m["kept_total"] == len(want) == 1008 and m["rows_total"] == 1723
    gray = inputs.load_npz(tmp_path / "data" / facedata.dataset_name(facedata.DEFAULT_ACTORS,
                                                                     (16, 16), "gray"))
    assert gray["images"].shape == (1008, 16, 16) and set(gray["face_ids"]) == want
    keys = list(zip(gray["labels"], gray["face_ids"]))
    assert keys == sorted(keys)
    assert gray["images"].reshape(1008, -1).std(axis=1).min() > 3  # faces, not flat patches
