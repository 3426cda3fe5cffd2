"""deepfaces.py: the whole Part 10/11 path on tiny synthetic faces, the feature cache, the split.

Synthetic runs use a temporary data/ folder (deepnn_io.DATA_DIR patched) holding a 12-face
227x227 dataset of 3 actors, a faces.py split file, and for AlexNet weights generated here in
bvlc_alexnet.npy's format. The real-weights test needs DEEPNN_DATA and skips without it.
"""
import json

import numpy as np
import pytest

import deepfaces
import deepnn_io
import faces
import myalexnet

ACTORS = ["Ann A", "Bob B", "Cid C"]


def write_synthetic_faces(data_dir, n_per_actor=4, seed=0):
    """faces_227x227_rgb.npz in get_all_imgs.py's format plus faces.py's split file (seed 0)."""
    rng = np.random.default_rng(seed)
    n = n_per_actor * len(ACTORS)
    labels = np.repeat(np.arange(len(ACTORS)), n_per_actor).astype(np.int64)
    images = rng.integers(0, 60, (n, 227, 227, 3)).astype(np.uint8)
    for i, a in enumerate(labels):  # each actor a bright square in another place
        images[i, 40 + 50 * a: 100 + 50 * a, 60:160, a] = 220
    face_ids = np.arange(100, 100 + n, dtype=np.int64)
    data_dir.mkdir(parents=True, exist_ok=True)
    np.savez(data_dir / "faces_227x227_rgb.npz", images=images, labels=labels,
             actors=np.array(ACTORS), face_ids=face_ids,
             sha256=np.array([f"{i:064x}" for i in range(n)]))
    split = {"train": [], "val": [], "test": []}
    for a in range(len(ACTORS)):
        ids = face_ids[labels == a]
        split["train"] += ids[:-2].tolist()
        split["val"].append(int(ids[-2]))
        split["test"].append(int(ids[-1]))
    (data_dir / "faces_split_seed0.json").write_text(json.dumps(
        {"seed": 0, "n_test": 1, "n_val": 1, "duplicate_groups": 0, "face_ids": split}))
    return images, labels, face_ids


@pytest.fixture
def synthetic(tmp_path, monkeypatch):
    data_dir = tmp_path / "data"
    monkeypatch.setattr(deepnn_io, "DATA_DIR", data_dir)
    monkeypatch.setenv("DEEPNN_DATA", str(tmp_path / "no_shared_data"))
    images, labels, face_ids = write_synthetic_faces(data_dir)
    return {"data": data_dir, "out": tmp_path / "out", "images": images, "labels": labels,
            "face_ids": face_ids}


def read(out, part):
    return json.loads((out / "results" / f"deepfaces_{part}.json").read_text())


def test_alexnet_whole_path_and_cache_reuse(synthetic, monkeypatch):
    rng = np.random.default_rng(1)
    myalexnet.save_weights(synthetic["data"] / "bvlc_alexnet.npy",
                           myalexnet.random_weights(rng, stop_at="conv4", scale=0.02))
    out = synthetic["out"]
    deepfaces.main(["all", "--quick", "--out", str(out)])  # auto finds the AlexNet weights
    r10, r11 = read(out, "part10"), read(out, "part11")
    assert r10["settings"]["backbone"] == "alexnet" and r10["settings"]["layer"] == "conv4"
    assert r10["settings"]["feature_shape"] == [13, 13, 384]
    m = r10["metrics"]
    # 12 faces and the 6 training faces mirrored
    assert m["images_extracted_now"] == 18 and m["feature_dimension"] == 13 * 13 * 384
    assert m["extract_images_per_second"] > 0 and m["n_test"] == 3
    for key in ("test_accuracy", "validation_accuracy", "train_accuracy"):
        assert 0.0 <= m[key] <= 1.0
    assert m["part7_test_accuracy"] is None and m["error_rate_reduction"] is None
    assert r10["quick"] is True
    for fig in r10["figures"] + r11["figures"]:
        assert (out / fig).stat().st_size > 1000
    assert set(r11["metrics"]) >= {"top_faces_same_actor_fraction", "input_share_central_region"}
    cache = list(synthetic["data"].glob("features_alexnet_conv4-pool1_*.npz"))
    assert len(cache) == 1

    # the cached features are myalexnet's conv4 of myalexnet.preprocess'ed faces
    z = deepnn_io.load_npz(cache[0])
    weights = myalexnet.load_weights(synthetic["data"] / "bvlc_alexnet.npy", stop_at="conv4")
    faces_in = np.stack([synthetic["images"][0], synthetic["images"][1],
                         synthetic["images"][0][:, ::-1]])  # row 12: the first training face mirrored
    ref = myalexnet.forward(myalexnet.preprocess(faces_in), weights, stop_at="conv4").numpy()
    got = z["features"][[0, 1, 12]].astype(np.float32)
    np.testing.assert_allclose(got, ref, rtol=2e-3, atol=2e-3 * np.abs(ref).max())  # float16: ~1e-3
    assert not np.allclose(got[0], got[2], atol=1e-2 * np.abs(ref).max())

    # a second run extracts nothing: building the network would fail
    monkeypatch.setattr(deepfaces, "build_alexnet", lambda *a, **k: pytest.fail("re-extracted"))
    deepfaces.main(["part10", "--backbone", "alexnet", "--quick", "--out", str(out)])
    again = read(out, "part10")["metrics"]
    assert again["images_extracted_now"] == 0
    assert again["test_accuracy"] == m["test_accuracy"]  # same features, same seed, same net

    # other pixels -> another cache key -> extraction again
    assert deepfaces.pixels_key(synthetic["images"], synthetic["face_ids"]) != deepfaces.pixels_key(
        synthetic["images"][::-1], synthetic["face_ids"])


def test_untrained_mobilenet_whole_path_and_cache_reuse(synthetic, monkeypatch):
    out = synthetic["out"]
    args = ["part10", "--backbone", "mobilenet", "--mobilenet-weights", "none", "--quick",
            "--out", str(out)]
    deepfaces.main(args)
    r10 = read(out, "part10")
    assert r10["settings"]["backbone"] == "mobilenet"
    assert r10["settings"]["layer"] in deepfaces.MOBILENET_CANDIDATES
    assert r10["settings"]["candidates"] == list(deepfaces.MOBILENET_CANDIDATES)
    assert r10["metrics"]["images_extracted_now"] == 18
    shapes = {"conv_pw_9_relu": [7, 7, 512], "conv_pw_11_relu": [7, 7, 512],
              "conv_pw_13_relu": [7, 7, 1024]}
    assert r10["settings"]["feature_shape"] == shapes[r10["settings"]["layer"]]
    for layer in deepfaces.MOBILENET_CANDIDATES:
        assert f"validation_accuracy_{layer}" in r10["metrics"]
    assert len(list(synthetic["data"].glob("features_mobilenet_*.npz"))) == 3

    # each layer's cache stands alone: a run on one of the layers extracts nothing
    monkeypatch.setattr(deepfaces, "build_mobilenet", lambda *a, **k: pytest.fail("re-extracted"))
    deepfaces.main(args + ["--layer", "conv_pw_13_relu"])
    again = read(out, "part10")
    assert again["metrics"]["images_extracted_now"] == 0
    assert again["settings"]["layer"] == "conv_pw_13_relu"
    assert again["metrics"]["validation_accuracy"] == r10["metrics"][
        "validation_accuracy_conv_pw_13_relu"]  # same cached features, same seed, same network


def test_split_made_as_faces_py_makes_it_when_missing(tmp_path, monkeypatch):
    monkeypatch.setattr(deepnn_io, "DATA_DIR", tmp_path)
    monkeypatch.setenv("DEEPNN_DATA", "")
    rng = np.random.default_rng(3)
    n_per = 47  # 30 test + 15 validation + 2 training photos per actor
    labels = np.repeat(np.arange(3), n_per).astype(np.int64)
    face_ids = rng.permutation(np.arange(5000, 5000 + 3 * n_per)).astype(np.int64)
    gray = rng.integers(0, 256, (3 * n_per, 60, 60), dtype=np.uint8)
    np.savez(tmp_path / "faces_60x60_gray.npz", images=gray, labels=labels, actors=np.array(ACTORS), face_ids=face_ids,
             sha256=np.array(["0" * 64] * (3 * n_per)))
    rgb_order = rng.permutation(len(face_ids))  # the RGB dataset may list the faces in any order
    rows = deepfaces.load_split_rows(face_ids[rgb_order], seed=7, log=lambda *a: None)
    assert (tmp_path / "faces_split_seed7.json").exists()
    rgb_labels = labels[rgb_order]
    for name, n in (("test", 30), ("val", 15), ("train", 2)):
        assert np.bincount(rgb_labels[rows[name]], minlength=3).tolist() == [n] * 3
    assert sorted(np.concatenate(list(rows.values())).tolist()) == list(range(3 * n_per))
    # the same photos as faces.py's own split of the grayscale dataset, made from scratch
    groups = faces.duplicate_group_ids(gray, faces.SplitConfig.dup_side,
                                       faces.SplitConfig.dup_threshold)
    gray_split = faces.assign_split(labels, groups, 7, 30, 15)
    for name in ("train", "val", "test"):
        assert set(face_ids[gray_split[name]]) == set(face_ids[rgb_order][rows[name]])


def test_part7_accuracy_read_only_for_the_same_full_test_set(tmp_path):
    assert deepfaces.part7_test_accuracy(tmp_path, 180) is None
    for quick in (True, False):
        deepnn_io.write_results(tmp_path, "faces.py", "part7", seed=0, quick=quick,
                                settings={"split": {"n_test": 180}},
                                metrics={"test_accuracy": 0.88}, figures=[], seconds=1.0)
        assert deepfaces.part7_test_accuracy(tmp_path, 180) == (None if quick else 0.88)
    assert deepfaces.part7_test_accuracy(tmp_path, 3) is None  # another test set


def test_error_rate_reduction_and_feature_scaling():
    assert deepfaces.error_rate_reduction(0.99, 0.90) == pytest.approx(0.9)
    assert deepfaces.error_rate_reduction(0.90, 0.90) == pytest.approx(0.0)
    assert deepfaces.error_rate_reduction(0.95, None) is None
    feats = np.random.default_rng(0).random((6, 2, 2, 3)).astype(np.float16) * 40
    X, rms = deepfaces.features_X(feats, np.array([0, 1, 2]))
    assert X.shape == (6, 12) and X.dtype == np.float32
    np.testing.assert_allclose(np.sqrt(np.mean(X[:3] ** 2)), 1.0, rtol=1e-5)
    assert deepfaces.pool_factor(14, 14) == 2 and deepfaces.pool_factor(13, 14) == 1


def test_real_mobilenet_weights_give_features_of_the_expected_shape(real_data, real_faces):
    path = real_data(deepfaces.MOBILENET_FILE)
    data = deepnn_io.load_npz(real_faces("rgb"))
    images = data["images"][[0, len(data["images"]) // 2, -1]]
    extract, pools, shapes = deepfaces.build_mobilenet(["conv_pw_11_relu", "conv_pw_13_relu"],
                                                       str(path), 1.0, 14)
    assert pools == {"conv_pw_11_relu": 2, "conv_pw_13_relu": 1}
    assert shapes == {"conv_pw_11_relu": (7, 7, 512), "conv_pw_13_relu": (7, 7, 1024)}
    out = {k: v.numpy() for k, v in extract(images).items()}
    assert out["conv_pw_11_relu"].shape == (3, 7, 7, 512)
    assert out["conv_pw_13_relu"].shape == (3, 7, 7, 1024)
    f = out["conv_pw_11_relu"]
    assert np.isfinite(f).all() and f.min() >= 0 and f.max() <= 6.0  # ReLU6, then averaged
    assert f.mean() > 0.01 and not np.allclose(f[0], f[1], atol=1e-2)  # trained: real responses
    # one image alone gives what it gives inside a batch (no batch-dependent preprocessing)
    single = extract(images[:1])["conv_pw_11_relu"].numpy()
    np.testing.assert_allclose(single[0], f[0], rtol=1e-3, atol=1e-4)  # float32 sums: ~1e-6
