"""digits.py's NumPy gradient of the tanh network against TensorFlow's automatic gradient.

Kept apart from test_digits.py because importing TensorFlow alone takes several seconds.
"""
import numpy as np
import pytest

import digits


def tiny_batch(rng, n, d, k):
    X = rng.standard_normal((n, d))
    return X, np.eye(k)[rng.integers(0, k, n)]


def tanh_params(rng, d, h, k):
    return {"W0": 0.1 * rng.standard_normal((d, h)), "b0": 0.1 * rng.standard_normal(h),
            "W1": 0.1 * rng.standard_normal((h, k)), "b1": 0.1 * rng.standard_normal(k)}


def test_numpy_gradient_equals_tensorflow_gradient():
    tf = pytest.importorskip("tensorflow")
    rng = np.random.default_rng(4)
    X, Y = tiny_batch(rng, n=16, d=784, k=10)
    params = tanh_params(rng, 784, 300, 10)
    tf_params = {k: tf.Variable(v) for k, v in params.items()}
    with tf.GradientTape() as tape:
        H = tf.tanh(tf.constant(X) @ tf_params["W0"] + tf_params["b0"])
        O = H @ tf_params["W1"] + tf_params["b1"]
        cost = tf.reduce_sum(tf.nn.softmax_cross_entropy_with_logits(tf.constant(Y), O))
    tf_grads = tape.gradient(cost, tf_params)
    np_grads = digits.tanh_backward(params, X, Y)
    assert float(cost) == pytest.approx(digits.tanh_cost(params, X, Y), rel=1e-12)
    for k in params:
        # both float64 on the same weights and batch: agreement to ~1e-14 relative
        np.testing.assert_allclose(np_grads[k], tf_grads[k].numpy(), rtol=1e-9, atol=1e-12)


def test_numpy_gradient_equals_tensorflow_gradient_at_snapshot50(real_data):
    """The same comparison on the handout's weights and 20 real MNIST images."""
    tf = pytest.importorskip("tensorflow")
    params = {k: v.astype(np.float64)
              for k, v in digits.load_snapshot(real_data("snapshot50.pkl")).items()}
    data = digits.load_mnist(real_data("mnist_all.mat"))
    idx = np.random.default_rng(7).choice(60000, 20, replace=False)
    X = digits.to_inputs(data["train_x"][idx], np.float64)
    Y = digits.one_hot(data["train_y"][idx], dtype=np.float64)
    tf_params = {k: tf.Variable(v) for k, v in params.items()}
    with tf.GradientTape() as tape:
        O = tf.tanh(X @ tf_params["W0"] + tf_params["b0"]) @ tf_params["W1"] + tf_params["b1"]
        cost = tf.reduce_sum(tf.nn.softmax_cross_entropy_with_logits(Y, O))
    tf_grads = tape.gradient(cost, tf_params)
    np_grads = digits.tanh_backward(params, X, Y)
    for k in params:
        np.testing.assert_allclose(np_grads[k], tf_grads[k].numpy(), rtol=1e-9, atol=1e-11)
