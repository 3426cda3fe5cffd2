"""Tests of get_all_imgs.py: a real HTTP server on 127.0.0.1 serves generated originals.

Every test is offline (the server runs in this process) and takes well under a second, except
the real-data test, which builds both default datasets from the shared cache (~10 s).
"""
import hashlib
import http.server
import io
import json
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import deepnn_io
import get_all_imgs as gai

# ======================================================================================
# Synthetic originals
# ======================================================================================

RECT = (10, 6, 34, 22)  # x1, y1, x2, y2 of the known rectangle in the PNG: 24 wide, 16 tall


def png_bytes(img: Image.Image) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()


def jpeg_bytes(img: Image.Image, quality: int = 95) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format="JPEG", quality=quality)
    return buf.getvalue()


def known_rgb(width=48, height=32, seed=0) -> np.ndarray:
    """Random pixels: any shift of the crop changes many of them."""
    return np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)


def smooth_rgb(width, height) -> np.ndarray:
    """A smooth picture with a sharp-edged square, for lossy JPEG checks."""
    y, x = np.mgrid[0:height, 0:width]
    img = np.stack([x * 255 // width, y * 255 // height, (x + y) * 255 // (width + height)], -1)
    img[300:500, 350:550] = (250, 20, 20)
    return img.astype(np.uint8)


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


class Site:
    """What the test server serves: path -> (status, headers, body, delay seconds)."""

    def __init__(self):
        self.routes = {}
        self.hits = []

    def add(self, path, body=b"", status=200, headers=None, delay=0.0):
        self.routes[path] = (status, headers or {}, body, delay)


@pytest.fixture
def server():
    site = Site()

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 - the stdlib's name
            site.hits.append(self.path)
            status, headers, body, delay = site.routes.get(self.path, (404, {}, b"no", 0.0))
            if delay:
                time.sleep(delay)
            try:
                self.send_response(status)
                for key, value in headers.items():
                    self.send_header(key, value)
                if "Content-Length" not in headers:
                    self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)
            except (BrokenPipeError, ConnectionResetError):
                pass  # the client gave up (the timeout case)
            if "Content-Length" in headers:
                self.close_connection = True  # the dropped-connection case

        def log_message(self, *args):
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    httpd.daemon_threads = True
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    site.base = f"http://127.0.0.1:{httpd.server_address[1]}"
    yield site
    httpd.shutdown()
    httpd.server_close()


def write_lists(dest: Path, actors_lines, actresses_lines):
    dest.mkdir(parents=True, exist_ok=True)
    (dest / "facescrub_actors.txt").write_text("\n".join(actors_lines) + "\n")
    (dest / "facescrub_actresses.txt").write_text("\n".join(actresses_lines) + "\n")


def line(name, face_id, url, bbox, digest):
    return "\t".join([name, str(1000 + face_id), str(face_id), url,
                      ",".join(map(str, bbox)), digest])


@pytest.fixture
def no_shared_data(monkeypatch, tmp_path):
    """No real data on the search path: only what a test writes under tmp_path."""
    monkeypatch.setenv("DEEPNN_DATA", "")
    monkeypatch.setattr(deepnn_io, "DATA_DIR", tmp_path / "project_data")


# ======================================================================================
# The whole pipeline against the local server
# ======================================================================================

@pytest.fixture
def scenario(server, tmp_path, no_shared_data):
    """Generated lists whose rows hit every reason; returns (site, dest, out, expected)."""
    s = server
    pixels = known_rgb()
    a_png = png_bytes(Image.fromarray(pixels))
    big_jpg = jpeg_bytes(Image.fromarray(smooth_rgb(800, 600)))
    palette = png_bytes(Image.fromarray(pixels).convert("P"))
    rgba = png_bytes(Image.fromarray(np.dstack([pixels, np.full(pixels.shape[:2], 255, np.uint8)])))
    gray16 = png_bytes(Image.fromarray(pixels[..., 0].astype("<u2") * 257))
    cmyk = jpeg_bytes(Image.fromarray(pixels).convert("CMYK"))
    html = b"<html><body>Not here any more</body></html>"
    truncated = jpeg_bytes(Image.fromarray(smooth_rgb(200, 150)))[:1500]
    # 1e6 px: over --max-pixels (600,000) but under twice it, where Pillow only warns
    bomb = png_bytes(Image.new("RGB", (1000, 1000), (9, 9, 9)))
    s.add("/a.png", a_png)
    s.add("/big.jpg", big_jpg)
    s.add("/palette.png", palette)
    s.add("/rgba.png", rgba)
    s.add("/gray16.png", gray16)
    s.add("/cmyk.jpg", cmyk)
    s.add("/page.jpg", html, headers={"Content-Type": "text/html"})
    s.add("/trunc.jpg", truncated)
    s.add("/bomb.png", bomb)
    s.add("/slow.jpg", a_png, delay=1.5)
    s.add("/moved", status=302, headers={"Location": "/a.png"})
    s.add("/to_ftp", status=302, headers={"Location": "ftp://127.0.0.1/a.png"})
    s.add("/drop.jpg", a_png[:100], headers={"Content-Length": str(len(a_png))})
    u = s.base
    ann = [
        line("Ann Alpha", 1, f"{u}/a.png", RECT, sha(a_png)),                 # kept, pixel-exact
        line("Ann Alpha", 2, f"{u}/big.jpg", (300, 250, 700, 550), sha(big_jpg)),  # kept, drafted
        line("Ann Alpha", 3, f"{u}/palette.png", RECT, sha(palette)),         # kept (P)
        line("Ann Alpha", 4, f"{u}/rgba.png", RECT, sha(rgba)),               # kept (RGBA)
        line("Ann Alpha", 5, f"{u}/gray16.png", RECT, sha(gray16)),           # kept (I;16)
        line("Ann Alpha", 6, f"{u}/cmyk.jpg", RECT, sha(cmyk)),               # kept (CMYK)
        line("Ann Alpha", 7, f"{u}/page.jpg", RECT, sha(a_png)),              # sha256 mismatch
        line("Ann Alpha", 8, f"{u}/page.jpg", RECT, sha(html)),               # undecodable (HTML)
        line("Ann Alpha", 9, f"{u}/trunc.jpg", (0, 0, 50, 50), sha(truncated)),  # undecodable
        line("Ann Alpha", 10, f"{u}/bomb.png", (0, 0, 50, 50), sha(bomb)),    # too large
        line("Ann Alpha", 11, f"{u}/a.png", (30, 20, 60, 30), sha(a_png)),    # bad bbox: outside
        line("Ann Alpha", 12, f"{u}/a.png", (5, 5, 5, 20), sha(a_png)),       # bad bbox: empty
        "Ann Alpha\tnot-a-number\t13\thttp://x/y.jpg\t1,2,3,4\t" + "0" * 64,  # malformed
        "Ann Alpha\t1014\t14\thttp://x/y.jpg\t1,2,3\t" + "0" * 64,            # malformed bbox
    ]
    bob = [
        line("Bob Beta", 21, f"{u}/missing.jpg", RECT, "1" * 64),             # failed: 404
        line("Bob Beta", 22, f"{u}/slow.jpg", RECT, sha(a_png)),              # failed: timeout
        line("Bob Beta", 23, f"{u}/moved", RECT, sha(a_png)),                 # kept via redirect
        line("Bob Beta", 24, "file:///etc/passwd", RECT, "2" * 64),           # failed: scheme
        line("Bob Beta", 25, "ftp://127.0.0.1/a.png", RECT, "3" * 64),        # failed: scheme
        line("Bob Beta", 26, f"{u}/to_ftp", RECT, sha(a_png)),                # failed: redirect
        line("Bob Beta", 27, f"{u}/drop.jpg", RECT, sha(a_png)),              # failed: cut off
        "Bob Beta\t1028\t28\ttoo few fields",                                 # malformed
        line("Cid Gamma", 31, f"{u}/a.png", RECT, sha(a_png)),                # not asked for
    ]
    dest, out = tmp_path / "data", tmp_path / "out"
    write_lists(dest, bob, ann)
    expected = {"pixels": pixels, "big": smooth_rgb(800, 600)}
    return s, dest, out, expected


def run_scenario(dest, out, *extra):
    argv = ["--dest", str(dest), "--out", str(out), "--actors", "Ann Alpha,Bob Beta",
            "--size", "16x24", "--mode", "rgb", "--size", "16x24", "--mode", "gray",
            "--size", "40", "--mode", "gray",
            "--timeout", "0.4", "--retries", "1", "--backoff", "0.01", "--workers", "1",
            "--max-pixels", "600000", *extra]
    return gai.main(argv)


def test_pipeline_counts_every_reason(scenario):
    site, dest, out, _ = scenario
    m = run_scenario(dest, out)
    assert m["rows_total"] == 19  # 12 Ann + 7 Bob well-formed rows
    assert m["malformed_lines_total"] == 3
    assert m["kept_alpha"] == 6 and m["kept_beta"] == 1 and m["kept_total"] == 7
    assert m["sha256_mismatch_total"] == 1
    assert m["undecodable_total"] == 2
    assert m["too_large_total"] == 1
    assert m["bad_bbox_total"] == 2
    assert m["download_failed_total"] == 6
    assert m["downloaded_total"] == 19 - 6 and m["cached_total"] == 0
    record = json.loads((out / "results" / "get_all_imgs.json").read_text())
    assert record["metrics"] == m and record["timings"]["seconds"] >= 0
    errors = record["download_errors"]
    assert errors.get("HTTP 404") == 1 and errors.get("timeout") == 1
    assert errors.get("refused scheme file:") == 1 and errors.get("refused scheme ftp:") == 1
    assert errors.get("redirect to ftp: refused") == 1 and errors.get("IncompleteRead") == 1
    assert (out / "images" / "get_all_imgs_contact_sheet.png").stat().st_size > 1000
    # the redirect was followed to the image, the ftp: redirect was not
    assert "/a.png" in site.hits and site.hits.count("/to_ftp") == 1


def test_no_partial_files_and_failed_rows_leave_nothing(scenario):
    _, dest, out, _ = scenario
    run_scenario(dest, out)
    names = sorted(p.name for p in (dest / "uncropped").iterdir())
    assert not [n for n in names if n.startswith(".") or n.endswith(".part")]
    for failed in ("beta_21.jpg", "beta_22.jpg", "beta_24.jpg", "beta_25.png", "beta_26.jpg",
                   "beta_27.jpg"):
        assert failed not in names
    assert "beta_23.jpg" in names  # the redirected one (no extension in the URL -> .jpg)
    assert "alpha_7.jpg" in names  # mismatching bytes stay cached: a re-run will not fetch them


def test_rerun_downloads_nothing(scenario):
    site, dest, out, _ = scenario
    first = run_scenario(dest, out)
    site.hits.clear()
    second = run_scenario(dest, out)
    assert second["downloaded_total"] == 0
    assert second["cached_total"] == first["downloaded_total"]
    assert second["kept_total"] == first["kept_total"]
    # only the rows that failed are asked again (and none of the refused schemes)
    assert all(h in ("/missing.jpg", "/slow.jpg", "/to_ftp", "/drop.jpg") for h in site.hits)
    off = run_scenario(dest, out, "--offline")
    assert off["downloaded_total"] == 0 and off["missing_offline_total"] == 6
    assert off["kept_total"] == first["kept_total"]


def test_datasets_contract_and_pixel_exact_crop(scenario):
    _, dest, out, expected = scenario
    run_scenario(dest, out)
    rgb = deepnn_io.load_npz(dest / "faces_16x24_rgb.npz")
    gray = deepnn_io.load_npz(dest / "faces_16x24_gray.npz")
    gray40 = deepnn_io.load_npz(dest / "faces_40x40_gray.npz")
    for d in (rgb, gray, gray40):
        assert list(d["actors"]) == ["Ann Alpha", "Bob Beta"]
        assert d["images"].dtype == np.uint8 and d["labels"].dtype == np.int64
        assert d["face_ids"].dtype == np.int64
        np.testing.assert_array_equal(d["face_ids"], [1, 2, 3, 4, 5, 6, 23])
        np.testing.assert_array_equal(d["labels"], [0, 0, 0, 0, 0, 0, 1])
    assert rgb["images"].shape == (7, 16, 24, 3)
    assert gray["images"].shape == (7, 16, 24) and gray40["images"].shape == (7, 40, 40)
    x1, y1, x2, y2 = RECT
    crop = expected["pixels"][y1:y2, x1:x2]
    np.testing.assert_array_equal(rgb["images"][0], crop)   # PNG, bbox == output: exact
    palette = np.asarray(Image.fromarray(expected["pixels"]).convert("P").convert("RGB"))
    np.testing.assert_array_equal(rgb["images"][2], palette[y1:y2, x1:x2])  # P: its own colours
    np.testing.assert_array_equal(rgb["images"][3], crop)   # opaque RGBA
    np.testing.assert_array_equal(rgb["images"][6], crop)   # the redirected copy
    np.testing.assert_array_equal(rgb["images"][4], np.repeat(crop[..., :1], 3, axis=2))  # I;16
    assert np.abs(rgb["images"][5].astype(int) - crop).mean() < 20  # CMYK JPEG: lossy
    ref_gray = np.asarray(Image.fromarray(crop).convert("L"))
    np.testing.assert_array_equal(gray["images"][0], ref_gray)
    ref40 = np.asarray(Image.fromarray(crop).convert("L").resize((40, 40), Image.LANCZOS))
    np.testing.assert_array_equal(gray40["images"][0], ref40)
    assert set(np.asarray(rgb["sha256"])) == set(gray["sha256"])


def test_draft_keeps_the_bbox_on_the_raw_pixel_grid(scenario):
    """The 800x600 JPEG is decoded at a reduced scale; it must match a full-size crop+resize."""
    _, dest, out, _ = scenario
    run_scenario(dest, out)
    got = deepnn_io.load_npz(dest / "faces_40x40_gray.npz")["images"][1].astype(int)
    with Image.open(dest / "uncropped" / "alpha_2.jpg") as img:
        img.load()
        ref = np.asarray(img.crop((300, 250, 700, 550)).convert("L")
                         .resize((40, 40), Image.LANCZOS)).astype(int)
    # JPEG DCT scaling vs Lanczos differ by a grey level or two; a bbox shifted by the draft
    # factor would move the red square's edge by ~4 px of 40 and give differences of ~100.
    assert np.abs(got - ref).mean() < 3 and np.abs(got - ref).max() < 40


# ======================================================================================
# Small pieces
# ======================================================================================

def test_parse_line_and_filename():
    row = gai.parse_line(line("Ann Marie Alpha", 7, "http://h/x/Photo.JPG?s=1", (1, 2, 3, 4),
                              "ab" * 32))
    assert row.face_id == 7 and row.bbox == (1, 2, 3, 4) and row.filename == "alpha_7.jpg"
    assert gai.parse_line(line("A B", 1, "http://h/x", (1, 2, 3, 4), "ab" * 32)).filename == \
        "b_1.jpg"
    assert gai.parse_line(line("A B", 1, "http://h/x.png", (1, 2, 3, 4), "ab" * 32)).filename == \
        "b_1.png"
    evil = gai.parse_line(line("A ../../etc", 3, "http://h/x.png", (1, 2, 3, 4), "ab" * 32))
    assert "/" not in evil.filename and evil.filename.endswith("_3.png")
    assert gai.parse_line("A B\t1\t2\thttp://h/x\t1,2,3,4\tnothex") is None
    assert gai.parse_line("A B\t1\t2\thttp://h/x\t1,2,3,4") is None


@pytest.mark.parametrize("text,size", [("60", (60, 60)), ("60x48", (60, 48)), ((8, 9), (8, 9)),
                                       ("227X227", (227, 227))])
def test_parse_size(text, size):
    assert gai.parse_size(text) == size


def test_parse_outputs_pairs_sizes_and_modes():
    assert gai.parse_outputs(None, None) == gai.DEFAULT_OUTPUTS
    assert gai.parse_outputs(["32"], ["gray"]) == ((32, 32, "gray"),)
    assert gai.parse_outputs(["32", "224"], ["gray", "rgb"]) == ((32, 32, "gray"),
                                                                 (224, 224, "rgb"))
    assert gai.parse_outputs(["32 64"], ["rgb"]) == ((32, 32, "rgb"), (64, 64, "rgb"))
    assert gai.parse_outputs(["32,64x48"], ["gray,rgb"]) == ((32, 32, "gray"), (64, 48, "rgb"))
    with pytest.raises(ValueError):
        gai.parse_outputs(["32", "64", "96"], ["gray", "rgb"])
    with pytest.raises(ValueError):
        gai.parse_outputs(["32"], ["colour"])
    with pytest.raises(ValueError):
        gai.parse_size("0x5")


def test_to_rgb_modes():
    red = (200, 10, 30)
    rgba = Image.new("RGBA", (4, 4), red + (255,))
    rgba.putpixel((0, 0), (0, 0, 0, 0))  # fully transparent -> white
    out = np.asarray(gai.to_rgb(rgba))
    assert tuple(out[0, 0]) == (255, 255, 255) and tuple(out[1, 1]) == red
    la = Image.new("LA", (2, 2), (100, 255))
    assert tuple(np.asarray(gai.to_rgb(la))[0, 0]) == (100, 100, 100)
    pal = Image.new("RGB", (2, 2), red).convert("P", palette=Image.Palette.ADAPTIVE)
    assert tuple(np.asarray(gai.to_rgb(pal))[0, 0]) == red
    i32 = Image.fromarray(np.array([[0, 70000]], dtype=np.int32))
    assert tuple(np.asarray(gai.to_rgb(i32))[0, :, 0]) == (0, 255)
    cmyk = Image.new("CMYK", (2, 2), (0, 255, 255, 0))
    assert tuple(np.asarray(gai.to_rgb(cmyk))[0, 0]) == (255, 0, 0)


def test_bbox_and_draft_scale():
    assert gai.bbox_ok((0, 0, 10, 10), 10, 10)
    assert not gai.bbox_ok((0, 0, 11, 10), 10, 10)
    assert not gai.bbox_ok((-1, 0, 5, 5), 10, 10)
    assert not gai.bbox_ok((3, 3, 3, 8), 10, 10)
    assert gai.draft_scale((0, 0, 500, 500), ((60, 60, "gray"),)) == 8
    assert gai.draft_scale((0, 0, 500, 500), ((227, 227, "rgb"),)) == 2
    assert gai.draft_scale((0, 0, 453, 500), ((227, 227, "rgb"),)) == 1


def test_refused_schemes_download_nothing(tmp_path):
    for url in ("file:///etc/hostname", "ftp://127.0.0.1/x.jpg", "gopher://x"):
        with pytest.raises(gai.DownloadError, match="refused scheme"):
            gai.download(url, tmp_path / "x.jpg", 0.5, 0, 0.0, 1000)
    assert list(tmp_path.iterdir()) == []


def test_size_cap(server, tmp_path):
    server.add("/huge.jpg", b"x" * 5000)
    server.add("/liar.jpg", b"x" * 5000, headers={"Content-Length": "10"})
    with pytest.raises(gai.DownloadError, match="larger than"):
        gai.download(server.base + "/huge.jpg", tmp_path / "h.jpg", 2, 0, 0.0, 1000)
    assert list(tmp_path.iterdir()) == []


def test_unknown_actor_is_a_clear_error(server, tmp_path, no_shared_data, capsys):
    dest = tmp_path / "data"
    write_lists(dest, [line("Bob Beta", 1, server.base + "/a.png", RECT, "1" * 64)],
                [line("Ann Alpha", 2, server.base + "/a.png", RECT, "1" * 64)])
    with pytest.raises(SystemExit) as exit_info:
        gai.main(["--dest", str(dest), "--out", str(tmp_path), "--offline",
                  "--actors", "Nobody Here"])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert "Nobody Here" in err and "Ann Alpha" in err and "Bob Beta" in err


def test_missing_lists_offline_is_a_clear_error(tmp_path, no_shared_data):
    with pytest.raises(deepnn_io.MissingInputError, match="facescrub_actors.txt"):
        gai.run(gai.Config(dest=tmp_path / "d", out=tmp_path, offline=True))


def test_load_faces_missing_names_the_command(no_shared_data):
    with pytest.raises(deepnn_io.MissingInputError, match=r"python get_all_imgs\.py$"):
        gai.load_faces()
    with pytest.raises(deepnn_io.MissingInputError,
                       match=r"python get_all_imgs\.py --size 32x32 --mode gray"):
        gai.load_faces((32, 32), "gray")
    assert gai.dataset_path((227, 227), "rgb").name == "faces_227x227_rgb.npz"


def test_load_faces_reads_a_built_dataset(scenario, monkeypatch):
    _, dest, out, _ = scenario
    run_scenario(dest, out)
    monkeypatch.setattr(deepnn_io, "DATA_DIR", dest)
    d = gai.load_faces((16, 24), "rgb")
    assert d["images"].shape == (7, 16, 24, 3)
    with np.load(dest / "faces_16x24_rgb.npz", allow_pickle=False) as z:
        assert sorted(z.files) == ["actors", "face_ids", "images", "labels", "sha256"]


# ======================================================================================
# Real data: the shared download cache
# ======================================================================================

def test_real_cache_keeps_exactly_the_matching_files(real_data, tmp_path):
    lists = [real_data(name) for name in gai.LIST_FILES]
    cache = lists[0].parent / "uncropped"
    if not cache.is_dir():
        pytest.skip(f"no download cache at {cache}")
    rows = []
    for path in lists:
        rows += gai.read_list(path)[0]
    by_actor = gai.select_rows(rows, gai.DEFAULT_ACTORS)
    # What must be kept, computed independently: cached files whose bytes hash to the list's.
    want = {}
    for actor, actor_rows in by_actor.items():
        want[actor] = [r.face_id for r in actor_rows if (cache / r.filename).is_file()
                       and sha(Path(cache / r.filename).read_bytes()) == r.sha256]
    # Small outputs let most JPEGs decode at 1/8 scale: the same rows are kept as for the
    # default sizes (which rows survive depends on sha256, bbox and decodability only), in seconds.
    m = gai.main(["--offline", "--dest", str(tmp_path / "data"), "--out", str(tmp_path),
                  "--size", "16", "--mode", "gray", "--size", "16", "--mode", "rgb"])
    assert m["kept_total"] == sum(len(v) for v in want.values()) == 1008
    for actor in gai.DEFAULT_ACTORS:
        assert m[f"kept_{actor.split()[-1].lower()}"] == len(want[actor])
    assert m["downloaded_total"] == 0 and m["undecodable_total"] == 0
    gray = deepnn_io.load_npz(tmp_path / "data" / "faces_16x16_gray.npz")
    rgb = deepnn_io.load_npz(tmp_path / "data" / "faces_16x16_rgb.npz")
    assert gray["images"].shape == (1008, 16, 16) and rgb["images"].shape == (1008, 16, 16, 3)
    np.testing.assert_array_equal(gray["face_ids"], rgb["face_ids"])
    np.testing.assert_array_equal(gray["labels"], rgb["labels"])
    keys = list(zip(gray["labels"], gray["face_ids"]))
    assert keys == sorted(keys)
    for a, actor in enumerate(gai.DEFAULT_ACTORS):
        assert list(gray["face_ids"][gray["labels"] == a]) == sorted(want[actor])
    # a face is not a flat patch: crops have real contrast
    assert gray["images"].reshape(1008, -1).std(axis=1).min() > 3


# ======================================================================================
# Interruptions and a machine without network
# ======================================================================================

def test_interrupted_run_leaves_whole_files_and_resumes(scenario, monkeypatch):
    site, dest, out, _ = scenario
    real_download = gai.download

    def interrupted(url, path, *args):
        if url.endswith("/big.jpg"):  # Ctrl-C while this file is half written
            with deepnn_io.atomic_path(path) as tmp:
                Path(tmp).write_bytes(b"half a jpeg")
                raise KeyboardInterrupt
        return real_download(url, path, *args)

    monkeypatch.setattr(gai, "download", interrupted)
    with pytest.raises(KeyboardInterrupt):
        run_scenario(dest, out, "--download-workers", "1")
    names = [p.name for p in (dest / "uncropped").iterdir()]
    assert "alpha_2.jpg" not in names and not [n for n in names if n.startswith(".")]
    done_before = len(names)
    monkeypatch.setattr(gai, "download", real_download)
    m = run_scenario(dest, out)
    assert m["cached_total"] == done_before and m["kept_total"] == 7
    assert m["downloaded_total"] == 13 - done_before


def test_no_network_skips_the_rest_quickly(monkeypatch, tmp_path):
    calls = []

    def no_dns(url, *args):
        calls.append(url)
        raise gai.DownloadError("host not found", unreachable=True)

    monkeypatch.setattr(gai, "download", no_dns)
    monkeypatch.setattr(gai, "resolves", lambda host, timeout=5.0: False)
    config = gai.Config(dest=tmp_path, download_workers=1, probe_after=3)
    rows = [gai.Row("A B", i, i, f"http://host{i}.example/x.jpg", (0, 0, 1, 1), "0" * 64)
            for i in range(20)]
    paths, verdicts, errors = gai.fetch_all(rows, config, log=lambda *a: None)
    assert verdicts == ["failed"] * 20 and paths == [None] * 20
    assert len(calls) == 3 and errors["host not found"] == 3
    assert sum(v for k, v in errors.items() if k.startswith("skipped: no network")) == 17


def test_dead_host_is_asked_once(monkeypatch, tmp_path):
    calls = []

    def no_dns(url, *args):
        calls.append(url)
        raise gai.DownloadError("host not found", unreachable=True)

    monkeypatch.setattr(gai, "download", no_dns)
    monkeypatch.setattr(gai, "resolves", lambda host, timeout=5.0: True)  # network is fine
    config = gai.Config(dest=tmp_path, download_workers=1, probe_after=3)
    rows = [gai.Row("A B", i, i, f"http://host{i % 2}.example/{i}.jpg", (0, 0, 1, 1), "0" * 64)
            for i in range(10)]
    _, verdicts, errors = gai.fetch_all(rows, config, log=lambda *a: None)
    assert len(calls) == 2 and errors == {"host not found": 10}
