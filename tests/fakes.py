"""Synthetic inputs shared by the tests: digits files, a picture and its list lines, faces."""
import hashlib
import io
import pickle

import numpy as np
from PIL import Image

import get_all_imgs as gai
from apparatus import facedata
from apparatus.digitdata import SNAPSHOT_SHAPES

# ---- digits.py: stand-ins for mnist_all.mat and snapshot50.pkl --------------------------------


def write_mnist(path, rng, n_train=40, n_test=12, change=None):
    import scipy.io
    mat = {f"{split}{d}": rng.integers(0, 256, (n, 784), dtype=np.uint8)
           for split, n in (("train", n_train), ("test", n_test)) for d in range(10)}
    if change:
        change(mat)
    scipy.io.savemat(path, mat)
    return path


def write_snapshot(path, rng, change=None):
    obj = {k: (0.05 * rng.standard_normal(s)).astype(np.float32)
           for k, s in SNAPSHOT_SHAPES.items()}
    if change:
        change(obj)
    with open(path, "wb") as f:
        pickle.dump(obj, f, protocol=2)
    return path


# ---- get_all_imgs.py: a test picture, FaceScrub list lines, a small build ----------------------

RECT = (10, 6, 34, 22)  # x1, y1, x2, y2 in the 48 x 32 test picture: 24 wide, 16 tall
SMALL = "outputs=((16, 24, 'rgb'), (16, 24, 'gray'))"  # 16 x 24 = the bbox: no resampling


def encode(array: np.ndarray, fmt: str = "PNG") -> bytes:
    buf = io.BytesIO()
    Image.fromarray(array).save(buf, format=fmt)
    return buf.getvalue()


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


PIXELS = np.random.default_rng(0).integers(0, 256, (32, 48, 3), dtype=np.uint8)  # any shift shows
PNG = encode(PIXELS)


def line(name, face_id, url, digest, bbox=RECT):
    return "\t".join([name, str(1000 + face_id), str(face_id), url, ",".join(map(str, bbox)),
                      digest])


def build(tmp_path, *args, actors="Ann Alpha,Bob Beta"):
    return gai.main(["--out", str(tmp_path / "out"), "--actors", actors, "--set", SMALL, *args])


# ---- faces.py and deepfaces.py: face datasets of three actors ----------------------------------

ACTORS = ("Fran Drescher", "Steve Carell", "Bill Hader")


def save_synthetic(folder, data, size=(60, 60), mode="gray"):
    path = folder / facedata.dataset_name(data["actors"], size, mode)
    return facedata.save_faces(path, **data)
