"""digits.py's NumPy gradient of the tanh network against TensorFlow's automatic gradient.

Kept apart from test_digits.py because importing TensorFlow alone takes several seconds.
"""
import numpy as np
import pytest

import digits
from apparatus import digitdata


def tensorflow_cost_and_gradient(params, X, Y):
    """The summed NLL of the tanh net and its gradient by TensorFlow's autodiff (float64)."""
    tf = pytest.importorskip("tensorflow")
    variables = {k: tf.Variable(v) for k, v in params.items()}
    with tf.GradientTape() as tape:
        H = tf.tanh(tf.constant(X) @ variables["W0"] + variables["b0"])
        O = H @ variables["W1"] + variables["b1"]
        cost = tf.reduce_sum(tf.nn.softmax_cross_entropy_with_logits(tf.constant(Y), O))
    return float(cost), {k: g.numpy() for k, g in tape.gradient(cost, variables).items()}


def test_numpy_gradient_equals_tensorflow_gradient():
    rng = np.random.default_rng(4)
    X, Y = rng.standard_normal((16, 784)), np.eye(10)[rng.integers(0, 10, 16)]
    params = {"W0": 0.1 * rng.standard_normal((784, 300)), "b0": 0.1 * rng.standard_normal(300),
              "W1": 0.1 * rng.standard_normal((300, 10)), "b1": 0.1 * rng.standard_normal(10)}
    cost, tf_grads = tensorflow_cost_and_gradient(params, X, Y)
    assert cost == pytest.approx(digits.nll_cost(digits.tanh_forward(params, X)[1], Y), rel=1e-12)
    np_grads = digits.tanh_backward(params, X, Y)
    for k in params:
        # both float64 on the same weights and batch: agreement to ~1e-14 relative
        np.testing.assert_allclose(np_grads[k], tf_grads[k], rtol=1e-9, atol=1e-12)


def test_numpy_gradient_equals_tensorflow_gradient_at_snapshot50(real_data):
    """The same comparison on the handout's weights and 20 real MNIST images."""
    params = {k: v.astype(np.float64)
              for k, v in digitdata.load_snapshot(real_data("snapshot50.pkl")).items()}
    data = digitdata.load_mnist(real_data("mnist_all.mat"))
    idx = np.random.default_rng(7).choice(60000, 20, replace=False)
    X = digits.to_inputs(data["train_x"][idx], np.float64)
    Y = digits.one_hot(data["train_y"][idx], dtype=np.float64)
    _, tf_grads = tensorflow_cost_and_gradient(params, X, Y)
    np_grads = digits.tanh_backward(params, X, Y)
    for k in params:
        np.testing.assert_allclose(np_grads[k], tf_grads[k], rtol=1e-9, atol=1e-11)
