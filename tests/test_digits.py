"""Tests of digits.py: the math on tiny shapes, loaders on bad files, every part under --quick.

The --quick runs use small synthetic stand-ins for mnist_all.mat and snapshot50.pkl written into
tmp_path (found through DEEPNN_DATA), so they run offline in seconds; the real files are checked
in test_real_data when DEEPNN_DATA points at them.
"""
import json
import os
import pickle
from dataclasses import replace

import numpy as np
import pytest

import deepnn_io
import digits


# --------------------------------------------------------------------------- helpers

def tiny_softmax_params(rng, d=6, k=4):
    return {"W": rng.standard_normal((d, k)), "b": rng.standard_normal(k)}


def tiny_tanh_params(rng, d=6, h=5, k=4):
    return {"W0": rng.standard_normal((d, h)), "b0": rng.standard_normal(h),
            "W1": rng.standard_normal((h, k)), "b1": rng.standard_normal(k)}


def tiny_batch(rng, n=5, d=6, k=4):
    X = rng.standard_normal((n, d))
    Y = np.eye(k)[rng.integers(0, k, n)]
    return X, Y


def write_fake_mnist(path, rng, n_train=40, n_test=12, bad=None):
    import scipy.io
    mat = {}
    for d in range(10):
        mat[f"train{d}"] = rng.integers(0, 256, (n_train, 784), dtype=np.uint8)
        mat[f"test{d}"] = rng.integers(0, 256, (n_test, 784), dtype=np.uint8)
    if bad == "shape":
        mat["train3"] = rng.integers(0, 256, (n_train, 783), dtype=np.uint8)
    if bad == "missing":
        del mat["test9"]
    scipy.io.savemat(path, mat)
    return path


def write_fake_snapshot(path, rng, shapes=None):
    shapes = shapes or digits.SNAPSHOT_SHAPES
    obj = {k: (0.05 * rng.standard_normal(s)).astype(np.float32) for k, s in shapes.items()}
    with open(path, "wb") as f:
        pickle.dump(obj, f, protocol=2)
    return path


@pytest.fixture
def fake_data(tmp_path, monkeypatch):
    """A folder with synthetic mnist_all.mat and snapshot50.pkl, put on DEEPNN_DATA."""
    rng = np.random.default_rng(0)
    folder = tmp_path / "inputs"
    folder.mkdir()
    write_fake_mnist(folder / "mnist_all.mat", rng, n_train=220, n_test=110)
    write_fake_snapshot(folder / "snapshot50.pkl", rng)
    monkeypatch.setenv("DEEPNN_DATA", str(folder))
    if (deepnn_io.DATA_DIR / "mnist_all.mat").exists():  # a real copy in data/ would win
        pytest.skip("data/ holds a real mnist_all.mat; the synthetic stand-in would be shadowed")
    return folder


# --------------------------------------------------------------------------- the math

def test_softmax_is_stable_for_huge_logits_and_rows_sum_to_one():
    O = np.array([[1e4, 0.0, -1e4], [1000.0, 1000.0, 1000.0], [-1e5, -1e5 + 1, -1e5 + 2]])
    P = digits.softmax(O)
    assert np.all(np.isfinite(P))
    np.testing.assert_allclose(P.sum(axis=1), 1.0, atol=1e-12)
    np.testing.assert_allclose(P[0], [1, 0, 0], atol=1e-12)
    np.testing.assert_allclose(P[1], [1 / 3] * 3, atol=1e-12)
    e = np.exp([0.0, 1.0, 2.0])
    np.testing.assert_allclose(P[2], e / e.sum(), rtol=1e-12)
    # the NLL of huge logits is finite too (log-softmax, not log(softmax))
    assert np.isfinite(digits.nll_cost(O, np.eye(3)))


def test_forward_shapes():
    rng = np.random.default_rng(0)
    X = rng.random((7, 784)).astype(np.float32)
    assert digits.softmax_forward(digits.init_softmax_params(rng), X).shape == (7, 10)
    H, O = digits.tanh_forward(digits.init_tanh_params(rng), X)
    assert H.shape == (7, 300) and O.shape == (7, 10)
    assert np.all(np.abs(H) <= 1)


@pytest.mark.parametrize("net", ["softmax", "tanh"])
def test_analytic_gradient_matches_finite_differences(net):
    rng = np.random.default_rng(1)
    X, Y = tiny_batch(rng)
    if net == "softmax":
        params, cost, grad = tiny_softmax_params(rng), digits.softmax_cost, digits.softmax_backward
    else:
        params, cost, grad = tiny_tanh_params(rng), digits.tanh_cost, digits.tanh_backward
    table = digits.gradient_check(lambda p: cost(p, X, Y), lambda p: grad(p, X, Y), params, rng,
                                  n_coords=10)
    assert {r["array"] for r in table} == set(params)
    # float64, 4-point stencil: typically 1e-11..1e-10; 1e-7 is Part 3's bar
    assert max(r["rel_error"] for r in table) < 1e-7


def test_gradient_check_catches_a_wrong_gradient():
    rng = np.random.default_rng(2)
    X, Y = tiny_batch(rng)
    params = tiny_tanh_params(rng)

    def wrong(p):
        g = digits.tanh_backward(p, X, Y)
        g["W0"] = g["W0"] * 1.001  # a 0.1% error must show up
        return g
    table = digits.gradient_check(lambda p: digits.tanh_cost(p, X, Y), wrong, params, rng, 10)
    assert max(r["rel_error"] for r in table if r["array"] == "W0") > 1e-4


def test_relative_error_is_safe_near_zero():
    assert digits.relative_error(0.0, 0.0) == 0.0
    assert digits.relative_error(1.0, 1.0 + 2e-9) == pytest.approx(1e-9, rel=1e-3)


@pytest.mark.parametrize("net", ["softmax", "tanh"])
def test_fast_inplace_gradient_equals_pure_gradient(net):
    rng = np.random.default_rng(3)
    X, Y = tiny_batch(rng, n=8, d=784, k=10)
    if net == "softmax":
        params, pure, fast = tiny_softmax_params(rng, 784, 10), digits.softmax_backward, \
            digits.softmax_grad_into
    else:
        params, pure, fast = tiny_tanh_params(rng, 784, 30, 10), digits.tanh_backward, \
            digits.tanh_grad_into
    work = {}
    for _ in range(2):  # the second call reuses the buffers
        got = fast(params, X, Y, -0.5, work)
    want = pure(params, X, Y)
    for k in params:
        np.testing.assert_allclose(got[k], -0.5 * want[k], rtol=1e-10, atol=1e-12)


def test_training_lowers_the_cost_on_a_separable_toy_problem():
    rng = np.random.default_rng(5)
    X = rng.standard_normal((400, 784)).astype(np.float32)
    labels = (X[:, :10].argmax(axis=1)).astype(int)
    Y = digits.one_hot(labels)
    params = digits.init_softmax_params(rng)
    before = digits.evaluate_split(params, X, Y)
    out = digits.train_network(params, digits.softmax_grad_into, X, Y,
                               digits.TrainConfig(epochs=5, batch_size=50, learning_rate=0.05),
                               rng)
    after = digits.evaluate_split(params, X, Y)
    assert len(out["epoch_seconds"]) == 5 and out["iterations"] == 40
    assert after[0] < before[0] / 2 and after[1] > 0.9


def test_shift_images_moves_pixels_and_fills_with_zero():
    X = np.arange(2 * 784, dtype=np.float32).reshape(2, 784) + 1
    out = np.empty_like(X)
    digits.shift_images(X, out, 1, -1)  # one row down, one column left
    src, dst = X.reshape(2, 28, 28), out.reshape(2, 28, 28)
    np.testing.assert_array_equal(dst[:, 1:, :27], src[:, :27, 1:])
    assert not dst[:, 0, :].any() and not dst[:, :, 27].any()
    digits.shift_images(X, out, 0, 0)
    np.testing.assert_array_equal(out, X)


def test_weight_decay_shrinks_weight_matrices_only():
    def zero_grad(params, X, Y, scale, work):
        return {k: np.zeros_like(v) for k, v in params.items()}
    params = {"W": np.ones((3, 2), np.float32), "b": np.ones(2, np.float32)}
    X, Y = np.zeros((10, 3), np.float32), np.zeros((10, 2), np.float32)
    config = digits.TrainConfig(epochs=1, batch_size=10, learning_rate=0.1, momentum=0.0,
                                schedule="constant", weight_decay=0.5)
    digits.train_network(params, zero_grad, X, Y, config, np.random.default_rng(0))
    np.testing.assert_allclose(params["W"], 1 - 0.1 * 0.5, rtol=1e-6)  # one step of -lr*lambda*W
    np.testing.assert_array_equal(params["b"], 1.0)


def test_training_in_one_call_equals_training_an_epoch_per_call_with_state():
    rng = np.random.default_rng(13)
    X = rng.random((200, 784)).astype(np.float32)
    Y = digits.one_hot(rng.integers(0, 10, 200))
    config = digits.TrainConfig(epochs=3, batch_size=50, schedule="constant")
    whole = digits.init_tanh_params(np.random.default_rng(1))
    split = {k: v.copy() for k, v in whole.items()}
    digits.train_network(whole, digits.tanh_grad_into, X, Y, config, np.random.default_rng(2))
    state, order_rng = {}, np.random.default_rng(2)
    for _ in range(3):
        digits.train_network(split, digits.tanh_grad_into, X, Y, replace(config, epochs=1),
                             order_rng, state=state)
    for k in whole:
        np.testing.assert_allclose(split[k], whole[k], rtol=1e-6, atol=1e-7)
    # without the state the momentum restarts at zero: a different run
    fresh = digits.init_tanh_params(np.random.default_rng(1))
    order_rng = np.random.default_rng(2)
    for _ in range(3):
        digits.train_network(fresh, digits.tanh_grad_into, X, Y, replace(config, epochs=1),
                             order_rng)
    assert np.abs(fresh["W0"] - whole["W0"]).max() > 1e-4


def test_backprop_equals_per_weight_gradients():
    rng = np.random.default_rng(6)
    Ws = [rng.standard_normal((5, 5)) / 2 for _ in range(3)]
    x, y = rng.standard_normal(5), rng.uniform(-0.5, 0.5, 5)
    for a, b in zip(digits.deep_backprop(Ws, x, y), digits.deep_per_weight(Ws, x, y)):
        np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-13)
    bp, pw = digits.predicted_cost(3, 5)
    assert bp == 8 * 25 and pw == 3 * 25 + 625 * 3 + 2 * 3 * 125


# --------------------------------------------------------------------------- loaders

def test_load_mnist_reads_a_well_formed_file(tmp_path):
    path = write_fake_mnist(tmp_path / "mnist_all.mat", np.random.default_rng(0), 7, 3)
    data = digits.load_mnist(path)
    assert data["train_x"].shape == (70, 784) and data["train_x"].dtype == np.uint8
    assert data["test_x"].shape == (30, 784)
    np.testing.assert_array_equal(np.bincount(data["train_y"]), [7] * 10)


def test_load_mnist_rejects_a_corrupt_file(tmp_path):
    path = tmp_path / "mnist_all.mat"
    path.write_bytes(b"MATLAB 5.0 MAT-file, this is not really one" + os.urandom(200))
    with pytest.raises(deepnn_io.InputFormatError, match="mnist_all.mat"):
        digits.load_mnist(path)


@pytest.mark.parametrize("bad, words", [("shape", "train3"), ("missing", "test9")])
def test_load_mnist_rejects_wrong_arrays(tmp_path, bad, words):
    path = write_fake_mnist(tmp_path / "mnist_all.mat", np.random.default_rng(0), 5, 2, bad=bad)
    with pytest.raises(deepnn_io.InputFormatError, match=words) as err:
        digits.load_mnist(path)
    assert "mnist_all.mat" in str(err.value)


def test_load_snapshot_reads_and_checks_shapes(tmp_path):
    rng = np.random.default_rng(0)
    params = digits.load_snapshot(write_fake_snapshot(tmp_path / "snapshot50.pkl", rng))
    assert {k: v.shape for k, v in params.items()} == digits.SNAPSHOT_SHAPES
    wrong = dict(digits.SNAPSHOT_SHAPES, W1=(300, 9))
    with pytest.raises(deepnn_io.InputFormatError, match="W1"):
        digits.load_snapshot(write_fake_snapshot(tmp_path / "bad.pkl", rng, wrong))


class _RunsCode:
    def __reduce__(self):
        return (os.system, ("echo pwned",))


def test_load_snapshot_refuses_a_pickle_that_would_run_code(tmp_path):
    path = tmp_path / "snapshot50.pkl"
    path.write_bytes(pickle.dumps({"W0": _RunsCode()}, protocol=2))
    with pytest.raises(deepnn_io.InputFormatError, match="refused"):
        digits.load_snapshot(path)


def test_missing_input_gives_one_clear_message(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("DEEPNN_DATA", str(tmp_path))
    monkeypatch.setattr(deepnn_io, "DATA_DIR", tmp_path / "nowhere")
    monkeypatch.setattr(deepnn_io, "download_file",
                        lambda *a, **k: (_ for _ in ()).throw(OSError("offline")))
    with pytest.raises(SystemExit) as exit_info:
        deepnn_io.run_cli(lambda: digits.main(["part1", "--out", str(tmp_path)]))
    assert exit_info.value.code == 2
    assert "mnist_all.mat" in capsys.readouterr().err


# --------------------------------------------------------------------------- every part, --quick

@pytest.mark.parametrize("part", ["part1", "part2", "part3", "part4", "part5", "part6"])
def test_every_part_runs_quick(part, fake_data, tmp_path):
    out = tmp_path / "out"
    digits.main([part, "--quick", "--out", str(out), "--seed", "3"])
    record = json.loads((out / "results" / f"digits_{part}.json").read_text())
    assert record["quick"] is True and record["seed"] == 3
    assert record["timings"]["seconds"] > 0
    for fig in record["figures"]:
        assert (out / fig).stat().st_size > 1000
    expected = {
        "part1": ["train_count", "test_count"],
        "part3": ["softmax_max_rel_error", "tanh_max_rel_error"],
        "part4": ["softmax_test_accuracy", "tanh_test_accuracy", "softmax_train_seconds",
                  "tanh_train_seconds", "tanh_seconds_per_epoch"],
        "part5": ["noise_linear_test_accuracy", "noise_logistic_test_accuracy",
                  "outlier2d_linear_test_accuracy", "outlier2d_logistic_test_accuracy"],
        "part6": ["max_measured_speedup"],
    }.get(part, [])
    for name in expected:
        assert np.isfinite(record["metrics"][name]), name
    if part == "part1":
        assert record["metrics"]["train_count"] == 2200 and record["metrics"]["test_count"] == 1100
    if part == "part3":
        assert record["metrics"]["softmax_max_rel_error"] < 1e-7
        assert record["metrics"]["tanh_max_rel_error"] < 1e-7
        assert (out / "results" / "digits_part3_gradcheck.csv").exists()
    if part in ("part4", "part5"):
        for name in expected:
            if name.endswith("accuracy"):
                assert 0.0 <= record["metrics"][name] <= 1.0


# --------------------------------------------------------------------------- the real files

TRAIN_COUNTS = [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
TEST_COUNTS = [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]


def test_real_data(real_data):
    data = digits.load_mnist(real_data("mnist_all.mat"))
    assert data["train_x"].shape == (60000, 784) and data["test_x"].shape == (10000, 784)
    assert data["train_x"].dtype == np.uint8
    assert np.bincount(data["train_y"]).tolist() == TRAIN_COUNTS
    assert np.bincount(data["test_y"]).tolist() == TEST_COUNTS
    assert data["train_x"].max() == 255 and data["train_x"].min() == 0
    params = digits.load_snapshot(real_data("snapshot50.pkl"))
    assert {k: v.shape for k, v in params.items()} == digits.SNAPSHOT_SHAPES
    # the handout's partly trained network: about 44% on the test set (inputs in 0..1)
    acc = digits.evaluate_split(params, digits.to_inputs(data["test_x"]),
                                digits.one_hot(data["test_y"]))[1]
    assert 0.35 < acc < 0.55
