"""deepfaces.py: Parts 10-11 on tiny synthetic faces, Part 10's file for Part 11, the feature
cache, the weights' errors.

A temporary data/ holds a 12-face dataset of three actors at 227x227 RGB and 60x60 gray (the
split is made on the gray one), AlexNet weights generated in bvlc_alexnet.npy's exact format, and
an untrained MobileNet saved as a Keras weights file (its sha256 registered for the test).
"""
import hashlib
import json

import numpy as np
import pytest

import deepfaces
import faces
import myalexnet
from apparatus import facedata, inputs, runs
from fakes import ACTORS, save_synthetic

TAG = facedata.actors_tag(ACTORS)


@pytest.fixture
def synthetic(data_dir):
    """Four faces per actor (each actor a bright square in its own place) in both datasets."""
    rng = np.random.default_rng(0)
    labels = np.repeat(np.arange(len(ACTORS)), 4)
    images = rng.integers(0, 60, (len(labels), 227, 227, 3)).astype(np.uint8)
    for i, a in enumerate(labels):
        images[i, 40 + 50 * a:100 + 50 * a, 60:160, a] = 220
    data = {"labels": labels, "actors": ACTORS, "face_ids": np.arange(100, 100 + len(labels)),
            "sha256": ["0" * 64] * len(labels)}
    save_synthetic(data_dir, dict(data, images=images), (227, 227), "rgb")
    gray = rng.integers(0, 256, (len(labels), 60, 60)).astype(np.uint8)  # no near-duplicates
    save_synthetic(data_dir, dict(data, images=gray))
    return {"data": data_dir, "images": images}


def read(out, part):
    return json.loads((out / "results" / f"deepfaces_{part}.json").read_text())


def test_alexnet_whole_path_cache_and_part7_of_the_same_run(synthetic, tmp_path, monkeypatch):
    myalexnet.save_weights(synthetic["data"] / "bvlc_alexnet.npy", myalexnet.random_weights(
        np.random.default_rng(1), stop_at="conv4", scale=0.02))
    out, actors = tmp_path / "out", ["--actors", ",".join(ACTORS)]
    deepfaces.main(["all", "--quick", "--backbone", "alexnet", "--out", str(out)] + actors)
    r10, r11 = read(out, "part10"), read(out, "part11")
    assert r10["layer"] == "conv4" and r10["feature_shape"] == [13, 13, 384]
    m = r10["metrics"]
    # quick split of 4 faces per actor: 2 train, 1 val, 1 test; the 6 training faces mirrored
    assert m["images_extracted_now"] == 18 and m["n_test"] == 3
    assert m["feature_dimension"] == 13 * 13 * 384 and m["extract_images_per_second"] > 0
    assert m["part7_test_accuracy"] is None and m["error_rate_reduction"] is None
    assert r11["layer"] == "conv4" and "top_faces_same_actor_fraction" in r11["metrics"]
    assert all((out / f).stat().st_size > 1000 for f in r10["figures"] + r11["figures"])

    # the cache holds myalexnet's conv4 of myalexnet.preprocess'ed faces; rows 12..: mirrors
    cache = synthetic["data"] / "quick" / f"features_alexnet_conv4_pool1_{TAG}.npz"
    z = inputs.load_npz(cache)
    weights = myalexnet.load_weights(synthetic["data"] / "bvlc_alexnet.npy", stop_at="conv4")
    t = facedata.rows_of(np.arange(100, 112), facedata.load_split(ACTORS, 0, True)[2])["train"][0]
    face = synthetic["images"][t]  # the first training face; row 12: its mirror image
    ref = myalexnet.forward(myalexnet.preprocess(np.stack([face, face[:, ::-1]])), weights,
                            stop_at="conv4").numpy()
    got = z["features"][[t, 12]].astype(np.float32)
    np.testing.assert_allclose(got, ref, rtol=2e-3, atol=2e-3 * np.abs(ref).max())  # float16

    # Part 7 in the same run folder: its test accuracy is what Part 10 compares against
    faces.main(["part7", "--quick", "--out", str(out)] + actors)
    monkeypatch.setattr(myalexnet, "load_weights", lambda *a, **k: pytest.fail("re-extracted"))
    deepfaces.main(["part10", "--quick", "--backbone", "alexnet", "--out", str(out)] + actors)
    again = read(out, "part10")["metrics"]
    before = json.loads((out / "results" / "faces_part7.json").read_text())["metrics"]
    assert again["images_extracted_now"] == 0 and again["test_accuracy"] == m["test_accuracy"]
    assert again["part7_test_accuracy"] == before["test_accuracy"] and before["n_test"] == 3
    if before["test_accuracy"] < 1:
        assert again["error_rate_reduction"] == pytest.approx(
            1 - (1 - m["test_accuracy"]) / (1 - before["test_accuracy"]))
    # Part 7 of another seed in the same folder split the faces otherwise: not compared with
    faces.main(["part7", "--quick", "--seed", "1", "--out", str(out)] + actors)
    deepfaces.main(["part10", "--quick", "--backbone", "alexnet", "--out", str(out)] + actors)
    assert read(out, "part10")["metrics"]["part7_test_accuracy"] is None


def test_part11_alone_draws_part10s_file_and_gives_the_same_metrics(synthetic, tmp_path,
                                                                    monkeypatch, capsys):
    myalexnet.save_weights(synthetic["data"] / "bvlc_alexnet.npy", myalexnet.random_weights(
        np.random.default_rng(1), stop_at="conv4", scale=0.02))
    args = ["--quick", "--backbone", "alexnet", "--actors", ",".join(ACTORS)]
    together, apart = tmp_path / "together", tmp_path / "apart"
    loads, load_faces = [], facedata.load_faces
    monkeypatch.setattr(facedata, "load_faces", lambda *a, **k: loads.append(a) or load_faces(
        *a, **k))
    deepfaces.main(["all", "--out", str(together)] + args)
    # Part 11 took Part 10's RGB faces (and split and features): one load of each a run
    assert [a[1:3] for a in loads].count((deepfaces.SIZE, "rgb")) == 1 < len(loads) == 2
    deepfaces.main(["part10", "--out", str(apart)] + args)
    assert (apart / "results" / deepfaces.HEAD_FILE).exists()
    monkeypatch.setattr(deepfaces, "train_net", lambda *a, **k: pytest.fail("Part 11 trained"))
    deepfaces.main(["part11", "--out", str(apart)] + args)
    assert read(apart, "part11")["metrics"] == read(together, "part11")["metrics"]
    # Part 10's network of seed 0 is not that of seed 1: stopped before any work
    capsys.readouterr()
    with pytest.raises(SystemExit) as stop:
        runs.main_guard(lambda: deepfaces.main(["part11", "--seed", "1", "--out", str(apart)]
                                               + args))
    err = capsys.readouterr().err
    assert stop.value.code == 2 and err.count("\n") == 1 and "of another run (seed 0" in err
    assert "python deepfaces.py part10 --quick --seed 1 --backbone alexnet --actors" in err


def test_part11_without_part10s_file_is_one_line_and_exit_2(synthetic, tmp_path, capsys,
                                                            monkeypatch):
    monkeypatch.setattr(deepfaces, "prepare", lambda *a: pytest.fail("faces loaded"))
    argv = ["part11", "--quick", "--out", str(tmp_path / "out"), "--actors", ",".join(ACTORS)]
    with pytest.raises(SystemExit) as stop:
        runs.main_guard(lambda: deepfaces.main(argv))
    err = capsys.readouterr().err
    assert stop.value.code == 2 and err.startswith("error: ") and err.count("\n") == 1
    assert f"{deepfaces.HEAD_FILE}: Part 10's network, which part11 draws, is missing" in err
    assert err.rstrip().endswith(f"python deepfaces.py part10 --quick --actors "
                                 f"\"{','.join(ACTORS)}\" --out {tmp_path / 'out'}")
    assert not (tmp_path / "out").exists()


def test_a_stale_or_invalid_cache_is_made_again(synthetic):
    myalexnet.save_weights(synthetic["data"] / "bvlc_alexnet.npy", myalexnet.random_weights(
        np.random.default_rng(1), stop_at="conv4", scale=0.02))
    run, images = runs.Run("deepfaces.py", quick=True), synthetic["images"][:3]

    def extracted():
        return deepfaces.features_of("alexnet", ["conv4"], images, run, deepfaces.Part10(),
                                     ACTORS)["extracted"]
    assert extracted() == 3 and extracted() == 0
    cache = synthetic["data"] / "quick" / f"features_alexnet_conv4_pool1_{TAG}.npz"
    z = inputs.load_npz(cache)
    for broken in ({**z, "features": np.full_like(z["features"], np.nan)},   # NaN
                   {**z, "features": z["features"][:, :5]},                  # wrong shape
                   {**z, "key": np.array("0" * 16)}):                        # other pixels
        inputs.save_npz(cache, **broken)
        assert extracted() == 3
    cache.write_bytes(b"not a zip")  # damaged
    assert extracted() == 3 and extracted() == 0


@pytest.fixture
def mobilenet_weights(synthetic, monkeypatch):
    """An untrained MobileNet in the Keras weights file the script looks for."""
    import keras
    path = synthetic["data"] / deepfaces.MOBILENET_FILE
    keras.applications.MobileNet(alpha=1.0, include_top=False, weights=None,
                                 input_shape=(224, 224, 3)).save_weights(path)
    monkeypatch.setitem(inputs.REGISTRY, deepfaces.MOBILENET_FILE,
                        (None, (hashlib.sha256(path.read_bytes()).hexdigest(),)))
    return path


def test_mobilenet_whole_path_and_one_cache_per_layer(mobilenet_weights, tmp_path):
    args = ["part10", "--quick", "--out", str(tmp_path), "--actors", ",".join(ACTORS)]
    deepfaces.main(args)
    r10 = read(tmp_path, "part10")
    assert r10["layer"] in deepfaces.CANDIDATES["mobilenet"] and r10["metrics"][
        "images_extracted_now"] == 18
    shapes = {"conv_pw_9_relu": [7, 7, 512], "conv_pw_11_relu": [7, 7, 512],
              "conv_pw_13_relu": [7, 7, 1024]}  # 14x14 maps pooled 2x2, 7x7 ones not
    assert r10["feature_shape"] == shapes[r10["layer"]]
    assert len(list(mobilenet_weights.parent.glob(f"quick/features_mobilenet_*_{TAG}.npz"))) == 3
    deepfaces.main(args + ["--set", "layer_sweep=conv_pw_13_relu"])  # each layer's own cache
    again = read(tmp_path, "part10")
    assert again["metrics"]["images_extracted_now"] == 0 and again["layer"] == "conv_pw_13_relu"
    assert again["metrics"]["validation_accuracy"] == r10["metrics"][
        "validation_accuracy_conv_pw_13_relu"]  # same features, seed and network


def test_missing_or_damaged_mobilenet_weights_say_what_to_do(synthetic, tmp_path):
    args = ["part10", "--quick", "--out", str(tmp_path), "--actors", ",".join(ACTORS)]
    with pytest.raises(inputs.MissingInputError, match=deepfaces.MOBILENET_FILE):
        deepfaces.main(args)
    (synthetic["data"] / deepfaces.MOBILENET_FILE).write_bytes(b"<html>not found</html>")
    with pytest.raises(inputs.InputFormatError, match="wrong sha256"):
        deepfaces.main(args)


def test_real_mobilenet_features_have_the_expected_shape(real_data, real_faces):
    real_data(deepfaces.MOBILENET_FILE)
    images = inputs.load_npz(real_faces("rgb"))["images"][[0, 500, -1]]
    extract, shapes, _ = deepfaces.mobilenet(["conv_pw_11_relu", "conv_pw_13_relu"])
    assert shapes == {"conv_pw_11_relu": (14, 14, 512), "conv_pw_13_relu": (7, 7, 1024)}
    f, g = (a.numpy() for a in extract(images))
    assert f.shape == (3, 7, 7, 512) and g.shape == (3, 7, 7, 1024)
    assert np.isfinite(f).all() and f.min() >= 0 and f.max() <= 6.0  # ReLU6, then averaged
    assert f.mean() > 0.01 and not np.allclose(f[0], f[1], atol=1e-2)  # trained: real responses
    single = extract(images[:1])[0].numpy()  # one image alone gives what it gives in a batch
    np.testing.assert_allclose(single[0], f[0], rtol=1e-3, atol=1e-4)


def test_part10_twice_gives_the_same_metrics_bit_for_bit(mobilenet_weights, tmp_path):
    """Two quick runs into two folders, each extracting its features anew; the second reuses the
    first's compiled network (one process). Every metric is identical, the timing apart."""
    metrics = []
    for out in (tmp_path / "first", tmp_path / "second"):
        for cache in mobilenet_weights.parent.glob(f"quick/features_mobilenet_*_{TAG}.npz"):
            cache.unlink()
        deepfaces.main(["part10", "--quick", "--out", str(out), "--actors", ",".join(ACTORS)])
        metrics.append(read(out, "part10")["metrics"])
        assert metrics[-1].pop("extract_images_per_second") > 0
    assert metrics[0] == metrics[1] and metrics[0]["images_extracted_now"] == 18
