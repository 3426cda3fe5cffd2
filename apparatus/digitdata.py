"""The inputs of digits.py, found and checked before use: MNIST and the handout's snapshot50.pkl.

MNIST: the course's mnist_all.mat (train0..9, test0..9: (N, 784) whole numbers in 0..255), else
Keras's mnist.npz from the search path, else a download of mnist_all.mat; as train_x (60000, 784)
uint8, train_y (60000,) int64, test_x, test_y, rows grouped by digit 0..9.
"""
import functools
from pathlib import Path

import numpy as np

from apparatus import inputs

N_PIXELS, N_CLASSES = 784, 10
SNAPSHOT_SHAPES = {"W0": (784, 300), "b0": (300,), "W1": (300, 10), "b1": (10,)}
QUICK_IMAGES = (2000, 1000)  # --quick: a fixed random slice of training and test images


def bad_input(path, problem: str) -> inputs.InputFormatError:
    return inputs.InputFormatError(f"{path}: {problem}. Get a fresh copy of {Path(path).name} "
                                   "(see data/README.md).")


def load_mnist(path=None) -> dict[str, np.ndarray]:  # path None: found as said above
    import scipy.io
    if path is None:
        try:
            path = inputs.find_input("mnist_all.mat", download=False)
        except inputs.MissingInputError:
            path = inputs.locate("mnist.npz") or inputs.find_input("mnist_all.mat")
    data = {}
    if Path(path).suffix == ".npz":  # Keras's: x_train (60000, 28, 28) uint8, y_train, ...
        z = inputs.load_npz(path, f"Get a fresh copy of {Path(path).name}.")
        for split in ("train", "test"):
            x, y = z.get(f"x_{split}"), z.get(f"y_{split}")
            if (x is None or y is None or x.dtype != np.uint8 or x.shape[1:] != (28, 28)
                    or y.dtype.kind not in "iu" or y.shape != (len(x),)
                    or not np.array_equal(np.unique(y), np.arange(N_CLASSES))):
                raise bad_input(path, f"x_{split}, y_{split} are not uint8 (N, 28, 28) images "
                                      "and N labels covering 0..9")
            order = np.argsort(y, kind="stable")  # mnist_all.mat's: each digit's rows in order
            data[f"{split}_x"] = x.reshape(len(x), N_PIXELS)[order]
            data[f"{split}_y"] = y[order].astype(np.int64)
        return data
    try:
        mat = scipy.io.loadmat(path)
    except Exception as err:  # ValueError, MatReadError, OSError, ... on bytes that are no .mat
        raise bad_input(path, f"not a readable MATLAB file ({err})") from err
    for split in ("train", "test"):
        xs = []
        for key in (f"{split}{d}" for d in range(N_CLASSES)):
            a = np.asarray(mat.get(key, np.zeros((0, 0))))
            if a.ndim != 2 or a.shape[1] != N_PIXELS or len(a) == 0:
                raise bad_input(path, f"array '{key}' is missing or not (N, {N_PIXELS}): {a.shape}")
            if a.dtype != np.uint8 and not (a.dtype.kind in "iuf" and np.isfinite(a).all() and
                                            (a % 1 == 0).all() and 0 <= a.min() <= a.max() <= 255):
                raise bad_input(path, f"array '{key}' ({a.dtype}) holds values that are not whole "
                                      "numbers in 0..255 (NaN, fractions or out of range)")
            xs.append(a.astype(np.uint8, copy=False))
        data[f"{split}_x"] = np.concatenate(xs)
        data[f"{split}_y"] = np.repeat(np.arange(N_CLASSES, dtype=np.int64), [len(x) for x in xs])
    return data


def load_snapshot(path=None) -> dict[str, np.ndarray]:
    """``snapshot50.pkl`` from ``path`` or the search path: finite float32 W0, b0, W1, b1."""
    path = path or inputs.find_input("snapshot50.pkl")
    obj = inputs.load_pickle(path)
    if not isinstance(obj, dict) or set(SNAPSHOT_SHAPES) - set(obj):
        raise bad_input(path, "expected a dict of arrays W0, b0, W1, b1")
    for key, shape in SNAPSHOT_SHAPES.items():
        a = obj[key]  # its type first: np.asarray of nested shared lists takes exponential time
        if not isinstance(a, np.ndarray):
            raise bad_input(path, f"'{key}' is a {type(a).__name__}, expected a numpy array")
        if a.shape != shape or a.dtype.kind != "f" or not np.isfinite(a).all():
            raise bad_input(path, f"'{key}' is {a.dtype} {a.shape}, expected finite floats (no "
                                  f"NaN or inf) of shape {shape}")
    return {key: np.ascontiguousarray(obj[key], dtype=np.float32) for key in SNAPSHOT_SHAPES}


def to_inputs(images: np.ndarray, dtype=np.float32) -> np.ndarray:
    return np.ascontiguousarray(images, dtype=dtype) / dtype(255.0)


def one_hot(labels: np.ndarray, n_classes: int = N_CLASSES, dtype=np.float32) -> np.ndarray:
    return np.eye(n_classes, dtype=dtype)[labels]


class Digits:
    """The inputs of one run, each read and checked once: by the first check or part using it."""

    def __init__(self, quick: bool = False):
        self.quick = quick

    all_mnist = functools.cached_property(lambda self: load_mnist())
    snapshot = functools.cached_property(lambda self: load_snapshot())

    @functools.cached_property
    def mnist(self) -> dict[str, np.ndarray]:
        data, pick = dict(self.all_mnist), np.random.default_rng(1234)
        for split, n in zip(("train", "test"), QUICK_IMAGES if self.quick else ()):
            if n > len(data[f"{split}_y"]):
                raise inputs.UserError(f"--quick takes {n} {split} images; MNIST holds only "
                                       f"{len(data[f'{split}_y'])}")
            rows = pick.choice(len(data[f"{split}_y"]), n, replace=False)
            data.update({f"{split}_{a}": data[f"{split}_{a}"][rows] for a in "xy"})
        return data
