"""faces.py: the network's gradient and training, the split as faces.py uses it, each part --quick.

Synthetic data throughout (tiny shapes): Gaussian blobs for the trainer, and 60x60 "faces" (one
smooth pattern per actor plus noise, some planted near-duplicates) in a temporary data/ folder
(conftest.py's ``data_dir``). One real-data quick Part 7 skips when the real faces are absent.
"""
import dataclasses
import json
import os

import numpy as np
import pytest
from apparatus.inputs import UserError
import tensorflow as tf

import faces
from apparatus import facedata, inputs, runs
from fakes import ACTORS, save_synthetic


def blobs(n_per_class=50, K=3, D=20, seed=0):
    """K well-separated Gaussian clusters in D dimensions: X (N, D) float32, y (N,)."""
    rng = np.random.default_rng(seed)
    y = np.repeat(np.arange(K), n_per_class)
    X = (rng.normal(0, 1.0, (K, D))[y] + rng.normal(0, 0.7, (len(y), D))).astype(np.float32)
    order = rng.permutation(len(y))
    split = {"train": order[:len(y) // 2], "val": order[len(y) // 2:3 * len(y) // 4],
             "test": order[3 * len(y) // 4:]}
    return X, y, split


SMALL = faces.TrainSettings(hidden_units=16, iterations=120, eval_every=20, train_eval_every=20,
                            batch_size=16, learning_rate=0.01, patience=None)


def synthetic_faces(n_per_actor=56, side=60, seed=0, n_dup_groups=4):
    """A dataset dict of fake faces and the planted near-duplicate groups (row indices)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:side, 0:side] / side
    protos = [128 + 60 * np.sin(2 * np.pi * (k + 1) * xx) * np.cos(np.pi * (k + 1) * yy)
              for k in range(len(ACTORS))]
    labels = np.repeat(np.arange(len(ACTORS)), n_per_actor)
    images = np.stack([protos[k] + rng.normal(0, 40, (side, side)) for k in labels])
    planted = []
    for g in range(n_dup_groups):  # copies of one photo, slightly re-encoded
        rows = np.flatnonzero(labels == g % len(ACTORS))[g * 3:g * 3 + 3]
        images[rows[1:]] = images[rows[0]] + rng.normal(0, 2, (2, side, side))
        planted.append(rows)
    face_ids = rng.permutation(np.arange(1000, 1000 + len(labels)))
    return {"images": np.clip(images, 0, 255).astype(np.uint8), "labels": labels,
            "actors": ACTORS, "face_ids": face_ids,
            "sha256": [f"{i:064x}" for i in range(len(labels))]}, planted


def read(out, part):
    return json.loads((out / "results" / f"faces_{part}.json").read_text())


# ---------------------------------------------------------------------------------------
# The network and its trainer
# ---------------------------------------------------------------------------------------

def test_autodiff_gradient_matches_the_hand_written_backward_pass():
    rng = np.random.default_rng(0)
    X, y, lam = rng.normal(size=(5, 7)).astype(np.float32), np.array([0, 1, 2, 1, 0]), 0.1
    p = faces.init_params(7, 4, 3, faces.TrainSettings(init_scale=1.0), rng)
    params = {k: tf.Variable(v) for k, v in p.items()}
    with tf.GradientTape() as tape:  # the cost train_net minimises
        ce = tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(
            labels=y, logits=faces.logits(params, X)))
        cost = ce + lam * (tf.reduce_sum(params["W0"] ** 2) + tf.reduce_sum(params["W1"] ** 2))
    auto = dict(zip(params, tape.gradient(cost, list(params.values()))))
    H = np.tanh(X @ p["W0"] + p["b0"])  # NumPy: forward, then backward by hand
    O = H @ p["W1"] + p["b1"]
    P = np.exp(O - O.max(axis=1, keepdims=True))
    dO = (P / P.sum(axis=1, keepdims=True) - np.eye(3)[y]) / len(y)
    dH = dO @ p["W1"].T * (1 - H ** 2)
    hand = {"W0": X.T @ dH + 2 * lam * p["W0"], "b0": dH.sum(0),
            "W1": H.T @ dO + 2 * lam * p["W1"], "b1": dO.sum(0)}
    for k in hand:  # float32 arithmetic on both sides: ~1e-7 relative
        np.testing.assert_allclose(auto[k].numpy(), hand[k], rtol=1e-4, atol=1e-6)


def test_training_lowers_the_cost_and_beats_chance():
    X, y, split = blobs()
    params, history = faces.train_net(X, y, split, SMALL, seed=0)
    assert len(history["iteration"]) == len(history["test_accuracy"]) > 1
    assert history["train_cost"][-1] < 0.5 * history["train_cost"][0]
    # three separated clusters: chance is 1/3; they are learnt to > 0.85 within 120 steps
    assert faces.accuracy(params, X[split["test"]], y[split["test"]]) > 0.85
    assert [params[k].shape for k in ("W0", "b0", "W1", "b1")] == [(20, 16), (16,), (16, 3), (3,)]


def test_the_training_rows_are_evaluated_every_train_eval_every_steps():
    X, y, split = blobs()
    settings = dataclasses.replace(SMALL, train_eval_every=50)
    _, history = faces.train_net(X, y, split, settings, seed=0)
    assert history["iteration"] == [20, 40, 60, 80, 100, 120]
    assert np.isfinite(history["val_accuracy"]).all()
    # at the multiples of 50 that are evaluation points, and at the last step
    assert [np.isfinite(c) for c in history["train_cost"]] == [False] * 4 + [True] * 2


def test_same_seed_same_numbers_other_seed_other_numbers():
    X, y, split = blobs()
    plain = faces.TrainSettings(hidden_units=8, iterations=40, eval_every=10, patience=None)
    noisy = dataclasses.replace(plain, input_noise=0.3, dropout=0.2)  # drawn from the seed too
    histories = []
    for settings in (plain, noisy):  # the runs of one shape share one compiled network ...
        (p, h), (p_again, h_again), (p_other, h_other) = (
            faces.train_net(X, y, split, settings, seed=s) for s in (3, 3, 4))
        assert h == h_again and h["train_cost"] != h_other["train_cost"]
        # ... and each gets its own copy of the weights, which later runs leave alone
        assert all(np.array_equal(p[k], p_again[k]) for k in p)
        assert not np.array_equal(p["W0"], p_other["W0"])
        histories.append(h)
    assert histories[0]["train_cost"] != histories[1]["train_cost"]


def test_weight_decay_shrinks_the_weights():
    X, y, split = blobs()
    norms = []
    for lam in (0.0, 0.05):
        params, _ = faces.train_net(X, y, split, faces.TrainSettings(
            hidden_units=16, l2=lam, iterations=150, eval_every=50, learning_rate=0.01,
            early_stopping=False, patience=None), seed=0)
        norms.append(sum(np.sum(params[k] ** 2) for k in ("W0", "W1")))
    assert norms[1] < 0.7 * norms[0]  # same init and batches: decay pulls the norm well down


def test_usefulness_prefers_the_unit_that_fires_for_the_actor():
    H_act = np.array([[0.9, 0.0], [0.8, 0.1], [-0.9, 0.0], [-0.8, -0.1]])
    scores = faces.unit_usefulness(H_act, np.array([0, 0, 1, 1]), np.full((2, 2), 2.0), actor=0)
    assert scores[0] > scores[1] > -1e-9


def test_a_sweep_has_its_own_name_and_the_scalar_is_refused_where_a_part_sweeps_it():
    run = runs.Run("faces.py", overrides={"hidden_sweep": 600})
    assert run.settings(faces.Part7).hidden_sweep == (600,)
    assert runs.Run("faces.py", quick=True).settings(faces.Part8).l2_sweep == (0.0, 1e-3, 1e-1)
    for name, part in (("hidden_units", "part7"), ("l2", "part8")):
        with pytest.raises(UserError, match=f"--set {name}: {part} sweeps"):
            runs.make_settings(faces.PARTS[part].settings, overrides={name: 1}, part=part)


@pytest.mark.parametrize("script", ["digits", "faces", "deepfaces"])
def test_every_setting_name_shared_by_two_parts_means_one_thing_or_stops_at_once(script):
    """For each name that two parts of a script share, --set with its default value either
    gives every part that value (the same type: a scalar stays a scalar) or stops the whole
    command before any part runs, naming the setting and the part."""
    import importlib
    module = importlib.import_module(script)
    parts = {n: runs.settings_class(c) for n, c in
             getattr(module, "PARTS", getattr(module, "SETTINGS", {})).items()}
    parts = {n: c for n, c in parts.items() if c is not None}
    names = {}
    for part, cls in parts.items():
        for name in runs.setting_names(cls):
            names.setdefault(name, []).append(part)
    for name, users in ((n, u) for n, u in names.items() if len(u) > 1):
        kinds = set()
        for part in users:
            default = runs.make_settings(parts[part])
            for bit in name.split("."):
                default = getattr(default, bit)
            try:
                value = runs.make_settings(parts[part], overrides={name: default}, part=part)
            except UserError as err:
                assert name in str(err) and part in str(err)
                continue
            for bit in name.split("."):
                value = getattr(value, bit)
            kinds.add(type(value).__name__)
        kinds.discard("NoneType")  # an optional scalar (patience: int | None) is still a scalar
        assert len(kinds) <= 1, f"{script}: {name} is {kinds} in {users}"


# ---------------------------------------------------------------------------------------
# The split, as faces.py uses it
# ---------------------------------------------------------------------------------------

def test_split_keeps_duplicates_together_and_is_deterministic(data_dir):
    data, planted = synthetic_faces()
    save_synthetic(data_dir, data)
    run = runs.Run("faces.py", seed=1)
    _, split, record = faces.load_faces_and_split(run, ACTORS)
    assert record["duplicate_groups"] == len(planted)
    for k, n in (("test", 30), ("val", 15)):
        assert np.bincount(data["labels"][split[k]]).tolist() == [n] * 3
    where = {int(r): k for k in split for r in split[k]}
    assert sorted(where) == list(range(len(data["labels"])))  # disjoint and complete
    assert all(len({where[int(r)] for r in group}) == 1 for group in planted)
    path = facedata.split_path(ACTORS, 1, data_dir)
    path.unlink()  # made again from scratch: the same split
    again = faces.load_faces_and_split(run, ACTORS)[1]
    assert all(np.array_equal(split[k], again[k]) for k in split) and path.exists()
    other = faces.load_faces_and_split(runs.Run("faces.py", seed=2), ACTORS)[1]
    assert not np.array_equal(split["test"], other["test"])


def test_quick_split_sizes_shrink_only_for_a_small_dataset():
    assert facedata.quotas(np.repeat(np.arange(3), 9), quick=True) == (3, 1)
    assert facedata.quotas(np.repeat(np.arange(3), 9), quick=False) == (30, 15)
    assert facedata.quotas(np.repeat(np.arange(3), 80), quick=True) == (30, 15)


# ---------------------------------------------------------------------------------------
# The parts, end to end on synthetic faces
# ---------------------------------------------------------------------------------------

def test_every_part_runs_quick_into_its_folder(data_dir, tmp_path):
    data, planted = synthetic_faces()
    save_synthetic(data_dir, data)
    out = tmp_path / "out"
    results = faces.main(["all", "--quick", "--out", str(out), "--actors", ",".join(ACTORS)])
    assert set(results) == {"part7", "part8", "part9"}
    p7, p8, p9 = (read(out, p) for p in ("part7", "part8", "part9"))
    assert p7["quick"] and p7["metrics"]["duplicate_groups"] == len(planted)
    assert p7["metrics"]["test_accuracy"] > 1 / 3  # three actors: above chance
    assert p7["metrics"]["hidden_units"] in (16, 32) and p7["settings"]["n_seeds"] == 2
    assert {"best_lambda", "gain_points_mean", "test_accuracy_no_decay_mean"} <= set(p8["metrics"])
    assert set(p9["metrics"]) >= {"units_drescher", "units_carell"}
    for rec in (p7, p8, p9):
        assert all((out / fig).stat().st_size > 1000 for fig in rec["figures"])


def test_an_actor_set_writes_its_files_under_its_own_names(data_dir, tmp_path):
    data, _ = synthetic_faces(n_per_actor=9, n_dup_groups=0)  # a get_all_imgs.py --quick set
    save_synthetic(data_dir / "quick", data)
    faces.main(["part7", "--quick", "--actors", ",".join(ACTORS)])
    tag = facedata.actors_tag(ACTORS)
    record = read(tmp_path / "runs" / f"quick-actors-{tag}", "part7")
    assert record["split"]["test"] == 9 and record["metrics"]["n_test"] == 9  # a third of 9 x 3
    assert (data_dir / "quick" / f"faces_{tag}_split_seed0.json").exists()
    assert not list(data_dir.glob("*split*"))  # the real split's place is left alone
    with pytest.raises(inputs.MissingInputError, match="get_all_imgs.py"):
        faces.main(["part7", "--actors", ",".join(ACTORS)])  # a full run never takes it


def test_part9_with_an_actor_not_in_the_dataset_is_a_user_error(data_dir, tmp_path):
    data, _ = synthetic_faces(n_dup_groups=0)
    save_synthetic(data_dir, data)
    with pytest.raises(inputs.UserError, match="Alec Baldwin"):
        faces.main(["part9", "--quick", "--out", str(tmp_path), "--actors", ",".join(ACTORS),
                    "--set", "actors=('Alec Baldwin','Bill Hader')"])


def test_real_faces_quick_part7_above_chance(real_faces, tmp_path, monkeypatch):
    folder = real_faces("gray").parent  # found on the search path, or built for this session
    monkeypatch.setenv("DEEPNN_DATA", f"{folder}{os.pathsep}{os.environ.get('DEEPNN_DATA', '')}")
    metrics = faces.main(["part7", "--quick", "--out", str(tmp_path)])["part7"]
    assert metrics["test_accuracy"] > 0.4 and metrics["duplicate_groups"] > 0  # chance: 1/6
