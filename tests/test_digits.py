"""Tests of digits.py: the math on tiny shapes, the loaders on bad files, every part under --quick.

The --quick runs read small synthetic stand-ins for mnist_all.mat and snapshot50.pkl written into
tmp_path (fakes.py; conftest.py's ``fake_inputs``), so they run offline in seconds;
test_real_data checks the real files where present.
"""
import os
import pickle
import re
import subprocess
import sys

import numpy as np
import pytest

import digits
from apparatus import digitdata, inputs, runs
from fakes import write_mnist, write_snapshot

# --------------------------------------------------------------------------- helpers


def tiny_params(rng, net, d=6, h=5, k=4):
    if net == "softmax":
        return {"W": rng.standard_normal((d, k)), "b": rng.standard_normal(k)}
    return {"W0": rng.standard_normal((d, h)), "b0": rng.standard_normal(h),
            "W1": rng.standard_normal((h, k)), "b1": rng.standard_normal(k)}


def tiny_batch(rng, n=5, d=6, k=4):
    return rng.standard_normal((n, d)), np.eye(k)[rng.integers(0, k, n)]


def check(net, params, X, Y, rng, n_coords=10):
    """digits.gradient_check of ``net`` on (X, Y): the function Part 3 prints its table with."""
    forward = digits.softmax_forward if net == "softmax" else lambda p, X: digits.tanh_forward(
        p, X)[1]
    backward = digits.softmax_backward if net == "softmax" else digits.tanh_backward
    return digits.gradient_check(lambda p: digits.nll_cost(forward(p, X), Y),
                                 lambda p: backward(p, X, Y), params, rng, n_coords)


# --------------------------------------------------------------------------- the math

def test_softmax_is_stable_for_huge_logits_and_rows_sum_to_one():
    O = np.array([[1e4, 0.0, -1e4], [1000.0, 1000.0, 1000.0], [-1e5, -1e5 + 1, -1e5 + 2]])
    P = digits.softmax(O)
    np.testing.assert_allclose(P.sum(axis=1), 1.0, atol=1e-12)
    np.testing.assert_allclose(P[0], [1, 0, 0], atol=1e-12)
    np.testing.assert_allclose(P[1], [1 / 3] * 3, atol=1e-12)
    e = np.exp([0.0, 1.0, 2.0])
    np.testing.assert_allclose(P[2], e / e.sum(), rtol=1e-12)
    # the NLL of huge logits is finite too (log-softmax, not log(softmax)): rows 0, 1, 2 cost
    # about 0, log 3 and log(e^0 + e^1 + e^2) - 2
    assert digits.nll_cost(O, np.eye(3)) == pytest.approx(np.log(3) + np.log(e.sum()) - 2,
                                                          rel=1e-12)


def test_forward_shapes_and_backward_keys():
    rng = np.random.default_rng(0)
    X, Y = rng.random((7, 784)), np.eye(10)[rng.integers(0, 10, 7)]
    soft = {"W": rng.standard_normal((784, 10)), "b": np.zeros(10)}
    tanh = tiny_params(rng, "tanh", 784, 300, 10)
    assert digits.softmax_forward(soft, X).shape == (7, 10)
    H, O = digits.tanh_forward(tanh, X)
    assert H.shape == (7, 300) and O.shape == (7, 10) and np.all(np.abs(H) <= 1)
    for params, backward in ((soft, digits.softmax_backward), (tanh, digits.tanh_backward)):
        grads = backward(params, X, Y)
        assert {k: g.shape for k, g in grads.items()} == {k: p.shape for k, p in params.items()}


@pytest.mark.parametrize("net", ["softmax", "tanh"])
def test_gradient_check_passes_the_vectorised_gradient(net):
    rng = np.random.default_rng(1)
    X, Y = tiny_batch(rng)
    params = tiny_params(rng, net)
    table = check(net, params, X, Y, rng)
    assert {r["array"] for r in table} == set(params)
    assert len(table) == sum(min(10, p.size) for p in params.values())
    # float64, 4-point stencil: typically 1e-11..1e-10; 1e-7 is Part 3's bar
    assert max(r["rel_error"] for r in table) < 1e-7


def test_gradient_check_catches_a_wrong_gradient():
    rng = np.random.default_rng(2)
    X, Y = tiny_batch(rng)
    params = tiny_params(rng, "tanh")

    def wrong(p):
        g = digits.tanh_backward(p, X, Y)
        g["W0"] = g["W0"] * 1.001  # a 0.1% error must show up
        return g
    table = digits.gradient_check(lambda p: digits.nll_cost(digits.tanh_forward(p, X)[1], Y),
                                  wrong, params, rng, 10)
    assert max(r["rel_error"] for r in table if r["array"] == "W0") > 1e-4
    assert max(r["rel_error"] for r in table if r["array"] != "W0") < 1e-7


def test_gradient_check_relative_error_is_zero_where_both_are_zero():
    rng = np.random.default_rng(3)
    X, Y = tiny_batch(rng)
    X[:, 0] = 0  # an unlit pixel: its weights have gradient 0, analytic and numeric
    table = check("softmax", tiny_params(rng, "softmax"), X, Y, rng, n_coords=24)
    zeros = [r for r in table if r["array"] == "W" and r["index"][0] == 0]
    assert zeros and all(r["rel_error"] == 0.0 for r in zeros)


def test_backprop_equals_per_weight_gradients():
    rng = np.random.default_rng(6)
    Ws = [rng.standard_normal((5, 5)) / 2 for _ in range(3)]
    x, y = rng.standard_normal(5), rng.uniform(-0.5, 0.5, 5)
    for a, b in zip(digits.deep_backprop(Ws, x, y), digits.deep_per_weight(Ws, x, y)):
        np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-13)
    per_weight = 3 * 25 + 625 * 3 + 2 * 3 * 125
    assert digits.predicted_cost(3, 5) == (8 * 25, per_weight, per_weight - 75 + 75 ** 2)


# --------------------------------------------------------------------------- training

def test_training_lowers_the_cost_of_a_tiny_set():
    rng = np.random.default_rng(5)
    X = rng.standard_normal((400, 784)).astype(np.float32)
    Y = digits.one_hot(X[:, :10].argmax(axis=1))
    params = digits.init_softmax_params(rng)
    before = digits.cost_and_accuracy(params, X, Y)
    seen = []
    seconds = digits.train_network(params, digits.softmax_backward, X, Y,
                                   digits.SGDSettings(epochs=5, batch_size=50), rng,
                                   lambda p, iteration: seen.append(iteration))
    after = digits.cost_and_accuracy(params, X, Y)
    assert len(seconds) == 5 and seen == [0, 8, 16, 24, 32, 40]
    assert after[0] < before[0] / 2 and after[1] > 0.9
    assert params["W"].dtype == np.float32  # float32 training stays float32


def test_one_step_is_sgd_momentum_and_weight_decay_spares_biases():
    params = {"W": np.ones((3, 2), np.float32), "b": np.ones(2, np.float32)}
    X, Y = np.zeros((10, 3), np.float32), np.zeros((10, 2), np.float32)

    def backward(p, X, Y):  # a constant summed gradient of 10 per entry: mean 1
        return {k: np.full_like(v, 10.0) for k, v in p.items()}
    sgd = digits.SGDSettings(epochs=2, batch_size=10, learning_rate=0.1, momentum=0.5,
                             schedule="constant", weight_decay=0.5)
    velocity = {k: np.zeros_like(v) for k, v in params.items()}
    digits.train_network(params, backward, X, Y, sgd, np.random.default_rng(0), velocity=velocity)
    b1 = 1 - 0.1                                 # v = -lr dw
    b2 = b1 + 0.5 * -0.1 - 0.1                   # v = mu v - lr dw
    w1 = 1 - 0.1 * (1 + 0.5)                     # dw = mean gradient + lambda w
    w2 = w1 + 0.5 * (w1 - 1) - 0.1 * (1 + 0.5 * w1)
    np.testing.assert_allclose(params["b"], b2, rtol=1e-6)
    np.testing.assert_allclose(params["W"], w2, rtol=1e-6)
    np.testing.assert_allclose(velocity["W"], w2 - w1, rtol=1e-5)


def test_training_an_epoch_per_call_with_the_velocity_continues_one_run():
    rng = np.random.default_rng(13)
    X = rng.random((200, 784)).astype(np.float32)
    Y = digits.one_hot(rng.integers(0, 10, 200))
    sgd = digits.SGDSettings(epochs=3, batch_size=50, schedule="constant")
    one_sgd = digits.SGDSettings(epochs=1, batch_size=50, schedule="constant")
    whole = {k: (0.05 * v).astype(np.float32) for k, v in tiny_params(rng, "tanh", 784, 30, 10)
             .items()}
    split, fresh = ({k: v.copy() for k, v in whole.items()} for _ in range(2))
    digits.train_network(whole, digits.tanh_backward, X, Y, sgd, np.random.default_rng(2))
    velocity, order = {k: np.zeros_like(v) for k, v in split.items()}, np.random.default_rng(2)
    for _ in range(3):
        digits.train_network(split, digits.tanh_backward, X, Y, one_sgd, order, velocity=velocity)
    for k in whole:
        np.testing.assert_allclose(split[k], whole[k], rtol=1e-6, atol=1e-7)
    order = np.random.default_rng(2)
    for _ in range(3):  # without the velocity the momentum restarts at zero: another run
        digits.train_network(fresh, digits.tanh_backward, X, Y, one_sgd, order)
    assert np.abs(fresh["W0"] - whole["W0"]).max() > 1e-4


def test_shift_with_zero_fill_moves_pixels_and_fills_with_zero():
    X = np.arange(2 * 784, dtype=np.float32).reshape(2, 784) + 1
    src, dst = X.reshape(2, 28, 28), digits.shift_with_zero_fill(X, 1, -1).reshape(2, 28, 28)
    np.testing.assert_array_equal(dst[:, 1:, :27], src[:, :27, 1:])  # one down, one left
    assert not dst[:, 0, :].any() and not dst[:, :, 27].any()
    np.testing.assert_array_equal(digits.shift_with_zero_fill(X, 0, 0), X)


def test_cosine_schedule_decays_to_zero():
    sgd = digits.SGDSettings(epochs=4, learning_rate=0.2)
    assert [sgd.rate(e) for e in range(4)] == pytest.approx([0.2, 0.1 + 0.1 * np.cos(np.pi / 4),
                                                             0.1, 0.1 - 0.1 * np.cos(np.pi / 4)])


# --------------------------------------------------------------------------- loaders

def test_load_mnist_reads_a_well_formed_file(tmp_path):
    path = write_mnist(tmp_path / "mnist_all.mat", np.random.default_rng(0), 7, 3)
    data = digitdata.load_mnist(path)
    assert data["train_x"].shape == (70, 784) and data["train_x"].dtype == np.uint8
    assert data["test_x"].shape == (30, 784)
    np.testing.assert_array_equal(np.bincount(data["train_y"]), [7] * 10)


def test_load_mnist_accepts_whole_floats(tmp_path):
    """(NaN, fractions and values over 255: test_bad_inputs.py, class 8.)"""
    def as_float(mat):
        mat["train2"] = mat["train2"].astype(np.float64)
    path = write_mnist(tmp_path / "whole.mat", np.random.default_rng(1), 5, 2, as_float)
    assert digitdata.load_mnist(path)["train_x"].dtype == np.uint8


@pytest.mark.parametrize("change, words", [
    (lambda m: m.update(train3=m["train3"][:, :783]), "train3"),
    (lambda m: m.pop("test9"), "test9")])
def test_load_mnist_rejects_wrong_or_missing_arrays(tmp_path, change, words):
    path = write_mnist(tmp_path / "mnist_all.mat", np.random.default_rng(0), 5, 2, change)
    with pytest.raises(inputs.InputFormatError, match=words) as err:
        digitdata.load_mnist(path)
    assert "mnist_all.mat" in str(err.value)


def test_load_mnist_rejects_a_corrupt_file(tmp_path):
    path = tmp_path / "mnist_all.mat"
    path.write_bytes(b"MATLAB 5.0 MAT-file, this is not really one" + os.urandom(200))
    with pytest.raises(inputs.InputFormatError, match="mnist_all.mat"):
        digitdata.load_mnist(path)


def test_load_snapshot_checks_shapes_and_values(tmp_path):
    rng = np.random.default_rng(0)
    params = digitdata.load_snapshot(write_snapshot(tmp_path / "snapshot50.pkl", rng))
    assert {k: v.shape for k, v in params.items()} == digitdata.SNAPSHOT_SHAPES
    assert all(v.dtype == np.float32 for v in params.values())
    for change, words in ((lambda o: o.update(W1=o["W1"][:, :9]), "W1"),
                          (lambda o: o.pop("b1"), "W0, b0, W1, b1")):
        with pytest.raises(inputs.InputFormatError, match=words) as err:
            digitdata.load_snapshot(write_snapshot(tmp_path / "bad.pkl", rng, change))
        assert "bad.pkl" in str(err.value)


class _RunsCode:
    def __reduce__(self):
        return (os.system, ("echo pwned",))


def test_load_snapshot_refuses_a_pickle_that_would_run_code(tmp_path):
    path = tmp_path / "snapshot50.pkl"
    path.write_bytes(pickle.dumps({"W0": _RunsCode()}, protocol=2))
    with pytest.raises(inputs.InputFormatError, match="refused"):
        digitdata.load_snapshot(path)


def test_a_missing_input_stops_before_any_output_with_one_clear_message(tmp_path, monkeypatch):
    monkeypatch.setenv("DEEPNN_DATA", str(tmp_path))
    monkeypatch.setattr(inputs, "DATA_DIR", tmp_path / "nowhere")
    monkeypatch.setattr(inputs, "download_input", lambda *a, **k: (_ for _ in ()).throw(
        OSError("offline")))
    with pytest.raises(inputs.MissingInputError, match="mnist_all.mat") as err:
        digits.main(["part1", "--out", str(tmp_path / "out")])  # main_guard: one line, exit 2
    assert str(tmp_path) in str(err.value) and "offline" in str(err.value)
    assert not (tmp_path / "out" / "results").exists()


# --------------------------------------------------------------------------- the script

def test_importing_digits_loads_neither_tensorflow_nor_data():
    code = ("from apparatus import inputs\n"
            "inputs.find_input = inputs.load_pickle = None  # any use would fail\n"
            "import sys, digits\n"
            "heavy = [m for m in sys.modules\n"
            "         if m.split('.')[0] in ('tensorflow', 'keras', 'scipy')]\n"
            "assert not heavy, heavy\n")
    done = subprocess.run([sys.executable, "-c", code], cwd=digits.__file__.rsplit("/", 1)[0],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr


def test_every_part_runs_quick_on_synthetic_inputs(fake_inputs, tmp_path):
    out = tmp_path / "out"
    # smaller still than --quick: Part 6 times each cell for >= 0.2 s, figures take time to draw
    digits.main(["--quick", "--seed", "3", "--out", str(out), "--set", "n_seeds=1",
                 "--set", "gd_iterations=5", "--set", "layers=(1,)", "--set", "units=(4,)",
                 "--set", "n_hidden_shown=2"])
    records = {p: runs.read_results("digits.py", f"part{p}", out) for p in range(1, 7)}
    for p, record in records.items():
        assert record["quick"] and record["trial"] and record["seed"] == 3, p
        for figure in record["figures"]:
            assert (out / figure).stat().st_size > 1000, figure
        assert all(np.isfinite(v) for v in record["metrics"].values()), p
    m = {p: r["metrics"] for p, r in records.items()}
    assert m[1]["train_count"] == 2200 and m[1]["test_count"] == 1100
    assert m[3]["softmax_max_rel_error"] < 1e-7 and m[3]["tanh_max_rel_error"] < 1e-7
    assert (out / "results" / "digits_part3_gradcheck.csv").read_text().startswith(
        "network,array,index,analytic,numeric,rel_error\n")
    assert 0 <= m[4]["tanh_test_accuracy"] <= 1 and m[4]["tanh_seconds_per_epoch"] > 0
    assert records[4]["settings"]["tanh"]["epochs"] == 2  # the --quick preset of Part 4
    assert len(records[4]["curves"]["tanh"]["test_accuracy"]) == 3  # before and after 2 epochs
    assert records[5]["settings"]["n_seeds"] == 1
    assert len(records[5]["sweep"]["noise"]["linear"][0]) == 1  # one seed per noise level
    assert [(r["N"], r["K"]) for r in records[6]["grid"]] == [(1, 4)]


def test_a_set_override_changes_the_recorded_settings_of_a_trial(fake_inputs, tmp_path):
    out = tmp_path / "out"
    digits.main(["part3", "--quick", "--set", "n_coords=3", "--set", "step=0.002", "--out",
                 str(out)])
    record = runs.read_results("digits.py", "part3", out)
    assert record["settings"]["n_coords"] == 3 and record["settings"]["step"] == 0.002
    assert record["overrides"] == {"n_coords": 3, "step": 0.002}
    assert record["metrics"]["tanh_coordinates_checked"] == 4 * 3
    with pytest.raises(inputs.UserError, match="no_such"):
        digits.main(["part3", "--set", "no_such=1", "--out", str(out)])


@pytest.mark.parametrize("name, value, part, most", [
    ("n_images", 10**7, "part3", "2,000"), ("n_val", 1950, "part4", "1,900"),
    ("per_digit", 500, "part5", r"\d+")])  # of the 2,000 training images under --quick
def test_a_setting_larger_than_the_data_stops_every_part_before_any_runs(
        fake_inputs, tmp_path, capsys, name, value, part, most):
    with pytest.raises(SystemExit) as stop:  # "all": parts 1 and 2 come first
        runs.main_guard(lambda: digits.main(["all", "--quick", "--set", f"{name}={value}",
                                             "--out", str(tmp_path / "out")]))
    out, err = capsys.readouterr()
    assert stop.value.code == 2 and err.count("\n") == 1
    assert re.match(f"error: --set {name}={value}: {part} can take at most {most} \\(", err)
    assert "=====" not in out and not (tmp_path / "out").exists()  # no part began


def test_a_quick_slice_larger_than_the_data_stops_before_any_part(fake_inputs, tmp_path, capsys):
    write_mnist(fake_inputs / "mnist_all.mat", np.random.default_rng(0), 150, 100)
    with pytest.raises(SystemExit) as stop:
        runs.main_guard(lambda: digits.main(["--quick", "--out", str(tmp_path / "out")]))
    assert stop.value.code == 2 and capsys.readouterr().err == (
        "error: --quick takes 2000 train images; MNIST holds only 1500\n")
    assert not (tmp_path / "out").exists()


# --------------------------------------------------------------------------- the real files

TRAIN_COUNTS = [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
TEST_COUNTS = [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]


def test_real_data(real_data):
    data = digitdata.load_mnist(real_data("mnist_all.mat"))
    assert data["train_x"].shape == (60000, 784) and data["test_x"].shape == (10000, 784)
    assert np.bincount(data["train_y"]).tolist() == TRAIN_COUNTS
    assert np.bincount(data["test_y"]).tolist() == TEST_COUNTS
    assert data["train_x"].max() == 255 and data["train_x"].min() == 0
    params = digitdata.load_snapshot(real_data("snapshot50.pkl"))
    # the handout's partly trained network: about 44% on the test set (inputs in 0..1)
    accuracy = digits.cost_and_accuracy(params, digits.to_inputs(data["test_x"]),
                                        digits.one_hot(data["test_y"]))[1]
    assert 0.35 < accuracy < 0.55
