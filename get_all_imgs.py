"""FaceScrub: from the lists of URLs to verified, cropped face datasets (the input of Parts 7-11).

FaceScrub's two tab-separated lists hold one face per line: name, image_id, face_id, url, bbox
``x1,y1,x2,y2`` (raw pixels of the original) and the original's sha256. Per actor set:

    list row --(cache or download)--> original --(sha256 == list's?)--> decode (no EXIF rotation)
        --> crop img[y1:y2, x1:x2] --> gray or RGB --> resize (antialiased) --> one dataset row

Each stage counts, per actor, what it lets through. Originals are looked up in ``uncropped/`` of
<dest>, data/ and each $DEEPNN_DATA folder; downloads go to <dest>'s. A file whose sha256 is not
the list's (an error page, a re-encoded image) stays there: a re-run does not ask its host again.

Run:  python get_all_imgs.py    # the six actors of the handout, into data/ (--quick: data/quick/)
"""
import contextlib
import difflib
import hashlib
import io
import math
import os
import queue
import re
import sys
import threading
import time
import urllib.parse
import warnings
from collections import Counter, deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar, NamedTuple

import numpy as np
import requests
from PIL import Image
from requests.adapters import HTTPAdapter
from tqdm import tqdm
from urllib3.util.retry import Retry

from apparatus import facedata, inputs, runs
from apparatus.inputs import UserError
from apparatus.runs import setting

LIST_FILES = ("facescrub_actors.txt", "facescrub_actresses.txt")


@dataclass(frozen=True)
class Build:
    outputs: tuple = ((60, 60, "gray"), (227, 227, "rgb"))  # (H, W, mode): Parts 7-9; AlexNet
    rows_per_actor: int = setting(0, ge=0)  # 0: every row of the lists; --quick takes the first few
    sheet_per_actor: int = setting(10, ge=1)  # crops per actor on the contact sheet
    download_workers: int = setting(8, ge=1)  # threads: downloads wait on the network
    retries: int = setting(2, ge=0)  # per request, for read errors and 5xx (with backoff)
    request_timeout: float = setting(10.0, gt=0)  # seconds of silence that end a request
    file_deadline: float = setting(30.0, gt=0)  # seconds per file: a trickling host can't hold one
    max_bytes: int = setting(20 << 20, ge=1)  # far above any photo: stops an endless body
    no_network_after: int = setting(16, ge=1)  # connection failures with no answer yet: stop trying
    QUICK: ClassVar[dict] = {"rows_per_actor": 12}  # enough rows for a contact sheet

    def __post_init__(self):  # runs.start builds the settings, so a bad --set stops before work
        if not self.outputs or not all(
                isinstance(out, tuple) and len(out) == 3 and out[2] in ("gray", "rgb")
                and all(isinstance(s, int) and s >= 1 for s in out[:2]) for out in self.outputs):
            raise UserError(f"--set outputs={self.outputs!r}: give (H, W, 'gray' or 'rgb') per "
                            "dataset, sides >= 1; e.g. --set \"outputs=((60, 60, 'gray'),)\"")


# ---- Reading the lists --------------------------------------------------------------------------

class Row(NamedTuple):
    name: str
    image_id: int
    face_id: int
    url: str
    bbox: tuple      # (x1, y1, x2, y2) on the raw pixels of the original; x2, y2 exclusive
    sha256: str      # of the original file

    @property
    def filename(self) -> str:
        """Cache name ``<surname>_<face_id><ext>``: ext from the URL, lower case, else .jpg."""
        surname = re.sub(r"[^\w'-]", "_", self.name.split()[-1].lower())  # no '/' in a name
        ext = os.path.splitext(urllib.parse.urlsplit(self.url).path)[1].lower()
        return f"{surname}_{self.face_id}" + (ext if re.fullmatch(r"\.[a-z0-9]{1,5}", ext)
                                               else ".jpg")


def parse_line(line: str) -> Row | None:
    """One list line -> Row, or None when malformed (field count, ids, bbox or sha256)."""
    try:
        name, image_id, face_id, url, bbox, sha = (f.strip() for f in line.split("\t"))
        row = Row(name, int(image_id), int(face_id), url, tuple(map(int, bbox.split(","))),
                  sha.lower())
    except ValueError:  # not six fields, or an id or the bbox not integers
        return None
    ok = name and len(row.bbox) == 4 and re.fullmatch(r"[0-9a-f]{64}", row.sha256)
    return row if ok else None


def read_lists(folder: Path, offline: bool) -> tuple[list[Row], int, int]:
    """The rows of both lists, and the counts of malformed lines and repeated face_ids dropped."""
    rows, malformed, duplicates = {}, 0, 0  # face_id -> Row
    for name in LIST_FILES:
        path = inputs.find_input(name, download=not offline, folder=folder)
        with open(path, encoding="utf-8", errors="replace") as f:
            for number, line in enumerate(f, start=1):
                if (row := parse_line(line)) is not None:
                    duplicates += row.face_id in rows
                    rows.setdefault(row.face_id, row)
                elif line.strip():
                    malformed += 1
                    print(f"warning: {path}:{number}: malformed line skipped")
    if duplicates:
        print(f"warning: {duplicates} duplicate rows (a face_id listed before) dropped")
    return list(rows.values()), malformed, duplicates


def select_rows(rows: list[Row], actors, per_actor: int = 0) -> list[Row]:
    """The rows of ``actors`` in label order, the first ``per_actor`` (0: all) by face_id each."""
    names = sorted({r.name for r in rows})
    if unknown := [a for a in actors if a not in names]:
        hints = [f"{a!r} (close: {', '.join(difflib.get_close_matches(a, names, 3, 0.5)) or '-'})"
                 for a in unknown]
        raise UserError(f"--actors: not in the FaceScrub lists: {'; '.join(hints)}. "
                        f"The lists hold: {', '.join(names)}")
    by_id = sorted(rows, key=lambda r: r.face_id)
    return [r for a in actors for r in [r for r in by_id if r.name == a][:per_actor or None]]


# ---- One original -> its crops ------------------------------------------------------------------

def to_rgb(img):
    """Any Pillow mode -> RGB: transparency laid on white, 16- and 32-bit gray scaled to 8 bits."""
    if img.mode in ("I", "I;16", "I;16B", "I;16L", "I;16N", "F"):
        a = np.asarray(img, dtype=np.float64)
        top = 65535.0 if img.mode.startswith("I;16") or a.max(initial=0) > 255 else 255.0
        return Image.fromarray(np.uint8(np.clip(np.rint(a * (255.0 / top)), 0, 255))).convert("RGB")
    if img.mode in ("RGBA", "LA", "PA", "RGBa", "La") or "transparency" in img.info:
        white = Image.new("RGBA", img.size, (255, 255, 255, 255))
        return Image.alpha_composite(white, img.convert("RGBA")).convert("RGB")
    return img.convert("RGB")


def draft_scale(bbox, outputs) -> int:
    """Largest JPEG DCT reduction (8, 4, 2, 1) that keeps the crop at least every output's size."""
    x1, y1, x2, y2 = bbox
    return next((s for s in (8, 4, 2) if all((x2 - x1) / s >= w and (y2 - y1) / s >= h
                                             for h, w, _ in outputs)), 1)


def crop_faces(data: bytes, bbox, outputs) -> tuple[str, list | None]:
    """One original's bytes cropped to ``bbox``, resized to each (H, W, mode) of ``outputs``:
    ("kept", [uint8 array per output]) or (reason, None). No EXIF rotation. A JPEG is decoded
    at 1/2, 1/4 or 1/8 scale (``Image.draft``) when the crop stays as large as every output."""
    try:
        with (warnings.catch_warnings(action="error", category=Image.DecompressionBombWarning),
              Image.open(io.BytesIO(data)) as img):
            (width, height), (x1, y1, x2, y2) = img.size, bbox
            if not (0 <= x1 < x2 <= width and 0 <= y1 < y2 <= height):  # empty or outside
                return "bad bbox", None
            box = tuple(float(v) for v in bbox)
            scale = draft_scale(bbox, outputs) if img.format == "JPEG" else 1
            if scale > 1:
                drafted = img.draft(img.mode, (math.ceil(width / scale), math.ceil(height / scale)))
                if drafted:  # None when Pillow cannot draft this file
                    f = width / drafted[1][2]  # the exact factor Pillow chose
                    box = tuple(v / f for v in box)
            img.load()  # raises OSError on truncated data
            # the whole pixels that cover the (maybe fractional) box; the box within them
            left, top, right, bottom = (math.floor(box[0]), math.floor(box[1]),
                                        math.ceil(box[2]), math.ceil(box[3]))
            region = to_rgb(img.crop((left, top, min(right, img.width), min(bottom, img.height))))
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        return "too large", None
    except Exception:  # noqa: BLE001 - any decoder failure is a counted reason, not a crash
        return "undecodable", None
    inner = (box[0] - left, box[1] - top, box[2] - left, box[3] - top)
    crops = []
    for h, w, mode in outputs:  # antialiased; a box already of the size is copied, pixel-exact
        source = region.convert("L") if mode == "gray" else region
        crops.append(np.array(source.resize((w, h), Image.LANCZOS, box=inner), np.uint8))
    return "kept", crops


def verify_and_crop(copies: list[Path], row: Row, outputs):
    """The first copy whose sha256 is the list's, cropped; else ("sha256 mismatch" | None, None)."""
    for path in copies:
        with contextlib.suppress(OSError):
            data = path.read_bytes()
            if hashlib.sha256(data).hexdigest() == row.sha256:
                return crop_faces(data, row.bbox, outputs)
    return "sha256 mismatch" if copies else None, None


# ---- Fetching originals: the caches, then downloads ---------------------------------------------

class DownloadFailed(Exception):
    """A download cut short on purpose; its message is the reason counted."""


def download(session, url: str, dest: Path, settings: Build, deadline: float) -> str:
    """GET ``url`` into ``dest`` atomically: "" when done, else the reason it failed. Read as it
    arrives (``read1``), so the deadline holds however slowly the bytes trickle."""
    deadline = min(deadline, time.monotonic() + settings.file_deadline)
    try:
        with session.get(url, stream=True, timeout=settings.request_timeout) as response:
            if response.status_code >= 400:
                return f"HTTP {response.status_code}"
            with inputs.atomic_path(dest) as tmp, open(tmp, "wb") as f:
                while chunk := response.raw.read1(1 << 16, decode_content=True):
                    if time.monotonic() > deadline:
                        raise DownloadFailed("deadline")
                    if f.tell() + len(chunk) > settings.max_bytes:
                        raise DownloadFailed("too large")
                    f.write(chunk)
    except Exception as err:  # noqa: BLE001 - network, HTTP and protocol errors: a counted reason
        return str(err) if isinstance(err, DownloadFailed) else (
            "timeout" if "timed out" in str(err).lower() else type(err).__name__)
    return ""


def download_all(jobs: dict[int, tuple[str, Path]], settings: Build, budget: float) -> dict:
    """``{index: (url, path)}`` fetched by daemon threads (Ctrl-C ends the run at once) ->
    ``{index: reason}`` ("" = done). Past ``budget`` seconds, or once ``no_network_after``
    hosts refused and none answered, the rest fail at once."""
    deadline = time.monotonic() + budget
    answered, refused = [0], [0]  # any HTTP answer / connection failures, counted by all threads
    todo, done = deque(jobs.items()), queue.SimpleQueue()  # a deque pops thread-safely

    def worker():
        session = requests.Session()
        retry = Retry(total=settings.retries, connect=0,  # no route or no DNS: no second try
                      backoff_factor=0.5, status_forcelist=(502, 503, 504))
        for prefix in ("http://", "https://"):
            session.mount(prefix, HTTPAdapter(max_retries=retry))
        with contextlib.suppress(IndexError):  # the deque is empty: all done
            while True:
                index, (url, path) = todo.popleft()
                if time.monotonic() > deadline:
                    reason = "--timeout spent"
                elif refused[0] >= settings.no_network_after and not answered[0]:
                    reason = "skipped: no network"
                else:
                    reason = download(session, url, path, settings, deadline)
                    (refused if reason == "ConnectionError" else answered)[0] += 1
                done.put((index, reason))

    for _ in range(min(settings.download_workers, len(jobs))):
        threading.Thread(target=worker, daemon=True).start()
    reasons = {}
    for _ in tqdm(range(len(jobs)), "download", disable=None, leave=False):
        while True:  # short waits: a wait without a timeout would not see Ctrl-C until one ends
            with contextlib.suppress(queue.Empty):
                index, reasons[index] = done.get(timeout=0.1)
                break
    return reasons


# ---- The build: lists -> originals -> crops -> datasets, table, contact sheet, results ----------

# what each stage counts (the table's columns) -> the metric that records its total
STAGES = {"rows": "rows_total", "cached": "cached_total", "downloaded": "downloaded_total",
          "failed": "download_failed_total", "missing": "missing_offline_total",
          "sha256 mismatch": "sha256_mismatch_total", "undecodable": "undecodable_total",
          "too large": "too_large_total", "bad bbox": "bad_bbox_total", "kept": "kept_total"}


def fetch(rows: list[Row], dest: Path, offline: bool, settings: Build, budget: float):
    """Each row's copies of its original and fetch verdict; the download failures by reason."""
    cache = Path(dest) / "uncropped"
    dirs = dict.fromkeys((d / "uncropped").resolve() for d in [Path(dest), *inputs.search_dirs()])
    for stale in cache.glob(".*.part"):  # left by a run stopped mid-download
        stale.unlink(missing_ok=True)
    copies = [[d / r.filename for d in dirs if (d / r.filename).is_file()] for r in rows]
    jobs = {} if offline else {i: (r.url, cache / r.filename)
                               for i, r in enumerate(rows) if not copies[i]}
    reasons = download_all(jobs, settings, budget) if jobs else {}
    verdicts = ["cached" if found else "missing" for found in copies]
    for i, reason in reasons.items():
        verdicts[i], copies[i] = ("failed", []) if reason else ("downloaded", [jobs[i][1]])
    return copies, verdicts, Counter(r for r in reasons.values() if r)


def build(run, settings: Build, actors, dest: Path, offline: bool, budget: float, force: bool):
    """Build the datasets of ``actors`` into ``dest`` (``dest/quick`` for --quick); the metrics."""
    clock = time.perf_counter()
    rows, malformed, duplicates = read_lists(dest, offline)
    rows = select_rows(rows, actors, settings.rows_per_actor)
    copies, verdicts, errors = fetch(rows, dest, offline, settings, budget)

    counts = {a: Counter() for a in actors}
    kept = []  # (label, face_id, sha256, crops), in the order of rows: by label, then face_id
    with ThreadPoolExecutor(os.cpu_count() or 1) as pool:  # PIL decodes and resizes off the GIL
        checked = tqdm(pool.map(verify_and_crop, copies, rows, [settings.outputs] * len(rows)),
                       "verify + crop", total=len(rows), disable=None, leave=False)
        for row, verdict, (crop_verdict, crops) in zip(rows, verdicts, checked):
            counts[row.name].update(["rows", verdict] + [crop_verdict] * bool(crop_verdict))
            if crops:
                kept.append((actors.index(row.name), row.face_id, row.sha256, crops))
    total = sum(counts.values(), Counter())
    widths = {c: max(len(c), 6) + 2 for c in STAGES}  # the table: a line per actor, and a total
    lines = {"actor": dict(zip(STAGES, STAGES)), **counts, "total": total}
    print("\n".join(f"{actor:<20}" + "".join(f"{c[k]:>{n}}" for k, n in widths.items())
                    for actor, c in lines.items()))
    if errors:
        print("download failures: " + ", ".join(f"{k} x{v}" for k, v in errors.most_common()))
    labels = np.array([k[0] for k in kept], np.int64)
    if few := facedata.too_few_faces(labels, actors, *(
            (0, 0) if run.quick else (facedata.N_TEST, facedata.N_VAL))):  # quick: quotas shrink
        print(f"warning: too few faces kept for faces.py and deepfaces.py, which hold out "
              f"{facedata.N_TEST} test and {facedata.N_VAL} validation faces per actor: "
              f"{', '.join(few)}. {facedata.MORE_FACES}", file=sys.stderr)

    folder = Path(dest) / "quick" if run.quick else Path(dest)  # data/quick: facedata.QUICK_DIR
    paths = [folder / facedata.dataset_name(actors, (h, w), m) for h, w, m in settings.outputs]
    check_nothing_lost(paths, len(kept), total, offline, errors, force)
    with contextlib.ExitStack() as stack:  # every dataset to a temporary file, then all renamed
        for k, (path, (h, w, mode)) in enumerate(zip(paths, settings.outputs)):
            images = np.array([c[3][k] for c in kept], np.uint8).reshape(
                (len(kept), h, w) + ((3,) if mode == "rgb" else ()))
            facedata.save_faces(stack.enter_context(inputs.atomic_path(path)), images, labels,
                                actors, [c[1] for c in kept], [c[2] for c in kept])
    print(f"wrote {len(kept):,} faces to " + ", ".join(map(str, paths)))
    figures = [contact_sheet(run, kept, labels, actors, settings)] if kept else []  # --force: empty
    seconds = time.perf_counter() - clock
    metrics = {**{m: total[c] for c, m in STAGES.items()},
               **{f"kept_{a.split()[-1].lower()}": counts[a]["kept"] for a in actors},
               "malformed_lines_total": malformed, "duplicate_rows_total": duplicates,
               "seconds": round(seconds, 3)}
    run.record(None, settings, metrics, figures, seconds, actors=list(actors), offline=offline,
               timeout=budget, per_actor={a: dict(counts[a]) for a in actors},
               download_errors=dict(errors), datasets=[str(p) for p in paths])
    return metrics


def check_nothing_lost(paths, n_new: int, total: Counter, offline, errors: Counter, force):
    """Stop before writing when a dataset would be empty or smaller than the one there."""
    found = total["cached"] + total["downloaded"]
    no_network = set(errors) <= {"ConnectionError", "skipped: no network"}
    how = "--offline" if offline else "no network" if no_network else (
        f"no download worked ({', '.join(errors)})")
    why = (f"{n_new:,} faces kept of {found:,} originals found" if found else
           f"0 of {total['rows']:,} originals found: {how} and no cache")
    for path in paths:
        old = 0  # a missing or unreadable file holds nothing to lose
        with contextlib.suppress(OSError, ValueError, KeyError), np.load(path) as z:
            old = len(z["labels"])
        if (n_new == 0 or n_new < old) and not force:
            raise UserError(f"{why}. Nothing written: " + (
                f"{path} holds {old:,} faces, more than this build" if old else "no faces")
                + " (--force writes anyway).")


def contact_sheet(run, kept, labels, actors, settings: Build) -> str:
    """One row of randomly drawn kept crops (of the largest output) per actor, as one mosaic."""
    import matplotlib.pyplot as plt
    big = max(range(len(settings.outputs)), key=lambda k: settings.outputs[k][0])
    images, per_actor = [k[3][big] for k in kept], settings.sheet_per_actor
    (h, w), gap, rng = images[0].shape[:2], 4, run.rng()
    mosaic = np.full((len(actors) * (h + gap), per_actor * (w + gap), 3), 255, dtype=np.uint8)
    for a in range(len(actors)):
        idx = np.flatnonzero(labels == a)
        for j, i in enumerate(np.sort(rng.choice(idx, min(per_actor, idx.size), replace=False))):
            y, x = a * (h + gap), j * (w + gap)
            mosaic[y:y + h, x:x + w] = images[i][..., None] if images[i].ndim == 2 else images[i]
    fig, ax = plt.subplots(figsize=(1.3 * per_actor, 1.35 * len(actors) + 0.5))
    ax.imshow(mosaic, interpolation="nearest")
    ax.set_yticks([a * (h + gap) + h / 2 for a in range(len(actors))],
                  [f"{actor}\n({np.sum(labels == a)} kept)" for a, actor in enumerate(actors)])
    ax.set(xticks=[], xlabel="random sample of kept crops (left to right by face_id)", title=(
        "Kept FaceScrub crops ({}x{} {}), seed {}".format(*settings.outputs[big], run.seed)))
    return run.figure(fig, "get_all_imgs_contact_sheet", dpi=100)


def main(argv=None) -> dict:
    p = runs.parser(__doc__, {}, settings={"build": Build})
    facedata.add_actors_option(p)
    p.add_argument("--dest", type=Path, default=inputs.DATA_DIR,
                   help="folder for uncropped/ and the datasets (default: the project's data/)")
    p.add_argument("--offline", action="store_true", help="use the caches only, never download")
    p.add_argument("--timeout", type=float, default=900.0, help="seconds for all downloads")
    p.add_argument("--force", action="store_true", help="write even an empty or smaller dataset")
    args = p.parse_args(argv)
    if not args.timeout > 0:
        raise UserError(f"--timeout {args.timeout}: give a number of seconds above 0")
    run, _ = runs.start("get_all_imgs.py", args, {"build": Build},
                        tags=facedata.actors_tags(args.actors))
    return build(run, run.settings(Build), args.actors, args.dest, args.offline, args.timeout,
                 args.force)


if __name__ == "__main__":
    runs.main_guard(main)
