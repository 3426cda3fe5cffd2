"""Inputs: found by name on a search path, checked by sha256, downloaded with pooch, read safely.

* An input is looked for in the project's ``data/``, then in each folder of ``$DEEPNN_DATA``
  (separated like PATH, read-only). Downloads and caches are written only into ``data/``.
* The fixed inputs of the course are listed in ``REGISTRY`` with their address and sha256. A
  local copy is used only when its sha256 is one of those listed, and so is a download.
* Every write is atomic: a temporary file beside the target, then ``os.replace``.
* The two pickles of the course (``snapshot50.pkl``, ``bvlc_alexnet.npy``) are read only through
  ``RestrictedUnpickler``: numpy arrays and plain containers, nothing that could run code.
"""
import contextlib
import functools
import hashlib
import os
import pickle
import tempfile
import zipfile
from pathlib import Path

import numpy as np

PROJECT_DIR = Path(__file__).resolve().parents[1]
DATA_DIR = PROJECT_DIR / "data"
DATA_ENV = "DEEPNN_DATA"

COURSE = "http://www.cs.toronto.edu/~guerzhoy/"
# name -> (address, accepted sha256s). The empty tuple: no published hash, the loader checks
# the content. mnist_all.mat: the course's file and a rebuilt container with the same pixels.
REGISTRY = {
    "mnist_all.mat": (COURSE + "411/proj2/mnist_all.mat", (
        "3bab33f3dc437b6cfad223f9bafea513e72165c2b1b5f54dc0085d8e70c961d2",
        "9a9e6daccbf5d5de8e73b1eb57229dbe7985f4bbe89a0fc03c938dfae63490e0")),
    "snapshot50.pkl": (COURSE + "411/proj2/snapshot50.pkl", (
        "d302858ca3ac5b90e785b4dbb762b10b44f310745fd7852e618b574870994024",)),
    "facescrub_actors.txt": (COURSE + "411/proj1/facescrub_actors.txt", (
        "c68cfcae4e1ce89cccb3fe25ac5123c28a592882cf42c4a2845cbb880cf553b5",)),
    "facescrub_actresses.txt": (COURSE + "411/proj1/facescrub_actresses.txt", (
        "b19038c0fa42bfc0fd0de3eb0496dc8d67bf4b69d48a067adda5d74bdbd20e7a",)),
    "bvlc_alexnet.npy": (COURSE + "tf_alexnet/bvlc_alexnet.npy", ()),
    "mobilenet_1_0_224_imagenet.weights.h5": (None, (
        "4f1d1877afe9e2fb3334ace425ae95151cf407d1a47f82c9f214dee516b1a006",)),
}


class UserError(Exception):
    """Something the user can fix (a missing or bad input, a bad option): one message, exit 2."""


class MissingInputError(UserError, FileNotFoundError):
    """An input is in none of the searched folders and could not be downloaded."""


class InputFormatError(UserError, ValueError):
    """An input exists but is not what it should be (corrupt, truncated, wrong shape or hash)."""


# ==== Finding inputs ==========================================================================

def search_dirs() -> list[Path]:
    """The folders searched for inputs, in order: data/, then each folder of $DEEPNN_DATA."""
    return [DATA_DIR] + [Path(p).expanduser().resolve()
                         for p in os.environ.get(DATA_ENV, "").split(os.pathsep) if p.strip()]


def locate(name: str) -> Path | None:
    """The first existing ``<folder>/<name>`` over :func:`search_dirs`, or None."""
    return next((d / name for d in search_dirs() if (d / name).exists()), None)


def sha256_file(path: Path | str) -> str:
    """The file's sha256; a large one (weights) is read once per process while its size and
    mtime stay the same."""
    stat = os.stat(path)
    key = (Path(path).resolve(), stat.st_size, stat.st_mtime_ns)
    return (_sha256 if stat.st_size >= 1 << 20 else _sha256.__wrapped__)(*key)


@functools.cache
def _sha256(path: Path, size: int, mtime_ns: int) -> str:
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def find_input(name: str, download: bool = True, folder: Path | str | None = None) -> Path:
    """Path of the fixed input ``name``: a local copy with a listed sha256, else a download into
    ``folder`` (default data/, searched first). A copy with another sha256 is passed over."""
    folder = Path(folder) if folder is not None else DATA_DIR
    url, hashes = REGISTRY.get(name, (None, ()))
    bad = []
    for candidate in [folder / name] + [d / name for d in search_dirs()]:
        if candidate.is_file():
            if not hashes or sha256_file(candidate) in hashes:
                return candidate
            bad.append(str(candidate))
    problem = (f"These copies have the wrong sha256 (damaged or another file): {', '.join(bad)}. "
               "Replace them.") if bad else ""
    if download and url:
        try:
            return download_input(url, folder / name, hashes[0] if hashes else None)
        except (OSError, ValueError) as err:  # network down, HTTP status, sha256 mismatch
            problem += f"\nDownloading {url} failed: {err}"
    elif not download:
        problem += "\nDownloads are off (--offline)."
    lines = [f"Input file '{name}' was not found. Looked in:", *(f"  - {d}" for d in search_dirs())]
    if url:
        lines.append(f"Get it from {url}" + (f" (sha256 {hashes[0]})" if hashes else ""))
    lines.append(f"and put it in {DATA_DIR}/, or point {DATA_ENV} at a folder that holds it "
                 f"(export {DATA_ENV}=/path/to/folder).")
    raise MissingInputError("\n".join(lines + ([problem.strip()] if problem.strip() else [])))


def download_input(url: str, dest: Path, sha256: str | None) -> Path:
    """Download ``url`` to ``dest`` with pooch (temporary file, sha256 check, then rename)."""
    import pooch
    dest.parent.mkdir(parents=True, exist_ok=True)
    downloader = pooch.HTTPDownloader(timeout=30.0, progressbar=True)
    return Path(pooch.retrieve(url, known_hash=f"sha256:{sha256}" if sha256 else None,
                               fname=dest.name, path=dest.parent, downloader=downloader))


# ==== Atomic writes and .npz caches ===========================================================

@contextlib.contextmanager
def atomic_path(dest: Path | str):
    """Yield a temporary path beside ``dest``; on success it replaces ``dest``, on error it goes."""
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".part", dir=dest.parent)
    os.close(fd)
    try:
        yield Path(tmp)
        os.chmod(tmp, 0o644)  # mkstemp makes 0600; outputs are ordinary files
        os.replace(tmp, dest)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_text(dest: Path | str, text: str) -> Path:
    with atomic_path(dest) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return Path(dest)


def save_npz(dest: Path | str, compress: bool = True, **arrays) -> Path:
    """``np.savez(_compressed)`` to ``dest`` atomically; arrays only (no object dtype)."""
    for key, value in arrays.items():
        if np.asarray(value).dtype == object:
            raise ValueError(f"{dest}: array '{key}' has dtype object; caches hold no pickles")
    with atomic_path(dest) as tmp, open(tmp, "wb") as f:
        (np.savez_compressed if compress else np.savez)(f, **arrays)
    return Path(dest)


def load_npz(path, remedy: str = "Delete it and re-run the script that makes it.") -> dict:
    """Every array of an ``.npz`` (``allow_pickle=False``), or InputFormatError naming the file."""
    try:
        with np.load(path, allow_pickle=False) as z:
            return {k: z[k] for k in z.files}
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as err:
        raise InputFormatError(f"{path}: not a readable .npz file ({err}). {remedy}") from err


# ==== The restricted unpickler ================================================================

# What a pickle of numpy arrays inside dicts and lists needs, under numpy 1.x and 2.x names.
SAFE_GLOBALS = {
    ("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
    ("numpy.core.multiarray", "scalar"), ("numpy._core.multiarray", "scalar"),
    ("numpy", "ndarray"), ("numpy", "dtype"), ("collections", "OrderedDict"),
    ("_codecs", "encode"),  # how Python 3 writes bytes into protocol-2 pickles
}


class RestrictedUnpickler(pickle._Unpickler):
    """Numpy arrays, scalars and plain containers only: no other global, no set, and dict keys only
    strings and numbers (hashing a key of nested shared tuples is exponential in its depth)."""
    dispatch = dict(pickle._Unpickler.dispatch)

    def find_class(self, module: str, name: str):
        if (module, name) in SAFE_GLOBALS:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"refused global '{module}.{name}': only numpy arrays and "
                                     "plain containers are allowed")

    def keys_checked(load, keys):
        """``load`` (an opcode that puts ``keys(stack)`` into a dict) after checking those keys."""
        def checked(self):
            if not all(isinstance(key, (str, bytes, int, float)) for key in keys(self.stack)):
                raise pickle.UnpicklingError("refused a dict key that is not a string or a number")
            load(self)
        return checked

    def refuse_set(self):
        raise pickle.UnpicklingError("refused a set: only numpy arrays and plain containers")

    dispatch[pickle.SETITEM[0]] = keys_checked(dispatch[pickle.SETITEM[0]],
                                               lambda stack: stack[-2:-1])  # ..., dict, key, value
    for opcode in (pickle.SETITEMS, pickle.DICT):  # the stack: keys and values since the mark
        dispatch[opcode[0]] = keys_checked(dispatch[opcode[0]], lambda stack: stack[0::2])
    for opcode in (pickle.EMPTY_SET, pickle.ADDITEMS, pickle.FROZENSET):
        dispatch[opcode[0]] = refuse_set
    del opcode, keys_checked


def safe_unpickle(stream, source: str) -> object:
    """Unpickle ``stream`` with :class:`RestrictedUnpickler` (latin1, for Python 2 pickles)."""
    try:
        return RestrictedUnpickler(stream, encoding="latin1").load()
    except Exception as err:  # UnpicklingError, EOFError, ValueError, ... on foreign or cut bytes
        raise InputFormatError(f"{source}: not a pickle of arrays ({type(err).__name__}: {err}). "
                               "Get a fresh copy.") from err


def load_pickle(path: Path | str) -> object:
    """A pickle file such as ``snapshot50.pkl``, through the restricted unpickler."""
    with open(path, "rb") as f:
        return safe_unpickle(f, str(path))


def load_npy_object(path: Path | str) -> object:
    """An ``.npy`` such as ``bvlc_alexnet.npy``: header by numpy, pickle by RestrictedUnpickler."""
    from numpy.lib import format as npformat
    with open(path, "rb") as f:
        try:
            version = npformat.read_magic(f)
            shape, _, dtype = (npformat.read_array_header_1_0(f) if version == (1, 0)
                               else npformat.read_array_header_2_0(f))
        except (ValueError, EOFError) as err:
            raise InputFormatError(f"{path}: not a .npy file ({err}). Get a fresh copy.") from err
        if dtype != np.dtype(object):
            data = np.fromfile(f, dtype=dtype)
            if data.size != int(np.prod(shape)):
                raise InputFormatError(f"{path}: truncated ({data.size} of {int(np.prod(shape))} "
                                       "values). Get a fresh copy.")
            return data.reshape(shape)
        obj = safe_unpickle(f, str(path))
    wrapped = isinstance(obj, np.ndarray) and obj.dtype == object and obj.shape == ()
    return obj.item() if wrapped else obj  # np.save wraps a dict in a 0-d object array
