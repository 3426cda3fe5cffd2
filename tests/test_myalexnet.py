"""myalexnet.py: the layer table, grouped convolution, LRN, preprocessing and the checked loader.

Weights are generated here and saved in bvlc_alexnet.npy's format (np.save of a dict of [W, b]
lists), so nothing here needs the real 233 MB file; the one test that reads it skips without it.
"""
import os
import subprocess
import sys

import numpy as np
import pytest

import myalexnet
from apparatus import inputs

EXPECTED_WEIGHTS = {  # the shapes in the real bvlc_alexnet.npy
    "conv1": (11, 11, 3, 96), "conv2": (5, 5, 48, 256), "conv3": (3, 3, 256, 384),
    "conv4": (3, 3, 192, 384), "conv5": (3, 3, 192, 256), "fc6": (9216, 4096),
    "fc7": (4096, 4096), "fc8": (4096, 1000),
}


class _RunsCode:
    """Pickles as a call of os.system: what a malicious weights file would hold."""
    def __reduce__(self):
        return (os.system, ("echo pwned > /dev/null",))


def test_importing_loads_neither_tensorflow_nor_weights():
    code = ("import sys\n"
            "from apparatus import inputs\n"
            "def boom(*args, **kwargs): raise SystemExit('an input was touched at import')\n"
            "inputs.find_input = inputs.locate = inputs.load_npy_object = boom\n"
            "import myalexnet\n"
            "big = [k for k, v in vars(myalexnet).items()\n"
            "       if isinstance(v, myalexnet.np.ndarray) and v.size > 3]\n"
            "print('tensorflow' in sys.modules, big)\n")
    out = subprocess.run([sys.executable, "-c", code], cwd=inputs.PROJECT_DIR,
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0 and out.stdout.split() == ["False", "[]"], out.stderr


def test_the_table_gives_the_handouts_shapes():
    shapes = myalexnet.weight_shapes()
    assert {name: w for name, (w, _) in shapes.items()} == EXPECTED_WEIGHTS
    assert all(b == (w[-1],) for w, b in shapes.values())
    acts = myalexnet.layer_shapes()
    assert acts["conv1"] == (57, 57, 96) and acts["maxpool1"] == (28, 28, 96)
    assert acts["conv2"] == (28, 28, 256) and acts["maxpool2"] == (13, 13, 256)
    assert acts["conv4"] == (13, 13, 384) and acts["maxpool5"] == (6, 6, 256)
    assert acts["fc6"] == (4096,) and acts["prob"] == (1000,)
    assert list(myalexnet.layer_shapes(stop_at="conv4")) == list(myalexnet.LAYER_NAMES[:8])
    with pytest.raises(ValueError, match="conv9"):
        myalexnet.layer_shapes(stop_at="conv9")


def test_forward_builds_the_table_at_every_layer():
    rng = np.random.default_rng(0)
    weights = myalexnet.random_weights(rng)
    x = myalexnet.preprocess(rng.integers(0, 256, (1, 227, 227, 3), dtype=np.uint8))
    acts = myalexnet.forward(x, weights, keep=True)
    assert list(acts) == list(myalexnet.LAYER_NAMES)
    for name, shape in myalexnet.layer_shapes().items():
        assert tuple(acts[name].shape) == (1, *shape), name
    np.testing.assert_allclose(acts["prob"].numpy().sum(), 1.0, rtol=1e-5)  # float32: ~1e-7 off
    conv4 = myalexnet.forward(x, weights, stop_at="conv4").numpy()
    np.testing.assert_array_equal(conv4, acts["conv4"].numpy())  # the same ops, in the same order
    assert conv4.min() >= 0 and conv4.max() > 0  # after the ReLU, and not all switched off


def test_extractor_matches_forward_on_a_batch_of_two():
    rng = np.random.default_rng(1)
    weights = myalexnet.random_weights(rng, stop_at="conv4")
    x = myalexnet.preprocess(rng.integers(0, 256, (2, 227, 227, 3), dtype=np.uint8))
    out = myalexnet.make_extractor(weights, "conv4")(x).numpy()
    assert out.shape == (2, 13, 13, 384)
    ref = myalexnet.forward(x, weights, stop_at="conv4").numpy()
    np.testing.assert_allclose(out, ref, rtol=1e-4, atol=1e-5)  # graph vs eager: ~1e-7 apart
    assert not np.allclose(out[0], out[1])  # two different images, two different features


def test_grouped_conv_equals_two_separate_convs_on_the_channel_halves():
    import tensorflow as tf
    rng = np.random.default_rng(2)
    x = rng.standard_normal((2, 9, 9, 8)).astype(np.float32)
    W = rng.standard_normal((3, 3, 4, 6)).astype(np.float32)
    b = rng.standard_normal(6).astype(np.float32)
    got = myalexnet.grouped_conv(x, W, b, stride=1, padding="SAME", group=2).numpy()
    conv = lambda xi, Wi: tf.nn.conv2d(xi, Wi, 1, "SAME").numpy()
    halves = [conv(x[..., :4], W[..., :3]) + b[:3], conv(x[..., 4:], W[..., 3:]) + b[3:]]
    np.testing.assert_allclose(got, np.concatenate(halves, axis=-1), rtol=1e-5, atol=1e-5)
    # not the ungrouped convolution with the kernel repeated over both halves
    assert not np.allclose(got, conv(x, np.concatenate([W, W], axis=2)) + b, atol=1e-3)
    # one group is the plain convolution
    W1 = rng.standard_normal((3, 3, 8, 5)).astype(np.float32)
    one = myalexnet.grouped_conv(x, W1, b[:5], stride=2, padding="SAME", group=1).numpy()
    np.testing.assert_allclose(one, tf.nn.conv2d(x, W1, 2, "SAME").numpy() + b[:5], atol=1e-5)


def test_lrn_equals_its_formula_in_numpy():
    rng = np.random.default_rng(3)
    x = (50 * rng.standard_normal((2, 4, 4, 10))).astype(np.float32)  # large values: LRN bites
    got = myalexnet.lrn(x).numpy()
    r, alpha, beta, bias = 2, 2e-05, 0.75, 1.0  # the handout's settings
    sq = x.astype(np.float64) ** 2
    expected = np.empty_like(sq)
    for d in range(x.shape[-1]):
        window = sq[..., max(0, d - r): d + r + 1].sum(axis=-1)
        expected[..., d] = x[..., d] / (bias + alpha * window) ** beta
    np.testing.assert_allclose(got, expected, rtol=1e-5)  # float32 vs float64: ~1e-7 relative
    assert not np.allclose(got, x, rtol=1e-2)  # the normalisation changed the values


def test_preprocess_really_swaps_channels_and_subtracts_the_mean():
    img = np.zeros((227, 227, 3), dtype=np.uint8)
    img[..., 0], img[..., 1], img[..., 2] = 200, 100, 10  # R, G, B
    x = myalexnet.preprocess(img)
    assert x.shape == (1, 227, 227, 3) and x.dtype == np.float32
    np.testing.assert_allclose(x[0, 0, 0], np.array([10, 100, 200]) - myalexnet.IMAGENET_MEAN_BGR,
                               rtol=1e-6)
    assert img[0, 0, 0] == 200  # input untouched
    x_img = myalexnet.preprocess(img, mean="image")
    np.testing.assert_allclose(x_img[0, 0, 0], np.array([10, 100, 200]) - 310 / 3, rtol=1e-5)
    with pytest.raises(ValueError, match="227"):
        myalexnet.preprocess(np.zeros((1, 60, 60, 3), dtype=np.uint8))
    with pytest.raises(ValueError, match="mean"):
        myalexnet.preprocess(img, mean="median")


def test_generated_weights_in_the_files_format_load_and_run(tmp_path):
    rng = np.random.default_rng(4)
    weights = myalexnet.random_weights(rng, stop_at="conv5")
    path = myalexnet.save_weights(tmp_path / "bvlc_alexnet.npy", weights)
    raw = np.load(path, allow_pickle=True).item()  # trusted here: we just wrote it
    assert isinstance(raw, dict) and all(isinstance(raw[k], list) and len(raw[k]) == 2 for k in raw)
    loaded = myalexnet.load_weights(path, stop_at="conv5")
    assert list(loaded) == list(weights)
    for name, (W, b) in weights.items():
        np.testing.assert_array_equal(loaded[name][0], W)
        np.testing.assert_array_equal(loaded[name][1], b)
    x = myalexnet.preprocess(rng.integers(0, 256, (1, 227, 227, 3), dtype=np.uint8))
    np.testing.assert_array_equal(myalexnet.forward(x, loaded, stop_at="conv4").numpy(),
                                  myalexnet.forward(x, weights, stop_at="conv4").numpy())
    # asking for layers the file lacks is a clear error, not a KeyError deep in the network
    with pytest.raises(inputs.InputFormatError, match="fc6"):
        myalexnet.load_weights(path, stop_at="fc8")


def test_loader_refuses_code_wrong_shapes_nans_and_cut_files(tmp_path):
    weights = myalexnet.random_weights(np.random.default_rng(5), stop_at="conv2")

    def refused(name, content, match, save=myalexnet.save_weights):
        path = tmp_path / name
        save(path, content)
        with pytest.raises(inputs.InputFormatError, match=match):
            myalexnet.load_weights(path, stop_at="conv2")

    evil = dict(weights, conv1=(_RunsCode(), weights["conv1"][1]))
    refused("evil.npy", evil, "refused global .*system",
            save=lambda p, w: np.save(p, {k: list(v) for k, v in w.items()}, allow_pickle=True))
    # conv2 without its two groups: 96 input channels instead of 48
    wrong = dict(weights, conv2=(np.zeros((5, 5, 96, 256), np.float32), weights["conv2"][1]))
    refused("wrong.npy", wrong, r"conv2.*\(5, 5, 96, 256\).*\(5, 5, 48, 256\)")
    nan_w = weights["conv1"][0].copy()
    nan_w[0, 0, 0, 0] = np.nan
    refused("nan.npy", dict(weights, conv1=(nan_w, weights["conv1"][1])), "conv1.*finite")
    refused("missing.npy", {"conv1": weights["conv1"]}, "conv2.*missing")
    refused("list.npy", np.arange(4.0), "dict", save=np.save)
    refused("plain_cut.npy", np.arange(1000.0), "truncated",
            save=lambda p, a: (np.save(p, a), p.write_bytes(p.read_bytes()[:600])))
    good = myalexnet.save_weights(tmp_path / "good.npy", weights)
    refused("cut.npy", None, "cut.npy",
            save=lambda p, _: p.write_bytes(good.read_bytes()[: good.stat().st_size // 2]))


def test_missing_file_says_where_to_get_it_and_where_to_put_it(tmp_path, monkeypatch):
    monkeypatch.setattr(inputs, "DATA_DIR", tmp_path / "data")
    monkeypatch.setenv("DEEPNN_DATA", str(tmp_path / "elsewhere"))
    with pytest.raises(inputs.MissingInputError) as err:
        myalexnet.find_weights(download=False)
    text = str(err.value)
    assert "bvlc_alexnet.npy" in text and "guerzhoy/tf_alexnet/bvlc_alexnet.npy" in text
    assert str(tmp_path / "data") in text and "DEEPNN_DATA" in text


def test_the_real_weights_pass_the_checks(real_data):
    weights = myalexnet.load_weights(real_data(myalexnet.WEIGHTS_FILE))
    assert {name: W.shape for name, (W, _) in weights.items()} == EXPECTED_WEIGHTS


def test_an_unreadable_image_is_named_before_the_weights_are_looked_for(tmp_path, monkeypatch):
    monkeypatch.setattr(inputs, "find_input", lambda *a, **k: pytest.fail("looked for weights"))
    (tmp_path / "notes.txt").write_text("not a picture")
    for path in (tmp_path / "notes.txt", tmp_path / "missing.jpg"):
        with pytest.raises(inputs.UserError, match=f"{path.name}: not a readable image"):
            myalexnet.main([str(path), "--out", str(tmp_path / "out")])
