"""Tests of faces.py: the trainer, the duplicate-aware split, weight decay, and each part with --quick.

Synthetic data throughout (tiny shapes, seconds); one real-data Part 7 quick run that skips when
data/faces_60x60_gray.npz is not on the data path.
"""
import json

import numpy as np
import pytest

import deepnn_io
import faces

ACTORS = ["Fran Drescher", "Steve Carell", "Bill Hader"]


def blobs(n_per_class=50, K=3, D=20, seed=0):
    """K well-separated Gaussian clusters in D dimensions: X (N, D) float32, y (N,)."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(0, 1.0, (K, D))
    y = np.repeat(np.arange(K), n_per_class)
    X = (centres[y] + rng.normal(0, 0.7, (len(y), D))).astype(np.float32)
    return X, y


def blob_split(y, seed=0):
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(y))
    return {"train": order[: len(y) // 2], "val": order[len(y) // 2: 3 * len(y) // 4],
            "test": order[3 * len(y) // 4:]}


SMALL = faces.TrainConfig(hidden_units=16, iterations=120, eval_every=20, batch_size=16,
                          learning_rate=0.01, patience=None)


def synthetic_faces(n_per_actor=56, side=20, seed=0, n_dup_groups=4):
    """Fake faces: one smooth prototype per actor plus noise; a few exact-ish duplicate groups.

    Returns a dict in the dataset's format and the list of planted duplicate groups (row indices).
    """
    rng = np.random.default_rng(seed)
    K = len(ACTORS)
    yy, xx = np.mgrid[0:side, 0:side] / side
    protos = [128 + 60 * np.sin(2 * np.pi * (k + 1) * xx) * np.cos(np.pi * (k + 1) * yy)
              for k in range(K)]
    labels = np.repeat(np.arange(K), n_per_actor)
    images = np.stack([protos[k] + rng.normal(0, 40, (side, side)) for k in labels])
    planted = []
    for g in range(n_dup_groups):  # copies of one photo, slightly re-encoded
        k = g % K
        rows = np.flatnonzero(labels == k)[g * 3: g * 3 + 3]
        for r in rows[1:]:
            images[r] = images[rows[0]] + rng.normal(0, 2, (side, side))
        planted.append(rows)
    images = np.clip(images, 0, 255).astype(np.uint8)
    face_ids = rng.permutation(np.arange(1000, 1000 + len(labels))).astype(np.int64)
    data = {"images": images, "labels": labels.astype(np.int64), "actors": np.array(ACTORS),
            "face_ids": face_ids, "sha256": np.array([f"{i:064x}" for i in range(len(labels))])}
    return data, planted


@pytest.fixture
def synthetic_npz(tmp_path):
    data, planted = synthetic_faces()
    path = tmp_path / "faces_20x20_gray.npz"
    deepnn_io.save_npz_atomic(path, **data)
    return path, data, planted


# ---------------------------------------------------------------------------------------
# The trainer
# ---------------------------------------------------------------------------------------

def test_training_beats_chance_on_tiny_data():
    X, y = blobs()
    split = blob_split(y)
    model, history = faces.train_classifier(X, y, split, SMALL, seed=0)
    assert set(history) >= set(faces.HISTORY_KEYS)
    assert len(history["iteration"]) == len(history["test_accuracy"]) > 1
    # three clusters: chance is 1/3; separated clusters are learnt to > 0.85 within 120 steps
    assert faces.accuracy(model, X[split["test"]], y[split["test"]]) > 0.85
    assert history["train_cost"][-1] < history["train_cost"][0]
    assert faces.predict_proba(model, X[:5]).shape == (5, 3)
    W0, b0, W1, b1 = faces.hidden_weights(model)
    assert W0.shape == (20, 16) and b0.shape == (16,) and W1.shape == (16, 3) and b1.shape == (3,)


def test_same_seed_same_numbers():
    X, y = blobs()
    split = blob_split(y)
    cfg = faces.TrainConfig(hidden_units=8, iterations=40, eval_every=10, patience=None)
    _, h1 = faces.train_classifier(X, y, split, cfg, seed=3)
    _, h2 = faces.train_classifier(X, y, split, cfg, seed=3)
    _, h3 = faces.train_classifier(X, y, split, cfg, seed=4)
    assert h1 == h2
    assert h1["train_cost"] != h3["train_cost"]


def test_weight_decay_shrinks_weights():
    X, y = blobs()
    split = blob_split(y)
    norms = []
    for lam in (0.0, 0.05):
        model, _ = faces.train_classifier(X, y, split, faces.TrainConfig(
            hidden_units=16, l2=lam, iterations=150, eval_every=50, learning_rate=0.01,
            early_stopping=False, patience=None), seed=0)
        W0, _, W1, _ = faces.hidden_weights(model)
        norms.append(np.sum(W0 ** 2) + np.sum(W1 ** 2))
    # same init and batches: decay pulls the squared norm well below the undecayed one
    assert norms[1] < 0.7 * norms[0]


def test_usefulness_score_prefers_unit_that_fires_for_the_actor():
    labels = np.array([0, 0, 1, 1])
    H_act = np.array([[0.9, 0.0], [0.8, 0.1], [-0.9, 0.0], [-0.8, -0.1]])
    W1 = np.array([[2.0, -2.0], [2.0, -2.0]])
    scores = faces.unit_usefulness(H_act, labels, W1, actor=0)
    assert scores[0] > scores[1] > -1e-9 and np.argmax(scores) == 0


# ---------------------------------------------------------------------------------------
# The split
# ---------------------------------------------------------------------------------------

def test_split_sizes_disjoint_and_duplicates_together(tmp_path):
    data, planted = synthetic_faces()
    split = faces.get_split(data["face_ids"], data["labels"], data["images"], seed=1,
                            n_test=30, n_val=15, split_dir=tmp_path)
    rows = np.concatenate([split[k] for k in ("train", "val", "test")])
    assert len(rows) == len(np.unique(rows)) == len(data["labels"])  # disjoint and complete
    for k in range(len(ACTORS)):
        assert np.sum(data["labels"][split["test"]] == k) == 30
        assert np.sum(data["labels"][split["val"]] == k) == 15
    where = {int(r): name for name in ("train", "val", "test") for r in split[name]}
    for group in planted:
        assert len({where[int(r)] for r in group}) == 1
    record = faces.load_split(1, tmp_path)
    assert record["duplicate_groups"] == len(planted)
    assert set(record["face_ids"]["test"]) == set(data["face_ids"][split["test"]].tolist())


def test_split_is_reused_deterministic_and_maps_onto_other_orders(tmp_path):
    data, _ = synthetic_faces()
    args = (data["face_ids"], data["labels"], data["images"])
    first = faces.get_split(*args, seed=2, split_dir=tmp_path)
    again = faces.get_split(*args, seed=2, split_dir=tmp_path / "elsewhere")  # recomputed
    for k in first:
        assert np.array_equal(first[k], again[k])
    other = faces.get_split(*args, seed=3, split_dir=tmp_path)
    assert not np.array_equal(np.sort(first["test"]), np.sort(other["test"]))
    # another dataset (e.g. the 227x227 one) with the same faces in another order
    perm = np.random.default_rng(0).permutation(len(data["face_ids"]))
    mapped = faces.split_indices_for(data["face_ids"][perm], faces.load_split(2, tmp_path))
    for k in first:
        assert set(data["face_ids"][perm][mapped[k]]) == set(data["face_ids"][first[k]])
    with pytest.raises(ValueError, match="no split"):
        faces.split_indices_for(np.array([1, 2, 3]), faces.split_path(2, tmp_path))


def test_load_split_missing_says_what_to_run(tmp_path):
    with pytest.raises(deepnn_io.MissingInputError, match="faces.py part7"):
        faces.load_split(99, tmp_path)


def test_too_few_photos_is_a_clear_error(tmp_path):
    data, _ = synthetic_faces(n_per_actor=40, n_dup_groups=0)
    with pytest.raises(ValueError, match="cannot hold out"):
        faces.get_split(data["face_ids"], data["labels"], data["images"], seed=0,
                        split_dir=tmp_path)


# ---------------------------------------------------------------------------------------
# The parts, end to end on synthetic faces
# ---------------------------------------------------------------------------------------

def test_every_part_runs_quick(synthetic_npz, tmp_path):
    path, _, _ = synthetic_npz
    out = tmp_path / "out"
    results = faces.main(["all", "--quick", "--data", str(path), "--size", "20x20",
                          "--split-dir", str(tmp_path), "--out", str(out), "--seed", "0"])
    assert set(results) == {"part7", "part8", "part9"}
    p7 = json.loads((out / "results" / "faces_part7.json").read_text())
    for key in ("test_accuracy", "test_accuracy_mean", "test_accuracy_std", "validation_accuracy",
                "train_accuracy", "hidden_units", "duplicate_groups"):
        assert key in p7["metrics"]
    assert p7["quick"] is True and p7["metrics"]["duplicate_groups"] == 4
    assert p7["metrics"]["test_accuracy"] > 1 / 3  # three actors: above chance
    p8 = json.loads((out / "results" / "faces_part8.json").read_text())
    for key in ("best_lambda", "test_accuracy_no_decay_mean", "test_accuracy_best_lambda_mean",
                "gain_points_mean"):
        assert key in p8["metrics"]
    p9 = json.loads((out / "results" / "faces_part9.json").read_text())
    for rec in (p7, p8, p9):
        for fig in rec["figures"]:
            assert (out / fig).stat().st_size > 1000
    assert (tmp_path / "faces_split_seed0.json").exists()


def test_actor_subset(synthetic_npz, tmp_path):
    path, _, _ = synthetic_npz
    data = faces.load_faces(path=path, actors=["Bill Hader", "Fran Drescher"])
    assert list(data["actors"]) == ["Bill Hader", "Fran Drescher"]
    assert set(np.unique(data["labels"])) == {0, 1} and len(data["labels"]) == 2 * 56
    with pytest.raises(ValueError, match="not in the dataset"):
        faces.load_faces(path=path, actors=["Nobody"])


def test_real_faces_quick_part7_above_chance(real_faces, tmp_path):
    metrics = faces.main(["part7", "--quick", "--out", str(tmp_path), "--data",
                          str(real_faces("gray")), "--split-dir", str(tmp_path)])["part7"]
    # six actors: chance 1/6; even the 60-step quick run reaches well over 0.5
    assert metrics["test_accuracy"] > 0.4
    assert metrics["duplicate_groups"] > 0


def test_quick_run_falls_back_to_the_quick_dataset_and_keeps_its_split_apart(tmp_path,
                                                                              monkeypatch):
    import get_all_imgs
    monkeypatch.setattr(deepnn_io, "DATA_DIR", tmp_path / "data")
    monkeypatch.delenv("DEEPNN_DATA", raising=False)
    data, _ = synthetic_faces(n_per_actor=9, side=60, n_dup_groups=0)
    quick_dir = tmp_path / "data" / "quick"  # where get_all_imgs.py --quick writes
    deepnn_io.save_npz_atomic(quick_dir / "faces_60x60_gray.npz", **data)
    with pytest.raises(deepnn_io.MissingInputError, match="python get_all_imgs.py"):
        get_all_imgs.load_faces((60, 60), "gray")  # a full run never takes the small dataset
    assert len(get_all_imgs.load_faces((60, 60), "gray", quick=True)["labels"]) == 27
    assert faces.split_sizes(data["labels"], quick=True) == (3, 1)   # a third and a sixth of 9
    assert faces.split_sizes(data["labels"], quick=False) == (30, 15)
    faces.main(["part7", "--quick", "--out", str(tmp_path / "out")])
    assert (quick_dir / "faces_split_seed0.json").exists()
    assert not (tmp_path / "data" / "faces_split_seed0.json").exists()  # the real split's place
    record = json.loads((tmp_path / "out" / "results" / "faces_part7.json").read_text())
    assert record["settings"]["split"]["n_test"] == 9 and record["quick"] is True
