"""FaceScrub: from the lists of URLs to verified, cropped face datasets (Parts 7-11's input).

The 2017 CSC411 Project 2 uses faces of six actors from FaceScrub (Fran Drescher, America
Ferrera, Kristin Chenoweth, Alec Baldwin, Bill Hader, Steve Carell). FaceScrub ships as two
tab-separated lists (``facescrub_actors.txt``, ``facescrub_actresses.txt``): name, image_id,
face_id, url, bbox ``x1,y1,x2,y2`` (on the raw pixels of the original) and the sha256 of the
original file. This script turns those lists into datasets:

    lists --(cache or download)--> originals --(sha256 == list?)--> decode --(bbox inside?)-->
    crop --> resize (antialiased) --> data/faces_60x60_gray.npz, data/faces_227x227_rgb.npz

Stages and what each one counts, per actor (the table printed at the end):
  * fetch: the original ``<surname>_<face_id><ext>`` is taken from a download cache
    (``<dest>/uncropped/``, then ``data/uncropped/``, then ``uncropped/`` of each $DEEPNN_DATA
    folder) -> "cached"; otherwise downloaded into ``<dest>/uncropped/`` (http/https only, a
    timeout on every request, retries with backoff, a size cap, several at once, written
    atomically) -> "downloaded" or "failed"; ``--offline`` never downloads -> "missing".
    A failed download leaves no file, so the next run asks again. Without a network a run
    stays quick: a host that does not resolve is asked once, and once several hosts in a row
    are unreachable and the course's host does not resolve either, the remaining downloads are
    skipped ("failed", reason "skipped: no network").
  * verify: the file's sha256 must equal the list's, else "sha256 mismatch" (HTML error pages,
    re-encoded or replaced images). Files that fail here stay in the cache and are NOT fetched
    again on a re-run (the host served those bytes; asking again gives the same answer);
    ``--refetch-mismatched`` re-downloads them.
  * decode: Pillow, no EXIF rotation (the bbox is on the raw pixels); palette, CMYK, RGBA, LA,
    16-bit and grayscale inputs are converted; truncated or unreadable files -> "undecodable";
    images over the decompression-bomb limit -> "too large"; a bbox outside the image or empty
    -> "bad bbox"; otherwise "kept".

Dataset file ``<dest>/faces_{H}x{W}_{mode}.npz`` (mode ``gray`` or ``rgb``), loadable with
``allow_pickle=False``: ``images`` uint8 (N,H,W) or (N,H,W,3); ``labels`` int64 (N,) indexing
``actors`` (K,) in the order asked; ``face_ids`` int64 (N,); ``sha256`` str (N,). Rows are sorted
by (label, face_id); every size/mode built in one run holds the same rows. ``load_faces()`` reads
it back for the other scripts.

Run:   python get_all_imgs.py               # both default datasets (downloads what is missing)
       python get_all_imgs.py --offline     # from the cache only
       python get_all_imgs.py --size 32 --mode gray --size 224 --mode rgb
       python get_all_imgs.py --quick       # 12 rows per actor; datasets go to <dest>/quick/
                                            # so the full ones are never overwritten
Cost:  with the cache of the six actors (1,252 originals, 1,008 verified), building both default
       datasets took 7.4 s on the 2-core machine (34 s while other jobs kept it at a load of
       10; a plain one-process crop without draft takes ~20 s). Each original is read, hashed
       and decoded once for all outputs, in a process pool; a JPEG is decoded at 1/2, 1/4 or
       1/8 scale (``Image.draft``) when the crop stays at least as large as every output.
       A re-run re-verifies and rebuilds from the cache; nothing is downloaded twice.
Reaches: 1,008 kept faces for the six actors (Drescher 150, Ferrera 176, Chenoweth 191,
       Baldwin 163, Hader 161, Carell 167), exactly the cached files whose sha256 matches.
"""
from __future__ import annotations

import argparse
import concurrent.futures as cf
import dataclasses
import hashlib
import io
import math
import os
import re
import socket
import sys
import threading
import time
import urllib.parse
import warnings
from collections import Counter
from pathlib import Path

import numpy as np

import deepnn_io

# ======================================================================================
# Settings
# ======================================================================================

SCRIPT = "get_all_imgs.py"
LIST_FILES = ("facescrub_actors.txt", "facescrub_actresses.txt")
DEFAULT_ACTORS = ("Fran Drescher", "America Ferrera", "Kristin Chenoweth",
                  "Alec Baldwin", "Bill Hader", "Steve Carell")  # the 2017 project's six
DEFAULT_OUTPUTS = ((60, 60, "gray"), (227, 227, "rgb"))  # Part 7-9 net; AlexNet input (Part 10)
MODES = ("gray", "rgb")


@dataclasses.dataclass(frozen=True)
class Config:
    actors: tuple = DEFAULT_ACTORS
    outputs: tuple = DEFAULT_OUTPUTS       # ((H, W, mode), ...)
    dest: Path = deepnn_io.DATA_DIR        # receives uncropped/ and the datasets
    out: Path = deepnn_io.PROJECT_DIR      # receives images/ and results/
    offline: bool = False                  # never download; use the caches alone
    refetch_mismatched: bool = False       # re-download cached files whose sha256 differs
    quick: bool = False
    quick_rows: int = 12                   # rows per actor in --quick: enough for a contact sheet
    seed: int = deepnn_io.DEFAULT_SEED
    workers: int = min(2, os.cpu_count() or 1)  # decode processes: this machine has 2 cores
    download_workers: int = 16             # threads: downloads wait on the network, not the CPU
    timeout: float = 15.0                  # seconds per request; image hosts are often slow
    retries: int = 2                       # retried only for network errors and 5xx, not 4xx
    backoff: float = 0.5                   # seconds before the first retry, doubled each time
    max_bytes: int = 20 << 20              # 20 MiB: far above a photo, stops an endless body
    max_pixels: int = 89_478_485           # Pillow's default bomb limit (~ 0.25 GiB of RGBA)
    probe_after: int = 8                   # unreachable hosts, no answer yet: check the network
    probe_host: str = "www.cs.toronto.edu"  # the course's host: resolves wherever there is DNS
    sheet_per_actor: int = 10              # crops per actor on the contact sheet


# ======================================================================================
# Reading the lists
# ======================================================================================

@dataclasses.dataclass(frozen=True)
class Row:
    name: str
    image_id: int
    face_id: int
    url: str
    bbox: tuple          # (x1, y1, x2, y2) on the raw pixels, x2/y2 exclusive
    sha256: str

    @property
    def surname(self) -> str:
        """Last word of the name, lower case; characters unsafe in a file name become '_'."""
        return re.sub(r"[^\w'-]", "_", self.name.split()[-1].lower())

    @property
    def filename(self) -> str:
        """Cache name: ``<surname>_<face_id><ext>``; ext from the URL path, lower case, else .jpg."""
        ext = os.path.splitext(urllib.parse.urlsplit(self.url).path)[1].lower()
        if not re.fullmatch(r"\.[a-z0-9]{1,5}", ext):
            ext = ".jpg"
        return f"{self.surname}_{self.face_id}{ext}"


_SHA_RE = re.compile(r"[0-9a-f]{64}")


def parse_line(line: str) -> Row | None:
    """One list line -> Row, or None when it is malformed (wrong field count, non-integer ids)."""
    fields = line.rstrip("\r\n").split("\t")
    if len(fields) != 6:
        return None
    name, image_id, face_id, url, bbox, sha = (f.strip() for f in fields)
    try:
        box = tuple(int(v) for v in bbox.split(","))
        ids = int(image_id), int(face_id)
    except ValueError:
        return None
    if not name or len(box) != 4 or not _SHA_RE.fullmatch(sha.lower()):
        return None
    return Row(name, ids[0], ids[1], url, box, sha.lower())


def read_list(path: Path) -> tuple[list[Row], list[int]]:
    """All rows of one list file, and the line numbers (1-based) of malformed lines."""
    rows, bad = [], []
    with open(path, encoding="utf-8", errors="replace") as f:
        for number, line in enumerate(f, start=1):
            if not line.strip():
                continue
            row = parse_line(line)
            if row is None:
                bad.append(number)
            else:
                rows.append(row)
    return rows, bad


class UnknownActorError(ValueError):
    """An actor asked for is in none of the lists."""


def select_rows(rows: list[Row], actors) -> dict[str, list[Row]]:
    """Rows of each asked actor, by face_id. Unknown names -> UnknownActorError listing the known."""
    by_name: dict[str, list[Row]] = {}
    for row in rows:
        by_name.setdefault(row.name, []).append(row)
    unknown = [a for a in actors if a not in by_name]
    if unknown:
        raise UnknownActorError(
            f"unknown actor name(s): {', '.join(map(repr, unknown))}. Names in the lists: "
            + ", ".join(sorted(by_name)))
    return {a: sorted(by_name[a], key=lambda r: r.face_id) for a in actors}


# ======================================================================================
# Fetching originals: cache first, then a careful download
# ======================================================================================

DownloadError = deepnn_io.DownloadError


def download(url: str, dest: Path, timeout: float, retries: int, backoff: float,
             max_bytes: int) -> Path:
    """GET ``url`` into ``dest`` with the shared downloader (atomic, http(s) only, also for
    redirects; retries with backoff; size cap). Raises DownloadError with the reason."""
    return deepnn_io.download_file(url, dest, timeout=timeout, retries=retries, backoff=backoff,
                                   max_bytes=max_bytes)


class Downloader:
    """``download`` for many rows at once, with two shortcuts that keep a run without network fast.

    * A host that did not resolve (or refused) is not asked again in this run.
    * When the first ``probe_after`` attempts all failed that way and none got any HTTP answer,
      the course's host is looked up once; if it does not resolve either, the machine has no
      network and the remaining downloads are skipped (counted as failed, with that reason).
    """

    def __init__(self, config: Config):
        self.config = config
        self.lock = threading.Lock()
        self.dead_hosts: set[str] = set()
        self.answers = 0          # downloads that reached a server (any HTTP status)
        self.unreachable = 0      # downloads that never reached one
        self.offline_reason = ""  # set once the network is known to be down

    def get(self, url: str, dest: Path) -> Path:
        host = (urllib.parse.urlsplit(url).hostname or "").lower()
        with self.lock:
            if self.offline_reason:
                raise DownloadError(self.offline_reason)
            if host in self.dead_hosts:
                raise DownloadError("host not found")
        c = self.config
        try:
            path = download(url, dest, c.timeout, c.retries, c.backoff, c.max_bytes)
        except DownloadError as err:
            if err.unreachable:
                self._note_unreachable(host)
            elif err.args[0].startswith(("HTTP", "larger", "redirect", "IncompleteRead")):
                with self.lock:
                    self.answers += 1
            raise
        with self.lock:
            self.answers += 1
        return path

    def _note_unreachable(self, host: str) -> None:
        with self.lock:
            self.dead_hosts.add(host)
            self.unreachable += 1
            probe = (self.answers == 0 and self.unreachable == self.config.probe_after
                     and not self.offline_reason)
        if probe and not resolves(self.config.probe_host):
            with self.lock:
                self.offline_reason = (f"skipped: no network ({self.config.probe_host} does not "
                                       "resolve)")


def resolves(host: str, timeout: float = 5.0) -> bool:
    """Whether ``host`` resolves within ``timeout`` seconds (getaddrinfo has no timeout itself)."""
    with cf.ThreadPoolExecutor(1) as pool:
        future = pool.submit(socket.getaddrinfo, host, 80)
        try:
            future.result(timeout=timeout)
            return True
        except Exception:  # noqa: BLE001 - gaierror, timeout: either way, not reachable
            return False


def cache_dirs(dest: Path) -> list[Path]:
    """Where originals are looked up, in order: <dest>/uncropped, data/uncropped, $DEEPNN_DATA/*/uncropped."""
    dirs = [dest / "uncropped"]
    for folder in deepnn_io.search_dirs():
        if folder / "uncropped" not in dirs:
            dirs.append(folder / "uncropped")
    return dirs


def fetch_all(rows: list[Row], config: Config, log=print) -> tuple[list, list, Counter]:
    """Path of each row's original (or None) and its fetch verdict; plus download error reasons.

    Verdicts: "cached", "downloaded", "failed", "missing" (offline and not cached).
    """
    dirs = cache_dirs(config.dest)
    paths, verdicts = [None] * len(rows), [None] * len(rows)
    to_get = []
    for i, row in enumerate(rows):
        for folder in dirs:
            candidate = folder / row.filename
            if candidate.is_file():
                paths[i], verdicts[i] = candidate, "cached"
                break
        if paths[i] is not None and config.refetch_mismatched and not config.offline \
                and deepnn_io.sha256_file(paths[i]) != row.sha256:
            paths[i] = None
        if paths[i] is None:
            if config.offline:
                verdicts[i] = "missing"
            else:
                to_get.append(i)
    errors: Counter = Counter()
    if to_get:
        log(f"downloading {len(to_get)} originals into {config.dest / 'uncropped'} "
            f"({config.download_workers} at once) ...")
        target = config.dest / "uncropped"
        downloader = Downloader(config)
        pool = cf.ThreadPoolExecutor(config.download_workers)
        try:
            futures = {pool.submit(downloader.get, rows[i].url, target / rows[i].filename): i
                       for i in to_get}
            for future in cf.as_completed(futures):
                i = futures[future]
                try:
                    paths[i], verdicts[i] = future.result(), "downloaded"
                except DownloadError as err:
                    verdicts[i] = "failed"
                    errors[str(err)] += 1
        except BaseException:
            # Ctrl-C or a bug: drop the queued downloads; the running ones end atomically,
            # so the cache holds only whole files and the next run resumes from it.
            pool.shutdown(wait=True, cancel_futures=True)
            raise
        pool.shutdown()
    return paths, verdicts, errors


# ======================================================================================
# Decoding and cropping (pure functions of one file; run in worker processes)
# ======================================================================================

def to_rgb(img):
    """Any Pillow mode -> RGB. Transparency is laid on white; 16/32-bit gray is scaled to 8 bits."""
    from PIL import Image
    if img.mode in ("I", "I;16", "I;16B", "I;16L", "I;16N", "F"):
        a = np.asarray(img, dtype=np.float64)
        peak = float(a.max()) if a.size else 0.0
        # 16-bit files (mode I;16, or I when Pillow widens them) span 0..65535; 8-bit data in a
        # 32-bit mode spans 0..255; anything wider is scaled by its own maximum.
        top = 65535.0 if img.mode.startswith("I;16") or 255 < peak <= 65535 else max(peak, 255.0)
        a = np.clip(np.rint(a * (255.0 / top)), 0, 255).astype(np.uint8)
        return Image.fromarray(a, "L").convert("RGB")
    if img.mode == "P" and "transparency" in img.info:
        img = img.convert("RGBA")
    if img.mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        rgba = img.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(white, rgba).convert("RGB")
    return img.convert("RGB")


def bbox_ok(bbox, width: int, height: int) -> bool:
    """The bbox (x1, y1, x2, y2), x2/y2 exclusive, is non-empty and inside a width x height image."""
    x1, y1, x2, y2 = bbox
    return 0 <= x1 < x2 <= width and 0 <= y1 < y2 <= height


def draft_scale(bbox, outputs) -> int:
    """Largest JPEG DCT reduction (1, 2, 4, 8) that keeps the crop >= every output size."""
    x1, y1, x2, y2 = bbox
    need_w = max(w for _, w, _ in outputs)
    need_h = max(h for h, _, _ in outputs)
    for scale in (8, 4, 2, 1):
        if (x2 - x1) / scale >= need_w and (y2 - y1) / scale >= need_h:
            return scale
    return 1


def crop_faces(data: bytes, bbox, outputs, max_pixels: int) -> tuple[str, list | None]:
    """Decode one original (its bytes) once, crop ``bbox``, resize to each (H, W, mode) of ``outputs``.

    Returns ("kept", [uint8 (H,W) or (H,W,3) per output]) or (reason, None) with reason in
    "undecodable", "too large", "bad bbox". No EXIF rotation: the bbox is on the raw pixels.
    A JPEG whose crop is at least twice every output side is decoded at 1/2, 1/4 or 1/8 scale
    (``Image.draft``, the DCT does the reduction) and the bbox is scaled to that pixel grid.
    """
    from PIL import Image
    Image.MAX_IMAGE_PIXELS = max_pixels
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as img:
                width, height = img.size
                if not bbox_ok(bbox, width, height):
                    return "bad bbox", None
                box = tuple(float(v) for v in bbox)
                if img.format == "JPEG":
                    scale = draft_scale(bbox, outputs)
                    if scale > 1:
                        drafted = img.draft(img.mode, (math.ceil(width / scale),
                                                       math.ceil(height / scale)))
                        if drafted is not None and drafted[1] is not None:
                            f = width / drafted[1][2]  # the exact factor Pillow chose
                            box = tuple(v / f for v in box)
                img.load()  # raises OSError on truncated data
                # The integer region covering the (possibly fractional) box, then the box in it.
                left, top = math.floor(box[0]), math.floor(box[1])
                right = min(math.ceil(box[2]), img.size[0])
                bottom = min(math.ceil(box[3]), img.size[1])
                region = to_rgb(img.crop((left, top, right, bottom)))
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        return "too large", None
    except Exception:  # noqa: BLE001 - any decoder failure is a counted reason, not a crash
        return "undecodable", None
    inner = (box[0] - left, box[1] - top, box[2] - left, box[3] - top)
    gray = None
    crops = []
    for h, w, mode in outputs:
        if mode == "gray":
            gray = gray or region.convert("L")
            source = gray
        else:
            source = region
        if source.size == (w, h) and inner == (0.0, 0.0, float(w), float(h)):
            out = source  # already the size: no resampling, pixel-exact
        else:
            out = source.resize((w, h), Image.LANCZOS, box=inner)
        crops.append(np.asarray(out, dtype=np.uint8).copy())
    return "kept", crops


def check_and_crop(task) -> tuple[int, str, list | None]:
    """One row: read the original once, compare its sha256 with the list's, then crop it.

    ``task`` = (index, path, sha256, bbox, outputs, max_pixels); returns (index, verdict, crops).
    """
    index, path, sha, bbox, outputs, max_pixels = task
    try:
        data = Path(path).read_bytes()
    except OSError:
        return index, "undecodable", None
    if hashlib.sha256(data).hexdigest() != sha:
        return index, "sha256 mismatch", None
    return (index, *crop_faces(data, bbox, outputs, max_pixels))


def progress(iterable, total: int, desc: str):
    """A tqdm bar on an interactive terminal; the plain iterable otherwise (logs, tests)."""
    if not sys.stderr.isatty():
        return iterable
    try:
        from tqdm import tqdm
    except ImportError:
        return iterable
    return tqdm(iterable, total=total, desc=desc, unit="file", leave=False)


def verify_and_crop(rows, paths, config: Config):
    """sha256 check, then decode+crop of the matching files. Returns (verdicts, crops by index).

    With several workers the files are shared out to a process pool (decoding is the cost).
    """
    tasks = [(i, str(path), row.sha256, row.bbox, config.outputs, config.max_pixels)
             for i, (row, path) in enumerate(zip(rows, paths)) if path is not None]
    if config.workers > 1 and len(tasks) > 32:
        import multiprocessing
        context = multiprocessing.get_context("fork" if sys.platform == "linux" else "spawn")
        with cf.ProcessPoolExecutor(config.workers, mp_context=context) as pool:
            results = list(progress(pool.map(check_and_crop, tasks, chunksize=8), len(tasks),
                                    "verify + crop"))
    else:
        from PIL import Image
        saved = Image.MAX_IMAGE_PIXELS
        try:
            results = [check_and_crop(t) for t in tasks]
        finally:
            Image.MAX_IMAGE_PIXELS = saved
    verdicts = {index: verdict for index, verdict, _ in results}
    crops = {index: images for index, _, images in results if images is not None}
    return verdicts, crops


# ======================================================================================
# Datasets
# ======================================================================================

def parse_size(text) -> tuple[int, int]:
    """'60' -> (60, 60); '60x48' -> (60, 48) as (H, W); also a tuple/list of two ints."""
    if isinstance(text, (tuple, list)):
        h, w = (int(v) for v in text)
    else:
        parts = str(text).lower().strip().split("x")
        if len(parts) == 1:
            parts = parts * 2
        if len(parts) != 2 or not all(p.strip().isdigit() for p in parts):
            raise ValueError(f"size {text!r}: expected N or HxW, e.g. 60 or 227x227")
        h, w = (int(p) for p in parts)
    if not (1 <= h <= 4096 and 1 <= w <= 4096):
        raise ValueError(f"size {text!r}: sides must be between 1 and 4096")
    return h, w


def dataset_name(size=(60, 60), mode: str = "gray") -> str:
    h, w = parse_size(size)
    if mode not in MODES:
        raise ValueError(f"mode {mode!r}: expected one of {MODES}")
    return f"faces_{h}x{w}_{mode}.npz"


def dataset_path(size=(60, 60), mode: str = "gray", dest: Path | None = None) -> Path:
    """Where a dataset is written: <dest>/faces_{H}x{W}_{mode}.npz (dest: the project's data/)."""
    return Path(dest or deepnn_io.DATA_DIR) / dataset_name(size, mode)


def build_command(size=(60, 60), mode: str = "gray") -> str:
    h, w = parse_size(size)
    extra = "" if ((h, w), mode) in (((60, 60), "gray"), ((227, 227), "rgb")) \
        else f" --size {h}x{w} --mode {mode}"
    return f"python get_all_imgs.py{extra}"


def quick_dataset_path(size=(60, 60), mode: str = "gray") -> Path | None:
    """The small dataset that ``get_all_imgs.py --quick`` wrote to data/quick/, when a --quick
    run is to use it: the full dataset is nowhere on the search path. Otherwise None."""
    small = dataset_path(size, mode, deepnn_io.DATA_DIR / "quick")
    if deepnn_io.locate(dataset_name(size, mode)) is None and small.exists():
        return small
    return None


def load_faces(size=(60, 60), mode: str = "gray", quick: bool = False) -> dict[str, np.ndarray]:
    """The face dataset of ``size`` (H, W) and ``mode`` as a dict of arrays (see the docstring).

    Found through data/ then $DEEPNN_DATA; MissingInputError says how to build it when absent.
    With ``quick`` (a --quick run of faces.py or deepfaces.py) the small datasets that
    ``get_all_imgs.py --quick`` writes to data/quick/ serve when the full ones are absent.
    """
    name = dataset_name(size, mode)
    path = deepnn_io.locate(name) or (quick_dataset_path(size, mode) if quick else None)
    if path is None:
        where = [str(d) for d in deepnn_io.search_dirs()] + (
            [str(deepnn_io.DATA_DIR / "quick")] if quick else [])
        raise deepnn_io.MissingInputError(
            f"Face dataset '{name}' was not found (looked in: {', '.join(where)}). Build it "
            f"with: {build_command(size, mode)}"
            + (" (or, for a --quick run, add --quick)" if quick else ""))
    data = deepnn_io.load_npz(path)
    missing = {"images", "labels", "actors", "face_ids", "sha256"} - set(data)
    if missing:
        raise deepnn_io.InputFormatError(f"{path}: missing arrays {sorted(missing)}; rebuild it "
                                         f"with: {build_command(size, mode)}")
    return data


def write_datasets(rows, labels, crops, config: Config, dest: Path) -> list[Path]:
    """One .npz per output, rows sorted by (label, face_id); returns the written paths."""
    order = sorted(crops, key=lambda i: (labels[i], rows[i].face_id))
    written = []
    for k, (h, w, mode) in enumerate(config.outputs):
        shape = (len(order), h, w) + ((3,) if mode == "rgb" else ())
        images = np.zeros(shape, dtype=np.uint8)
        for n, i in enumerate(order):
            images[n] = crops[i][k]
        # not zipped: photos barely compress (zlib cost ~8 s for ~20% smaller files)
        written.append(deepnn_io.save_npz_atomic(
            dataset_path((h, w), mode, dest), compress=False,
            images=images,
            labels=np.array([labels[i] for i in order], dtype=np.int64),
            actors=np.array(config.actors, dtype=str),
            face_ids=np.array([rows[i].face_id for i in order], dtype=np.int64),
            sha256=np.array([rows[i].sha256 for i in order], dtype=str)))
    return written


# ======================================================================================
# Summary table and contact sheet
# ======================================================================================

COLUMNS = ("rows", "cached", "downloaded", "failed", "missing", "sha256 mismatch",
           "undecodable", "too large", "bad bbox", "kept")


def summary_table(counts: dict[str, Counter], actors) -> str:
    """Fixed-width table: one line per actor plus a total line."""
    widths = [max(len(c), 6) + 2 for c in COLUMNS]
    head = f"{'actor':<20}" + "".join(f"{c:>{n}}" for c, n in zip(COLUMNS, widths))
    lines = [head, "-" * len(head)]
    total = Counter()
    for actor in list(actors) + ["total"]:
        c = counts[actor] if actor != "total" else total
        lines.append(f"{actor:<20}" + "".join(f"{c[col]:>{n}}" for col, n in zip(COLUMNS, widths)))
        if actor != "total":
            total.update(c)
    return "\n".join(lines)


def contact_sheet(images, labels, actors, per_actor: int, rng, out_dir: Path, title: str) -> str:
    """One row of ``per_actor`` randomly drawn kept crops per actor, as one mosaic. Returns its path."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    h, w = images[0].shape[:2] if len(images) else (8, 8)
    gap = max(2, w // 20)
    mosaic = np.full((len(actors) * (h + gap), per_actor * (w + gap), 3), 255, dtype=np.uint8)
    counts = []
    for a in range(len(actors)):
        idx = np.flatnonzero(labels == a)
        counts.append(idx.size)
        pick = np.sort(rng.choice(idx, size=min(per_actor, idx.size), replace=False))
        for j, i in enumerate(pick):
            img = images[i] if images[i].ndim == 3 else np.repeat(images[i][..., None], 3, 2)
            y, x = a * (h + gap), j * (w + gap)
            mosaic[y:y + h, x:x + w] = img
    fig, ax = plt.subplots(figsize=(1.3 * per_actor, 1.35 * len(actors) + 0.5))
    ax.imshow(mosaic, interpolation="nearest")
    ax.set_yticks([a * (h + gap) + h / 2 for a in range(len(actors))])
    ax.set_yticklabels([f"{actor}\n({n} kept)" for actor, n in zip(actors, counts)], fontsize=9)
    ax.set_xticks([j * (w + gap) + w / 2 for j in range(per_actor)])
    ax.set_xticklabels([str(j + 1) for j in range(per_actor)], fontsize=7)
    ax.set_xlabel("random sample of kept crops (left to right by face_id)")
    ax.set_title(title, fontsize=10)
    return deepnn_io.save_figure(fig, out_dir, "get_all_imgs_contact_sheet", dpi=100)


# ======================================================================================
# The pipeline
# ======================================================================================

def run(config: Config, log=print) -> dict:
    """Lists -> fetch -> verify -> crop -> datasets, table, contact sheet, results. Returns metrics."""
    clock = time.perf_counter()
    timings = {}
    config.dest.mkdir(parents=True, exist_ok=True)

    all_rows, malformed = [], {}
    for name in LIST_FILES:
        path = deepnn_io.find_input(name, download=not config.offline, timeout=config.timeout,
                                    dest_dir=config.dest)
        rows, bad = read_list(path)
        all_rows += rows
        if bad:
            malformed[str(path)] = bad
    for path, bad in malformed.items():
        log(f"warning: {path}: {len(bad)} malformed line(s) skipped (line "
            + ", ".join(map(str, bad[:10])) + (" ..." if len(bad) > 10 else "") + ")")
    by_actor = select_rows(all_rows, config.actors)
    if config.quick:
        by_actor = {a: r[:config.quick_rows] for a, r in by_actor.items()}
    rows = [r for a in config.actors for r in by_actor[a]]
    labels = [config.actors.index(r.name) for r in rows]
    timings["read_lists"] = time.perf_counter() - clock

    t = time.perf_counter()
    paths, fetched, download_errors = fetch_all(rows, config, log)
    timings["fetch"] = time.perf_counter() - t

    t = time.perf_counter()
    verdicts, crops = verify_and_crop(rows, paths, config)
    timings["verify_crop"] = time.perf_counter() - t

    counts = {a: Counter() for a in config.actors}
    for i, row in enumerate(rows):
        c = counts[row.name]
        c["rows"] += 1
        c[fetched[i]] += 1
        if i in verdicts:
            c[verdicts[i]] += 1

    t = time.perf_counter()
    dataset_dir = config.dest / "quick" if config.quick else config.dest
    written = write_datasets(rows, labels, crops, config, dataset_dir)
    timings["write"] = time.perf_counter() - t

    t = time.perf_counter()
    rng = deepnn_io.make_rng(config.seed)
    sheet_k = max(range(len(config.outputs)), key=lambda k: config.outputs[k][0])
    order = sorted(crops, key=lambda i: (labels[i], rows[i].face_id))
    sheet_images = [crops[i][sheet_k] for i in order]
    sheet_labels = np.array([labels[i] for i in order], dtype=np.int64)
    h, w, mode = config.outputs[sheet_k]
    figure = contact_sheet(sheet_images, sheet_labels, config.actors,
                           config.sheet_per_actor, rng, config.out,
                           f"Kept FaceScrub crops ({h}x{w} {mode}), seed {config.seed}")
    timings["contact_sheet"] = time.perf_counter() - t
    seconds = time.perf_counter() - clock

    log(summary_table(counts, config.actors))
    if download_errors:
        log("download failures: " + ", ".join(f"{k} x{v}" for k, v in download_errors.most_common()))
    for path in written:
        log(f"wrote {path} ({len(crops)} faces)")
    log(f"contact sheet: {figure}; {seconds:.1f} s")

    total = Counter()
    for c in counts.values():
        total.update(c)
    metrics = {
        "rows_total": total["rows"],
        "kept_total": total["kept"],
        **{f"kept_{a.split()[-1].lower()}": counts[a]["kept"] for a in config.actors},
        "cached_total": total["cached"],
        "downloaded_total": total["downloaded"],
        "download_failed_total": total["failed"],
        "missing_offline_total": total["missing"],
        "sha256_mismatch_total": total["sha256 mismatch"],
        "undecodable_total": total["undecodable"],
        "too_large_total": total["too large"],
        "bad_bbox_total": total["bad bbox"],
        "malformed_lines_total": sum(len(b) for b in malformed.values()),
        "seconds": round(seconds, 3),
    }
    settings = {k: (str(v) if isinstance(v, Path) else v)
                for k, v in dataclasses.asdict(config).items()}
    deepnn_io.write_results(  # results/get_all_imgs.json: the script has no parts
        config.out, SCRIPT, None, seed=config.seed, quick=config.quick, settings=settings,
        metrics=metrics, figures=[figure], seconds=seconds,
        timings={k: round(v, 3) for k, v in timings.items()},
        extra={"per_actor": {a: dict(counts[a]) for a in config.actors},
               "download_errors": dict(download_errors),
               "datasets": [str(p) for p in written]})
    return metrics


# ======================================================================================
# Command line
# ======================================================================================

def parse_outputs(sizes, modes) -> tuple:
    """Pair --size and --mode values: one mode for all sizes, or one per size."""
    if not sizes and not modes:
        return DEFAULT_OUTPUTS
    flat = []
    for s in sizes or ["60"]:
        flat += [p for p in re.split(r"[\s,;]+", str(s)) if p]
    mode_list = []
    for m in modes or ["gray"]:
        mode_list += [p for p in re.split(r"[\s,;]+", m) if p]
    bad = [m for m in mode_list if m not in MODES]
    if bad:
        raise ValueError(f"mode(s) {bad}: expected gray or rgb")
    if len(mode_list) == 1:
        mode_list = mode_list * len(flat)
    elif len(flat) == 1:
        flat = flat * len(mode_list)
    if len(mode_list) != len(flat):
        raise ValueError(f"{len(flat)} sizes but {len(mode_list)} modes: give one mode, or one "
                         "per size")
    outputs = []
    for s, m in zip(flat, mode_list):
        out = (*parse_size(s), m)
        if out not in outputs:
            outputs.append(out)
    return tuple(outputs)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    deepnn_io.add_common_args(parser)
    what = parser.add_argument_group("what to build")
    what.add_argument("--actors", nargs="+", default=None,
                      help="full names from the lists (default: the six of the 2017 project); "
                           "one argument per name, or one comma-separated argument")
    what.add_argument("--size", action="append", default=None,
                      help="output size N or HxW; repeat or list for several (default 60 and 227)")
    what.add_argument("--mode", action="append", default=None,
                      help="gray or rgb: one for all sizes, or one per --size (default gray "
                           "when --size is given)")
    what.add_argument("--dest", type=Path, default=deepnn_io.DATA_DIR,
                      help="folder for uncropped/ and the datasets (default: the project's data/)")
    fetch = parser.add_argument_group("fetching")
    fetch.add_argument("--offline", action="store_true", help="use the caches only, never download")
    fetch.add_argument("--refetch-mismatched", action="store_true",
                       help="re-download cached originals whose sha256 differs from the list")
    fetch.add_argument("--timeout", type=float, default=Config.timeout, help="seconds per request")
    fetch.add_argument("--retries", type=int, default=Config.retries, help="retries per download")
    fetch.add_argument("--backoff", type=float, default=Config.backoff,
                       help="seconds before the first retry, doubled after each")
    fetch.add_argument("--download-workers", type=int, default=Config.download_workers,
                       help="downloads at once")
    parser.add_argument("--max-pixels", type=int, default=Config.max_pixels,
                        help="decompression-bomb limit: larger images are counted 'too large'")
    parser.add_argument("--workers", type=int, default=Config.workers,
                        help="decode processes (default: min(2, CPUs))")
    return parser


def config_from_args(args) -> Config:
    actors = DEFAULT_ACTORS
    if args.actors:
        joined = " ".join(args.actors)
        actors = tuple(a.strip() for a in (joined.split(",") if "," in joined else args.actors)
                       if a.strip())
    if args.mode and not args.size:
        raise ValueError("--mode needs --size")
    return Config(actors=actors, outputs=parse_outputs(args.size, args.mode),
                  dest=Path(args.dest), out=Path(args.out), offline=args.offline,
                  refetch_mismatched=args.refetch_mismatched, quick=args.quick, seed=args.seed,
                  workers=max(1, args.workers), download_workers=max(1, args.download_workers),
                  timeout=args.timeout, retries=max(0, args.retries),
                  backoff=max(0.0, args.backoff), max_pixels=args.max_pixels)


def main(argv=None) -> dict:
    args = build_parser().parse_args(argv)
    try:
        config = config_from_args(args)
    except ValueError as err:
        deepnn_io.fail(str(err))
    print("settings: " + ", ".join(f"{k}={v}" for k, v in dataclasses.asdict(config).items()))
    try:
        return run(config)
    except UnknownActorError as err:
        deepnn_io.fail(str(err))


if __name__ == "__main__":
    deepnn_io.run_cli(main)
