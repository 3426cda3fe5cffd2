"""myalexnet.py: layer shapes, grouped conv, LRN, preprocessing and the safe, checked loader.

Weights are generated here and saved in bvlc_alexnet.npy's format (np.save of a dict of
[W, b] lists), so nothing here needs the real 233 MB file.
"""
import os
import sys

import numpy as np
import pytest

import deepnn_io
import myalexnet

EXPECTED_WEIGHTS = {  # the shapes of the real bvlc_alexnet.npy
    "conv1": (11, 11, 3, 96), "conv2": (5, 5, 48, 256), "conv3": (3, 3, 256, 384),
    "conv4": (3, 3, 192, 384), "conv5": (3, 3, 192, 256), "fc6": (9216, 4096),
    "fc7": (4096, 4096), "fc8": (4096, 1000),
}


class _Evil:
    def __reduce__(self):
        return (os.system, ("echo pwned > /dev/null",))


def test_importing_reads_no_weights_and_no_tensorflow():
    import subprocess
    code = ("import sys, myalexnet; print('tensorflow' in sys.modules, "
            "hasattr(myalexnet, 'WEIGHTS'))")
    out = subprocess.run([sys.executable, "-c", code], cwd=myalexnet.deepnn_io.PROJECT_DIR,
                         capture_output=True, text=True, timeout=60)
    assert out.stdout.split() == ["False", "False"], out.stderr


def test_table_implies_the_real_files_shapes():
    shapes = myalexnet.weight_shapes()
    assert {k: w for k, (w, _) in shapes.items()} == EXPECTED_WEIGHTS
    assert all(b == (w[-1],) for w, b in shapes.values())
    acts = myalexnet.layer_shapes()
    assert acts["conv1"] == (57, 57, 96) and acts["maxpool1"] == (28, 28, 96)
    assert acts["conv4"] == (13, 13, 384) and acts["maxpool5"] == (6, 6, 256)
    assert acts["fc8"] == (1000,) and acts["prob"] == (1000,)


def test_forward_shapes_at_every_layer_full_network():
    rng = np.random.default_rng(0)
    weights = myalexnet.random_weights(rng)
    x = myalexnet.preprocess(rng.integers(0, 256, (1, 227, 227, 3), dtype=np.uint8))
    acts = myalexnet.forward(x, weights, keep=True)
    expected = myalexnet.layer_shapes()
    assert list(acts) == list(myalexnet.LAYER_NAMES)
    for name, act in acts.items():
        assert tuple(act.shape) == (1,) + expected[name], name
    prob = acts["prob"].numpy()
    np.testing.assert_allclose(prob.sum(), 1.0, rtol=1e-5)  # float32 softmax sum, error ~1e-7
    # stop_at returns exactly that layer's activation, ReLU'd
    conv4 = myalexnet.forward(x, weights, stop_at="conv4").numpy()
    np.testing.assert_allclose(conv4, acts["conv4"].numpy(), rtol=1e-6, atol=1e-7)
    assert conv4.min() >= 0


def test_extractor_matches_forward_on_a_batch_of_two():
    rng = np.random.default_rng(1)
    weights = myalexnet.random_weights(rng, stop_at="conv4")
    x = myalexnet.preprocess(rng.integers(0, 256, (2, 227, 227, 3), dtype=np.uint8))
    out = myalexnet.make_extractor(weights, "conv4")(x).numpy()
    assert out.shape == (2, 13, 13, 384)
    ref = myalexnet.forward(x, weights, stop_at="conv4").numpy()
    np.testing.assert_allclose(out, ref, rtol=1e-4, atol=1e-5)  # graph vs eager: ~1e-7 apart
    assert not np.allclose(out[0], out[1])  # two different images, two different features


def test_grouped_conv_equals_two_independent_convs_on_halves():
    import tensorflow as tf
    rng = np.random.default_rng(2)
    x = rng.standard_normal((2, 9, 9, 8)).astype(np.float32)
    W = rng.standard_normal((3, 3, 4, 6)).astype(np.float32)
    b = rng.standard_normal(6).astype(np.float32)
    got = myalexnet.grouped_conv(x, W, b, stride=1, padding="SAME", group=2).numpy()
    conv = lambda xi, Wi: tf.nn.conv2d(xi, Wi, 1, "SAME").numpy()
    first = conv(x[..., :4], W[..., :3]) + b[:3]
    second = conv(x[..., 4:], W[..., 3:]) + b[3:]
    np.testing.assert_allclose(got, np.concatenate([first, second], axis=-1), rtol=1e-5, atol=1e-5)
    # and it is not the ungrouped convolution with the kernel repeated over both halves
    full = conv(x, np.concatenate([W, W], axis=2)) + b
    assert not np.allclose(got, full, atol=1e-3)


def test_lrn_equals_its_formula_in_numpy():
    rng = np.random.default_rng(3)
    x = (50 * rng.standard_normal((2, 4, 4, 10))).astype(np.float32)  # large values: LRN bites
    got = myalexnet.lrn(x).numpy()
    r, alpha, beta, bias = 2, 2e-05, 0.75, 1.0
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


def test_loader_roundtrip_in_the_files_format(tmp_path):
    rng = np.random.default_rng(4)
    weights = myalexnet.random_weights(rng, stop_at="conv5")
    path = myalexnet.save_weights(tmp_path / "bvlc_alexnet.npy", weights)
    loaded = myalexnet.load_weights(path, stop_at="conv5")
    assert sorted(loaded) == sorted(weights)
    for name, (W, b) in weights.items():
        np.testing.assert_array_equal(loaded[name][0], W)
        np.testing.assert_array_equal(loaded[name][1], b)
    # asking for layers the file lacks is a clear error, not a KeyError deep in the network
    with pytest.raises(deepnn_io.InputFormatError, match="fc6"):
        myalexnet.load_weights(path, stop_at="fc8")


def test_loader_refuses_code_wrong_shape_and_truncation(tmp_path):
    rng = np.random.default_rng(5)
    weights = myalexnet.random_weights(rng, stop_at="conv2")
    # a pickle that would run code on load
    evil = tmp_path / "evil.npy"
    np.save(evil, {"conv1": [_Evil(), weights["conv1"][1]]}, allow_pickle=True)
    with pytest.raises(deepnn_io.InputFormatError, match="refused"):
        myalexnet.load_weights(evil, stop_at="conv1")
    # a wrong shape (conv2 without grouping: 96 input channels instead of 48)
    wrong = dict(weights, conv2=(np.zeros((5, 5, 96, 256), np.float32), np.zeros(256, np.float32)))
    path = myalexnet.save_weights(tmp_path / "wrong.npy", wrong)
    with pytest.raises(deepnn_io.InputFormatError, match=r"conv2.*\(5, 5, 96, 256\).*\(5, 5, 48, 256\)"):
        myalexnet.load_weights(path, stop_at="conv2")
    # a truncated file
    good = myalexnet.save_weights(tmp_path / "good.npy", weights)
    cut = tmp_path / "cut.npy"
    cut.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    with pytest.raises(deepnn_io.InputFormatError, match="cut.npy"):
        myalexnet.load_weights(cut, stop_at="conv2")
    # not a dict at all
    listy = tmp_path / "list.npy"
    np.save(listy, np.array([1.0, 2.0]))
    with pytest.raises(deepnn_io.InputFormatError, match="dict"):
        myalexnet.load_weights(listy, stop_at="conv1")


def test_missing_file_says_where_to_get_it_and_where_to_put_it(tmp_path, monkeypatch):
    monkeypatch.setattr(deepnn_io, "DATA_DIR", tmp_path / "data")
    monkeypatch.setenv("DEEPNN_DATA", str(tmp_path / "elsewhere"))
    with pytest.raises(deepnn_io.MissingInputError) as err:
        myalexnet.find_weights(download=False)
    text = str(err.value)
    assert "bvlc_alexnet.npy" in text and "guerzhoy/tf_alexnet/bvlc_alexnet.npy" in text
    assert str(tmp_path / "data") in text and "DEEPNN_DATA" in text
