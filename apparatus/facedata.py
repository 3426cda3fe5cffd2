"""The face datasets of one actor set, and their duplicate-aware train / validation / test split.

A dataset file is ``faces_<actors>_<H>x<W>_<mode>.npz`` (``<actors>``: the surnames in label order,
e.g. ``drescher-ferrera-chenoweth-baldwin-hader-carell``), loadable with ``allow_pickle=False``:
``images`` uint8 (N, H, W) or (N, H, W, 3); ``labels`` int64 (N,) indexing ``actors`` (K,);
``face_ids`` int64 (N,), unique; ``sha256`` str (N,). ``get_all_imgs.py`` writes them into ``data/``
(``data/quick/`` for ``--quick``); every size and mode of one build holds the same rows.

The split: FaceScrub lists one photo under several URLs, so near-duplicate crops are grouped and
a group never straddles two splits (no test face has a twin in training). It is saved by face id
in ``faces_<actors>_split_seed<S>.json`` beside the dataset: every size and mode share it.
"""
import contextlib
import json
from pathlib import Path

import numpy as np

from apparatus import inputs
from apparatus.inputs import DATA_DIR, InputFormatError, MissingInputError, UserError

DEFAULT_ACTORS = ("Fran Drescher", "America Ferrera", "Kristin Chenoweth",
                  "Alec Baldwin", "Bill Hader", "Steve Carell")
QUICK_DIR = DATA_DIR / "quick"   # the small datasets of get_all_imgs.py --quick
SPLITS = ("train", "val", "test")
N_TEST, N_VAL = 30, 15           # faces held out per actor (the handout's); the rest: training


def parse_actors(text: str) -> tuple[str, ...]:
    """``"Alec Baldwin, Steve Carell"`` -> ("Alec Baldwin", "Steve Carell"); duplicates refused."""
    actors = tuple(a.strip() for a in text.split(",") if a.strip())
    if not actors or len(set(actors)) != len(actors):
        raise UserError(f"--actors {text!r}: give distinct names separated by commas")
    return actors


def add_actors_option(parser) -> None:
    """``--actors "A,B,..."`` (default: the six of the handout), the same in every face script."""
    parser.add_argument("--actors", type=parse_actors, default=DEFAULT_ACTORS,
                        help='comma-separated actors of the FaceScrub lists, e.g. '
                             '"Alec Baldwin,Steve Carell" (default: the six of the handout)')


def actors_tags(actors) -> tuple[str, ...]:
    """Run-folder tags of an actor set: none for the default six (see runs.Run.tag)."""
    return () if tuple(actors) == DEFAULT_ACTORS else (f"actors-{actors_tag(actors)}",)


def actors_tag(actors) -> str:
    """File-name tag of an actor set: the lower-case surnames in label order, joined by '-'."""
    return "-".join("".join(c for c in a.split()[-1].lower() if c.isalnum()) for a in actors)


def dataset_name(actors, size=(60, 60), mode: str = "gray") -> str:
    return f"faces_{actors_tag(actors)}_{size[0]}x{size[1]}_{mode}.npz"


def build_command(actors, quick: bool = False) -> str:
    named = "" if tuple(actors) == DEFAULT_ACTORS else f' --actors "{",".join(actors)}"'
    return f"python get_all_imgs.py{named}" + (" --quick" if quick else "")


def find_dataset(actors, size, mode: str, quick: bool = False) -> Path:
    """The dataset file on the search path; a --quick run also takes get_all_imgs.py --quick's."""
    name = dataset_name(actors, size, mode)
    folders = inputs.search_dirs() + ([QUICK_DIR] if quick else [])
    found = next((d / name for d in folders if (d / name).exists()), None)
    if found is None:
        raise MissingInputError(f"Face dataset '{name}' was not found (looked in "
                                f"{', '.join(map(str, folders))}). "
                                f"Build it with: {build_command(actors, quick)}")
    return found


def load_faces(actors=DEFAULT_ACTORS, size=(60, 60), mode: str = "gray", quick: bool = False,
               path: Path | None = None) -> dict:
    """The dataset of ``actors`` as a dict of arrays, every array checked; ``path`` overrides."""
    path = path or find_dataset(actors, size, mode, quick)
    data = inputs.load_npz(path, f"Rebuild it with: {build_command(actors)}")
    check_dataset(data, path, size, mode)
    data["actors"] = np.array([str(a) for a in data["actors"]])
    if tuple(data["actors"]) != tuple(actors):
        raise InputFormatError(f"{path}: holds actors {list(data['actors'])}, not {list(actors)}. "
                               f"Rebuild it with: {build_command(actors)}")
    return data


def check_dataset(data: dict, path, size, mode: str) -> None:
    """Keys, shapes, dtypes, label range and unique ids of a dataset; InputFormatError if not."""
    def bad(what):
        raise InputFormatError(f"{path}: {what}. Rebuild it with python get_all_imgs.py")
    if missing := {"images", "labels", "actors", "face_ids"} - set(data):
        bad(f"no arrays {sorted(missing)}")
    images, labels, ids = data["images"], data["labels"], data["face_ids"]
    shape = tuple(size) + ((3,) if mode == "rgb" else ())
    if images.dtype != np.uint8 or images.shape[1:] != shape:
        bad(f"images are {images.dtype} {images.shape[1:]}, expected uint8 {shape}")
    if not (len(images) == len(labels) == len(ids)):
        bad(f"{len(images)} images but {len(labels)} labels and {len(ids)} face ids")
    if len(labels) and (labels.min() < 0 or labels.max() >= len(data["actors"])):
        bad(f"labels outside 0..{len(data['actors']) - 1}")
    if len(np.unique(ids)) != len(ids):
        bad("face ids are not unique")


def save_faces(path: Path, images, labels, actors, face_ids, sha256) -> Path:
    """Write one dataset atomically (not zipped: photos barely compress)."""
    return inputs.save_npz(path, compress=False, images=images,
                           labels=np.asarray(labels, np.int64), actors=np.asarray(actors, str),
                           face_ids=np.asarray(face_ids, np.int64), sha256=np.asarray(sha256, str))


# ==== The duplicate-aware split ===============================================================

def duplicate_groups(images: np.ndarray, side: int = 16, threshold: float = 0.96) -> np.ndarray:
    """Group number per row of (N, H, W[, 3]) ``images``: the connected components of the crops
    whose side x side downscales correlate above ``threshold``."""
    from PIL import Image
    from scipy.sparse import csr_matrix
    from scipy.sparse.csgraph import connected_components
    gray = np.asarray(images, np.float32)
    gray = gray.mean(axis=-1) if gray.ndim == 4 else gray
    S = np.stack([np.asarray(Image.fromarray(g).resize((side, side), Image.BOX), np.float32)
                  for g in gray]).reshape(len(gray), -1)
    S -= S.mean(axis=1, keepdims=True)
    S /= np.linalg.norm(S, axis=1, keepdims=True) + 1e-6  # unit rows: S @ S.T correlates
    pairs = np.triu(S @ S.T, k=1) > threshold
    return connected_components(csr_matrix(pairs), directed=False)[1]


def assign_split(labels, groups, seed: int, n_test: int, n_val: int, actors) -> dict:
    """Per actor, whole groups in random order fill test (n_test), then validation (n_val); the
    rest is training. A group holding photos of two actors goes to training."""
    rng = np.random.default_rng(seed)
    where = np.full(len(labels), "train", dtype=object)
    for actor, name in enumerate(actors):
        own = [g for g in np.unique(groups[labels == actor])
               if np.all(labels[groups == g] == actor)]
        quota = {"test": n_test, "val": n_val}
        for g in rng.permutation(own):
            members = np.flatnonzero(groups == g)
            for split in ("test", "val"):
                if len(members) <= quota[split]:
                    where[members] = split
                    quota[split] -= len(members)
                    break
        if quota["test"] or quota["val"]:
            raise UserError(f"{name} has {np.sum(labels == actor)} faces in too few distinct "
                            f"photos to hold out {n_test} test and {n_val} validation faces. "
                            f"{MORE_FACES}")
    return {name: np.flatnonzero(where == name) for name in SPLITS}


MORE_FACES = ("Fetch more of their photos (python get_all_imgs.py with a network: downloads "
              "resume) or choose other actors.")


def too_few_faces(labels: np.ndarray, actors, n_test: int = N_TEST, n_val: int = N_VAL) -> list:
    """The actors (with counts) that cannot fill both held-out quotas and keep a training face."""
    counts = np.bincount(np.asarray(labels, np.int64), minlength=len(actors))
    return [f"{a} ({n})" for a, n in zip(actors, counts) if n < n_test + n_val + 1]


def split_path(actors, seed: int, folder: Path) -> Path:
    return Path(folder) / f"faces_{actors_tag(actors)}_split_seed{seed}.json"


def get_split(data: dict, seed: int, n_test: int = N_TEST, n_val: int = N_VAL, folder=None,
              side: int = 16, threshold: float = 0.96) -> tuple[dict[str, np.ndarray], dict]:
    """Row indices per split of ``data`` and the split record: the saved one when made with the
    same settings for these faces, else made and saved."""
    if len(data["actors"]) < 2:  # one class: every net would be right every time
        raise UserError(f"one actor ({data['actors'][0]}): the networks tell actors apart; "
                        "give at least two with --actors")
    few = too_few_faces(data["labels"], data["actors"], n_test, n_val)
    if few:  # before a saved split is trusted: it may come from a build that had more faces
        raise UserError(f"too few faces to hold out {n_test} test and {n_val} validation faces "
                        f"per actor and train on the rest: {', '.join(few)}. {MORE_FACES}")
    path = split_path(data["actors"], seed, folder or inputs.DATA_DIR)
    wanted = {"seed": seed, "n_test": n_test, "n_val": n_val, "dup_side": side,
              "dup_threshold": threshold}
    # none saved, or damaged, or made for another dataset: made again below
    with contextlib.suppress(FileNotFoundError, ValueError, KeyError, TypeError, InputFormatError):
        record = json.loads(path.read_text())
        if all(record.get(k) == v for k, v in wanted.items()):
            return rows_of(data["face_ids"], record), record
    groups = duplicate_groups(data["images"], side, threshold)
    split = assign_split(data["labels"], groups, seed, n_test, n_val, data["actors"])
    sizes = np.bincount(groups)
    ids = np.asarray(data["face_ids"], np.int64)
    record = {**wanted, "duplicate_groups": int(np.sum(sizes > 1)),
              "duplicate_images": int(np.sum(sizes[sizes > 1])),
              "groups": [ids[groups == g].tolist() for g in np.flatnonzero(sizes > 1)],
              "face_ids": {k: ids[v].tolist() for k, v in split.items()}}
    inputs.write_text(path, json.dumps(record, indent=1) + "\n")
    return split, record


def quotas(labels: np.ndarray, quick: bool, n_actors: int = 0) -> tuple[int, int]:
    """Test and validation faces per actor: the handout's 30 and 15; a --quick run on a dataset
    too small for them holds out a third and a sixth of the smallest actor's faces."""
    smallest = int(np.bincount(labels, minlength=n_actors).min())
    if quick and smallest < N_TEST + 2 * N_VAL:
        return max(1, smallest // 3), max(1, smallest // 6)
    return N_TEST, N_VAL


def load_split(actors, seed: int, quick: bool = False) -> tuple[dict, dict, dict]:
    """The 60x60 gray faces of ``actors``, their rows per split and the split record."""
    path = find_dataset(actors, (60, 60), "gray", quick)
    data = load_faces(actors, (60, 60), "gray", quick, path=path)
    rows, record = get_split(data, seed, *quotas(data["labels"], quick, len(data["actors"])),
                             folder=QUICK_DIR if path.parent == QUICK_DIR else inputs.DATA_DIR)
    return data, rows, record


def rows_of(face_ids: np.ndarray, record: dict) -> dict[str, np.ndarray]:
    """Rows of a dataset (given by its face ids) in each split of a split record."""
    face_ids = np.asarray(face_ids, np.int64)
    rows = {k: np.flatnonzero(np.isin(face_ids, np.asarray(record["face_ids"][k], np.int64)))
            for k in SPLITS}
    if sum(len(v) for v in rows.values()) != len(face_ids):
        raise InputFormatError("the saved split does not hold every face of the dataset (it was "
                               "made for another build); delete it and re-run")
    return rows
