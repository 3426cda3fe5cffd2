"""Where the project's data lives, how it is fetched and read safely, and where results go.

Shared by every script (digits.py, get_all_imgs.py, faces.py, myalexnet.py, deepfaces.py,
report.py). Nothing here is specific to a part of the coursework.

Conventions
-----------
* Inputs are found by file name: first in the project's ``data/`` folder, then in each folder
  of the environment variable ``DEEPNN_DATA`` (separated like PATH, read-only). Downloads and
  caches are written only into ``data/``.
* Every write of a cache, download or result is atomic: a temporary file in the same folder,
  then ``os.replace``. An interrupted run leaves either the old file or the new one, never half.
* The two pickles the coursework ships (``snapshot50.pkl``, ``bvlc_alexnet.npy``) are read only
  through :class:`RestrictedUnpickler`, which builds numpy arrays and plain containers and
  refuses everything else (a pickle can otherwise run any code on load).
* Figures go to ``<out>/images/<script>_<part>_<what>.png``; numbers to
  ``<out>/results/<script>_<part>.json`` with the settings, seed and timings that produced them.
"""
from __future__ import annotations

import argparse
import contextlib
import errno
import hashlib
import http.client
import json
import os
import pickle
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
import zipfile
from pathlib import Path

import numpy as np

PROJECT_DIR = Path(__file__).resolve().parent
DATA_DIR = PROJECT_DIR / "data"
DATA_ENV = "DEEPNN_DATA"
DEFAULT_SEED = 0

# Inputs the coursework publishes, with the address the course gave and the sha256 of the file
# there. ``None`` means the course never published a hash; the loader checks the content instead.
KNOWN_INPUTS = {
    "mnist_all.mat": (
        "http://www.cs.toronto.edu/~guerzhoy/411/proj2/mnist_all.mat",
        # The course's own copy. A rebuilt container with identical pixels is also accepted
        # when it is found locally (see data/README.md); downloads are held to the course's hash.
        "3bab33f3dc437b6cfad223f9bafea513e72165c2b1b5f54dc0085d8e70c961d2",
    ),
    "snapshot50.pkl": (
        "http://www.cs.toronto.edu/~guerzhoy/411/proj2/snapshot50.pkl",
        "d302858ca3ac5b90e785b4dbb762b10b44f310745fd7852e618b574870994024",
    ),
    "facescrub_actors.txt": (
        "http://www.cs.toronto.edu/~guerzhoy/411/proj1/facescrub_actors.txt",
        "c68cfcae4e1ce89cccb3fe25ac5123c28a592882cf42c4a2845cbb880cf553b5",
    ),
    "facescrub_actresses.txt": (
        "http://www.cs.toronto.edu/~guerzhoy/411/proj1/facescrub_actresses.txt",
        "b19038c0fa42bfc0fd0de3eb0496dc8d67bf4b69d48a067adda5d74bdbd20e7a",
    ),
    "bvlc_alexnet.npy": ("http://www.cs.toronto.edu/~guerzhoy/tf_alexnet/bvlc_alexnet.npy", None),
    "mobilenet_1_0_224_imagenet.weights.h5": (None, None),
}


class MissingInputError(FileNotFoundError):
    """An input file is in none of the searched folders and could not be downloaded."""


class InputFormatError(ValueError):
    """An input file exists but is not what it should be (corrupt, truncated, wrong shape)."""


# ======================================================================================
# Finding inputs
# ======================================================================================

def search_dirs() -> list[Path]:
    """The folders searched for inputs, in order: data/, then each folder of $DEEPNN_DATA."""
    dirs = [DATA_DIR]
    for part in os.environ.get(DATA_ENV, "").split(os.pathsep):
        if part.strip():
            dirs.append(Path(part.strip()).expanduser().resolve())
    return dirs


def locate(name: str) -> Path | None:
    """The first existing ``<dir>/<name>`` over :func:`search_dirs`, or None."""
    for folder in search_dirs():
        candidate = folder / name
        if candidate.exists():
            return candidate
    return None


def missing_message(name: str, url: str | None = None, sha256: str | None = None,
                    extra: str = "") -> str:
    """One message: the file, where we looked, and where to get it."""
    url = url or KNOWN_INPUTS.get(name, (None, None))[0]
    sha256 = sha256 or KNOWN_INPUTS.get(name, (None, None))[1]
    lines = [f"Input file '{name}' was not found. Looked in:"]
    lines += [f"  - {d}" for d in search_dirs()]
    if url:
        lines.append(f"Get it from {url}" + (f" (sha256 {sha256})" if sha256 else ""))
    lines.append(f"and put it in {DATA_DIR}/, or point {DATA_ENV} at a folder that holds it "
                 f"(e.g. export {DATA_ENV}=/path/to/shared/data).")
    if extra:
        lines.append(extra)
    return "\n".join(lines)


def find_input(name: str, download: bool = True, timeout: float = 30.0,
               dest_dir: Path | str | None = None) -> Path:
    """Path of the input ``name``: found on the search path, else downloaded into data/.

    ``dest_dir`` (default data/) is searched first and receives the download (tests and
    ``--dest`` use a folder of their own). Raises MissingInputError with a message naming the
    file, the folders searched and the address to get it from, when it is neither found nor
    downloadable.
    """
    dest_dir = Path(dest_dir) if dest_dir is not None else DATA_DIR
    found = dest_dir / name if (dest_dir / name).exists() else locate(name)
    if found is not None:
        return found
    url, sha256 = KNOWN_INPUTS.get(name, (None, None))
    problem = "" if download else "Downloads are off (--offline)."
    if download and url:
        try:
            return download_file(url, dest_dir / name, sha256=sha256, timeout=timeout)
        except OSError as err:  # DownloadError: network down, HTTP status, sha256 mismatch
            problem = f"Downloading {url} failed: {err}"
    raise MissingInputError(missing_message(name, url, sha256, problem))


# ======================================================================================
# Hashing, atomic writes, downloads
# ======================================================================================

def sha256_file(path: Path | str, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(chunk), b""):
            digest.update(block)
    return digest.hexdigest()


_UMASK = os.umask(0)
os.umask(_UMASK)


@contextlib.contextmanager
def atomic_path(dest: Path | str):
    """Yield a temporary path beside ``dest``; on success rename it onto ``dest``.

    On any exception the temporary file is removed and ``dest`` is left as it was.
    """
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".part", dir=dest.parent)
    os.close(fd)
    os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp makes 0600; caches and results are shared files
    try:
        yield Path(tmp)
        os.replace(tmp, dest)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def atomic_write_bytes(dest: Path | str, data: bytes) -> Path:
    with atomic_path(dest) as tmp:
        Path(tmp).write_bytes(data)
    return Path(dest)


def atomic_write_text(dest: Path | str, text: str) -> Path:
    return atomic_write_bytes(dest, text.encode("utf-8"))


def save_npz_atomic(dest: Path | str, compress: bool = True, **arrays) -> Path:
    """np.savez(_compressed) to ``dest`` atomically. Arrays only (no object dtype).

    ``compress=False`` for data that barely compresses (photos), where zlib only costs time.
    """
    for key, value in arrays.items():
        if np.asarray(value).dtype == object:
            raise ValueError(f"{dest}: array '{key}' has dtype object; caches hold no pickles")
    with atomic_path(dest) as tmp:
        with open(tmp, "wb") as f:
            (np.savez_compressed if compress else np.savez)(f, **arrays)
    return Path(dest)


def load_npz(path: Path | str) -> dict[str, np.ndarray]:
    """Load an .npz cache fully (allow_pickle=False) with a clear error if it is damaged."""
    try:
        with np.load(path, allow_pickle=False) as z:
            return {k: z[k] for k in z.files}
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as err:
        raise InputFormatError(f"{path}: not a readable .npz cache ({err}). Delete it and re-run "
                               "the script that makes it.") from err


class DownloadError(OSError):
    """A download that failed for good; ``str(err)`` is the reason a summary shows.

    ``unreachable``: no server answered at all (name not resolved, connection refused), so
    trying the same host again in this run is pointless.
    """

    def __init__(self, reason: str, unreachable: bool = False):
        super().__init__(reason)
        self.unreachable = unreachable

    def __str__(self):
        return str(self.args[0])


class _HttpOnlyRedirects(urllib.request.HTTPRedirectHandler):
    """Follow at most a few redirects, and only to http(s) (urllib would also follow ftp:)."""
    max_redirections = 5

    def redirect_request(self, req, fp, code, msg, headers, newurl):
        scheme = urllib.parse.urlsplit(newurl).scheme.lower()
        if scheme not in ("http", "https"):
            raise DownloadError(f"redirect to {scheme or '(none)'}: refused")
        return super().redirect_request(req, fp, code, msg, headers, newurl)


_OPENER = urllib.request.build_opener(_HttpOnlyRedirects())


def download_file(url: str, dest: Path | str, sha256: str | None = None, timeout: float = 30.0,
                  max_bytes: int = 512 << 20, retries: int = 2, backoff: float = 0.5) -> Path:
    """GET ``url`` into ``dest`` atomically, checking the sha256 when one is given.

    Only http(s), also for redirects. Every request has ``timeout``; timeouts, dropped
    connections and 5xx answers are retried with exponential backoff, a 4xx or an unknown host
    is not. A body over ``max_bytes`` or shorter than its Content-Length is refused. On any
    failure no file is left behind and :class:`DownloadError` (an OSError) says why.
    """
    scheme = urllib.parse.urlsplit(url).scheme.lower()
    if scheme not in ("http", "https"):
        raise DownloadError(f"refused scheme {scheme or '(none)'}:")  # only http(s)
    dest = Path(dest)
    reason = "?"
    for attempt in range(retries + 1):
        if attempt:
            time.sleep(backoff * 2 ** (attempt - 1))
        try:
            with atomic_path(dest) as tmp:
                digest = hashlib.sha256()
                request = urllib.request.Request(url, headers={"User-Agent": "deepnn-coursework/1"})
                with _OPENER.open(request, timeout=timeout) as response, open(tmp, "wb") as out:
                    length = response.headers.get("Content-Length")
                    length = int(length) if length and length.isdigit() else None
                    if length is not None and length > max_bytes:
                        raise DownloadError(f"larger than {max_bytes} bytes")
                    size = 0
                    while block := response.read(1 << 16):
                        size += len(block)
                        if size > max_bytes:
                            raise DownloadError(f"larger than {max_bytes} bytes")
                        digest.update(block)
                        out.write(block)
                    if length is not None and size < length:
                        raise http.client.IncompleteRead(b"", length - size)
                if sha256 and digest.hexdigest() != sha256:
                    raise DownloadError(f"sha256 {digest.hexdigest()} does not match the "
                                        f"expected {sha256}")
            return dest
        except urllib.error.HTTPError as err:
            reason = f"HTTP {err.code}"
            if 300 <= err.code < 500:
                break  # the server's answer will not change
        except DownloadError:
            raise
        except (OSError, http.client.HTTPException) as err:
            # URLError (DNS, refused), socket timeouts, connections dropped mid-body
            inner = getattr(err, "reason", err)
            if isinstance(inner, (TimeoutError, socket.timeout)) or "timed out" in str(inner):
                reason = "timeout"
            elif isinstance(inner, socket.gaierror):
                # a name that does not resolve will not resolve a second later either
                raise DownloadError("host not found", unreachable=True) from None
            elif getattr(inner, "errno", None) in (errno.ECONNREFUSED, errno.ENETUNREACH,
                                                   errno.EHOSTUNREACH):
                raise DownloadError("host unreachable", unreachable=True) from None
            else:
                reason = type(inner).__name__
    raise DownloadError(reason)


# ======================================================================================
# The restricted unpickler
# ======================================================================================

# The globals a pickle of numpy arrays inside dicts/lists needs, under numpy 1.x and 2.x names.
_SAFE_GLOBALS = {
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "_reconstruct"),
    ("numpy.core.multiarray", "scalar"),
    ("numpy._core.multiarray", "scalar"),
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
    ("collections", "OrderedDict"),
    ("_codecs", "encode"),  # how Python 3 writes bytes in protocol-2 pickles
    ("__builtin__", "set"), ("builtins", "set"),
    ("__builtin__", "frozenset"), ("builtins", "frozenset"),
}


class RestrictedUnpickler(pickle.Unpickler):
    """An unpickler that builds numpy arrays, numpy scalars and plain containers, nothing else."""

    def find_class(self, module: str, name: str):
        if (module, name) in _SAFE_GLOBALS:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(
            f"refused to load global '{module}.{name}': only numpy arrays and plain "
            "containers are allowed in this file")


def safe_unpickle(stream, source: str = "<stream>", encoding: str = "latin1"):
    """Unpickle from a binary stream with :class:`RestrictedUnpickler`; errors name ``source``."""
    try:
        return RestrictedUnpickler(stream, encoding=encoding).load()
    except pickle.UnpicklingError as err:
        raise InputFormatError(f"{source}: {err}. The file is not what it should be; "
                               "get a fresh copy.") from err
    except (EOFError, ValueError, TypeError, AttributeError, IndexError, KeyError) as err:
        raise InputFormatError(f"{source}: corrupt or truncated pickle ({type(err).__name__}: "
                               f"{err}). Get a fresh copy.") from err


def load_pickle_safely(path: Path | str, encoding: str = "latin1"):
    """Load a pickle file (e.g. snapshot50.pkl) with :class:`RestrictedUnpickler`."""
    with open(path, "rb") as f:
        return safe_unpickle(f, str(path), encoding)


def load_npy_object_safely(path: Path | str, encoding: str = "latin1"):
    """Load an object-dtype .npy file (e.g. bvlc_alexnet.npy) without numpy's open unpickler.

    ``np.save`` of a dict writes the .npy header and then a pickle of a 0-d object array; we
    parse the header ourselves and unpickle the payload with :class:`RestrictedUnpickler`.
    Returns the object the file holds (``array.item()`` for 0-d arrays).
    """
    from numpy.lib import format as npformat
    with open(path, "rb") as f:
        try:
            version = npformat.read_magic(f)
            if version == (1, 0):
                shape, _, dtype = npformat.read_array_header_1_0(f)
            else:
                shape, _, dtype = npformat.read_array_header_2_0(f)
        except (ValueError, EOFError) as err:
            raise InputFormatError(f"{path}: not a .npy file ({err}). Get a fresh copy.") from err
        if dtype != np.dtype(object):
            return np.fromfile(f, dtype=dtype).reshape(shape)
        obj = safe_unpickle(f, str(path), encoding)
    if isinstance(obj, np.ndarray) and obj.dtype == object and obj.shape == ():
        return obj.item()
    return obj


# ======================================================================================
# Seeding
# ======================================================================================

def make_rng(seed: int) -> np.random.Generator:
    """The one NumPy generator of a run; pass it to everything that draws."""
    return np.random.default_rng(seed)


def seed_tensorflow(seed: int) -> None:
    """Seed Python, NumPy's legacy global and TensorFlow from ``seed``; make TF ops deterministic.

    Imported lazily so that NumPy-only scripts never load TensorFlow.
    """
    import tensorflow as tf
    tf.keras.utils.set_random_seed(seed)
    with contextlib.suppress(Exception):  # only possible before the first op runs
        tf.config.experimental.enable_op_determinism()


# ======================================================================================
# Outputs: figures and results
# ======================================================================================

def git_commit() -> str | None:
    try:
        out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=PROJECT_DIR,
                             capture_output=True, text=True, timeout=5)
        if out.returncode != 0:
            return None
        # "-dirty" when code differs from the commit; the outputs (images/, results/, the
        # report) and prose change during a run and do not make the numbers any less the code's
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no", "--",
                                "*.py", "requirements.txt"],
                               cwd=PROJECT_DIR, capture_output=True, text=True, timeout=5)
        return out.stdout.strip() + ("-dirty" if dirty.stdout.strip() else "")
    except (OSError, subprocess.SubprocessError):
        return None


def save_figure(fig, out_dir: Path | str, name: str, dpi: int = 120) -> str:
    """Save a matplotlib figure as <out>/images/<name>.png and close it. Returns the relative path."""
    import matplotlib.pyplot as plt
    path = Path(out_dir) / "images" / f"{name}.png"
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=dpi, bbox_inches="tight", format="png")
    plt.close(fig)
    return f"images/{name}.png"


def _jsonable(value):
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    return value


def _results_stem(script: str, part: str | None) -> str:
    """digits.py + part4 -> digits_part4; get_all_imgs.py + None -> get_all_imgs;
    bench/train_speed.py + None -> bench_train_speed."""
    stem = "_".join(Path(script).with_suffix("").parts)
    return f"{stem}_{part}" if part else stem


def write_results(out_dir: Path | str, script: str, part: str | None, *, seed: int, quick: bool,
                  settings: dict, metrics: dict, figures: list[str], seconds: float,
                  extra: dict | None = None, timings: dict | None = None) -> Path:
    """Write <out>/results/<script>_<part>.json (see DESIGN.md) atomically; return its path.

    ``script`` is the path from the project folder (``digits.py``, ``bench/train_speed.py``);
    ``part=None`` for a script without parts: the file is then results/<script>.json, with the
    folder joined by "_" (results/bench_train_speed.json).
    """
    script = Path(script).as_posix()
    invoked = Path(sys.argv[0]).resolve() if sys.argv and sys.argv[0] else None
    if invoked == (PROJECT_DIR / script).resolve():  # run from the command line: record it
        command = " ".join(["python", script] + sys.argv[1:])
    else:  # called from a test or another script: the equivalent command
        command = " ".join(["python", script] + ([part] if part else [])
                           + ["--seed", str(seed)] + (["--quick"] if quick else []))
    record = {
        "script": script,
        "part": part,
        "command": command,
        "seed": seed,
        "quick": bool(quick),
        "git_commit": git_commit(),
        "settings": settings,
        "timings": {"seconds": round(float(seconds), 3), **(timings or {})},
        "metrics": metrics,
        "figures": figures,
    }
    if extra:
        record.update(extra)
    path = Path(out_dir) / "results" / f"{_results_stem(script, part)}.json"
    atomic_write_text(path, json.dumps(_jsonable(record), indent=2, sort_keys=False) + "\n")
    return path


def read_results(out_dir: Path | str, script: str, part: str | None) -> dict | None:
    path = Path(out_dir) / "results" / f"{_results_stem(script, part)}.json"
    if not path.exists():
        return None
    return json.loads(path.read_text())


class Stopwatch:
    """``with Stopwatch() as t: ...`` then ``t.seconds``."""

    def __enter__(self):
        self.start = time.perf_counter()
        self.seconds = 0.0
        return self

    def __exit__(self, *exc):
        self.seconds = time.perf_counter() - self.start
        return False


def add_common_args(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """--seed, --quick and --out, the same for every script."""
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED,
                        help=f"seed of every random draw (default {DEFAULT_SEED})")
    parser.add_argument("--quick", action="store_true",
                        help="run on a small slice in seconds (for tests and trial runs)")
    parser.add_argument("--out", type=Path, default=PROJECT_DIR,
                        help="folder that receives images/ and results/ (default: the project)")
    return parser


def fail(message: str, code: int = 2) -> "None":
    """Stop a command-line script with one clear message (no traceback)."""
    print(f"error: {message}", file=sys.stderr)
    raise SystemExit(code)


def run_cli(main) -> None:
    """Run ``main()`` turning our input errors into one clear message and exit code 2."""
    try:
        main()
    except (MissingInputError, InputFormatError) as err:
        fail(str(err))
