"""Handwritten digits in plain NumPy: Parts 1-6 of CSC411 (Winter 2017) Project 2.

Parts 1-6: the data; the 784-10 softmax net; its gradient and the 784-300-10 tanh net's, checked;
both trained by SGD; linear vs logistic regression far from the targets; backprop's cost.

    python digits.py [all|part1|...|part6] [--seed S] [--quick] [--set name=value] [--out DIR]

Rows are examples: X is N x 784 (pixels / 255; float32 for training, float64 for the checks), Y is
N x 10 one-hot. Parameters travel as one dict (W, b; or W0, b0, W1, b1 with H = tanh(X W0 + b0));
each backward function returns a dict with the same keys. The cost is the summed negative
log-probability C = -sum_n log p_{n, y_n}.
"""
import math
import time
import timeit
from dataclasses import asdict, dataclass
from typing import ClassVar

import matplotlib.pyplot as plt
import numpy as np

from apparatus import inputs, runs
from apparatus.digitdata import N_CLASSES, N_PIXELS, Digits, one_hot, to_inputs
from apparatus.runs import setting

# ==== The math: softmax and tanh networks, forward beside backward ================
def softmax(O: np.ndarray) -> np.ndarray:
    """Row-wise softmax of (N, K) logits; subtracting the row max keeps exp() finite."""
    Z = O - O.max(axis=1, keepdims=True)
    np.exp(Z, out=Z)
    Z /= Z.sum(axis=1, keepdims=True)
    return Z


def nll_cost(O: np.ndarray, Y: np.ndarray) -> float:
    """C = -sum_n sum_i y_ni log p_ni of logits O (N, K); log p = Z - log sum exp Z, Z = O - max."""
    Z = O - O.max(axis=1, keepdims=True)
    return float(-(Y * (Z - np.log(np.exp(Z).sum(axis=1, keepdims=True)))).sum())


def init_softmax_params(rng: np.random.Generator) -> dict[str, np.ndarray]:
    W = (0.01 * rng.standard_normal((N_PIXELS, N_CLASSES))).astype(np.float32)
    return {"W": W, "b": np.zeros(N_CLASSES, np.float32)}


def softmax_forward(params: dict, X: np.ndarray) -> np.ndarray:
    """Logits O = X W + b: X (N, 784), W (784, 10), b (10,) -> O (N, 10); P = softmax(O)."""
    return X @ params["W"] + params["b"]


def softmax_backward(params: dict, X: np.ndarray, Y: np.ndarray) -> dict[str, np.ndarray]:
    """dC/dW (784, 10), dC/db (10,) of the summed NLL: dC/dO = P - Y, dC/dW = X^T dC/dO."""
    dO = softmax(softmax_forward(params, X)) - Y
    return {"W": X.T @ dO, "b": dO.sum(axis=0)}


def tanh_forward(params: dict, X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """H = tanh(X W0 + b0) (N, 300) and logits O = H W1 + b1 (N, 10)."""
    H = np.tanh(X @ params["W0"] + params["b0"])
    return H, H @ params["W1"] + params["b1"]


def tanh_backward(params: dict, X: np.ndarray, Y: np.ndarray) -> dict[str, np.ndarray]:
    """dC/dO = P - Y (N, 10);          dC/dW1 = H^T dC/dO (300, 10);  dC/db1 = sum_n dC/dO
    dC/dZ0 = dC/dO W1^T * (1 - H^2) (N, 300), as tanh' = 1 - tanh^2
    dC/dW0 = X^T dC/dZ0 (784, 300);  dC/db0 = sum_n dC/dZ0"""
    H, O = tanh_forward(params, X)
    dO = softmax(O) - Y
    dZ0 = (dO @ params["W1"].T) * (1 - H * H)
    return {"W0": X.T @ dZ0, "b0": dZ0.sum(axis=0), "W1": H.T @ dO, "b1": dO.sum(axis=0)}


def cost_and_accuracy(params: dict, X: np.ndarray, Y: np.ndarray) -> tuple[float, float]:
    """(mean NLL per image, fraction classified right) of either net on (X, Y)."""
    O = tanh_forward(params, X)[1] if "W0" in params else softmax_forward(params, X)
    return nll_cost(O, Y) / len(X), float((O.argmax(1) == Y.argmax(1)).mean())


# ==== Gradient check (Part 3, and asserted by the tests) ==========================
def gradient_check(cost_fn, grad_fn, params: dict, rng: np.random.Generator, n_coords: int = 25,
                   step: float = 1e-3, active_rows: dict | None = None) -> list[dict]:
    """Analytic vs numeric derivatives at ``n_coords`` random coordinates of every float64 array
    (rows from ``active_rows[key]``: unlit pixels have zero gradient). Numeric: (C(t-2h) -
    8 C(t-h) + 8 C(t+h) - C(t+2h)) / 12h, error O(h^4) (2 points: O(h^2), over 1e-7 on tiny ones)"""
    analytic, table = grad_fn(params), []
    for key, p in params.items():
        rows = active_rows.get(key) if active_rows else None
        chosen: set = set()
        while len(chosen) < min(n_coords, p.size):
            if rows is not None and p.ndim == 2:
                chosen.add((int(rng.choice(rows)), int(rng.integers(p.shape[1]))))
            else:
                chosen.add(tuple(int(rng.integers(s)) for s in p.shape))
        for idx in sorted(chosen):
            old, costs = p[idx], []
            for k in (-2, -1, 1, 2):
                p[idx] = old + k * step
                costs.append(cost_fn(params))
            p[idx] = old
            numeric = (costs[0] - 8 * costs[1] + 8 * costs[2] - costs[3]) / (12 * step)
            a = float(analytic[key][idx])
            table.append({"array": key, "index": list(idx), "analytic": a, "numeric": numeric,
                          "rel_error": abs(a - numeric) / max(abs(a) + abs(numeric), 1e-12)})
    return table


# ==== Settings: one table per part, each value with its reason ====================
def at_most(part: str, name: str, value: int, most: int, what: str) -> None:  # in a part's check
    if value > most:
        raise inputs.UserError(f"--set {name}={value}: {part} can take at most {most:,} ({what})")


@dataclass(frozen=True)
class Part3:
    n_images: int = setting(20, ge=1)  # a small batch: the check is about the formula, not the data
    n_coords: int = setting(25, ge=1)  # the handout asks for at least 25 coordinates of every array
    step: float = setting(1e-3, gt=0)  # 4-point stencil: truncation ~h^4, rounding ~eps|C|/h: 1e-12
    QUICK: ClassVar[dict] = {"n_coords": 5}

    def check(self, run: runs.Run, data: Digits) -> None:
        at_most("part3", "n_images", self.n_images, len(data.mnist["train_y"]), "training images")


@dataclass(frozen=True)
class SGDSettings:  # mini-batch SGD with momentum, as train_network runs it
    epochs: int = setting(30, ge=1)  # the validation curves of both nets settle by then
    batch_size: int = setting(100, ge=1)  # the handout's mini-batch size
    learning_rate: float = setting(0.05, gt=0)  # the batch's mean-cost gradient; 0.2 oscillates
    momentum: float = setting(0.9, ge=0, lt=1)  # averages the gradient noise over about ten batches
    schedule: str = setting("cosine", choices=("cosine", "constant"))  # cosine: to 0 over the run
    weight_decay: float = setting(0.0, ge=0)  # lambda: dw += lambda w (not b): lambda/2 ||W||^2
    max_shift: int = setting(0, ge=0, lt=28)  # shift each batch -max..max pixels (augmentation)

    def rate(self, epoch: int) -> float:  # epoch from 0
        return (self.learning_rate if self.schedule == "constant" else
                self.learning_rate * 0.5 * (1 + math.cos(math.pi * epoch / self.epochs)))


@dataclass(frozen=True)
class Part4:
    n_val: int = setting(5000, ge=1)  # held out of the 60,000 training images for the curves
    n_train_eval: int = setting(10000, ge=1)  # training curve on a fixed subset (all costs 6x)
    n_hidden_shown: int = setting(20, ge=1)  # units drawn: those with the largest out-weights
    softmax: SGDSettings = SGDSettings()  # convex: momentum and the cosine decay settle it
    tanh: SGDSettings = SGDSettings(max_shift=1)  # shifts: still learning once it fits
    QUICK: ClassVar[dict] = {"n_val": 200, "softmax": SGDSettings(epochs=2),
                             "tanh": SGDSettings(epochs=2, max_shift=1)}

    def check(self, run: runs.Run, data: Digits) -> None:
        at_most("part4", "n_val", self.n_val, len(data.mnist["train_y"]) - max(
            self.softmax.batch_size, self.tanh.batch_size), "training images less a batch")


@dataclass(frozen=True)
class Part5:
    per_digit: int = setting(50, ge=1)  # the report's training images per digit
    noise_scales: tuple = setting((0.0, 1.0, 2.0, 5.0, 10.0), ge=0)  # pixel noise std (pixels 0..1)
    report_noise: float = setting(5.0, ge=0)  # the report's setting, in the metrics
    n_seeds: int = setting(5, ge=1)  # repeats per setting: mean and spread
    gd_iterations: int = setting(300, ge=1)  # full-batch steps for both MNIST fits
    gd_iterations_2d: int = setting(2000, ge=1)  # 2-D is cheap: run both fits to the end
    outlier_distances: tuple = setting((0.0, 5.0, 10.0, 20.0, 40.0), ge=0)  # far points, 2-D
    outlier_report: float = setting(20.0, ge=0)  # the 2-D setting drawn and in the metrics
    n_outliers: int = setting(20, ge=0)  # far class-1 points among 200 + 200
    QUICK: ClassVar[dict] = {"noise_scales": (0.0, 5.0), "n_seeds": 2, "gd_iterations": 30,
                             "outlier_distances": (0.0, 20.0), "gd_iterations_2d": 200}

    def check(self, run: runs.Run, data: Digits) -> None:  # the metrics quote a swept value
        for name, value, swept in (("report_noise", self.report_noise, "noise_scales"),
                                   ("outlier_report", self.outlier_report, "outlier_distances")):
            if value not in getattr(self, swept):
                raise inputs.UserError(f"--set {name}={value}: not among {swept} "
                                       f"{getattr(self, swept)}; set both")
        at_most("part5", "per_digit", self.per_digit, int(np.bincount(
            data.mnist["train_y"], minlength=N_CLASSES).min()), "images of the rarest digit")


@dataclass(frozen=True)
class Part6:
    layers: tuple = setting((1, 2, 3, 4), ge=1)  # N: hidden layers
    units: tuple = setting((8, 16, 32, 64), ge=1)  # K: units per layer
    repeats: int = setting(5, ge=1)  # timings: the best of this many rounds of timeit
    round_seconds: float = setting(0.02, gt=0)  # rounds this long at least: >> the clock's tick
    QUICK: ClassVar[dict] = {"layers": (1, 2), "units": (8, 16), "repeats": 1}


# ==== Training: mini-batch SGD with momentum, over the very backward functions above ====
def shift_with_zero_fill(X: np.ndarray, dy: int, dx: int) -> np.ndarray:
    """(N, 784) 28x28 images moved dy pixels down and dx right; uncovered pixels are 0."""
    src, out = X.reshape(-1, 28, 28), np.zeros((len(X), 28, 28), X.dtype)
    out[:, max(dy, 0):28 + min(dy, 0), max(dx, 0):28 + min(dx, 0)] = \
        src[:, max(-dy, 0):28 + min(-dy, 0), max(-dx, 0):28 + min(-dx, 0)]
    return out.reshape(len(X), -1)


def train_network(params: dict, backward, X, Y, sgd: SGDSettings, rng,
                  evaluate=lambda params, iteration: None, velocity=None) -> list[float]:
    """Train ``params`` in place; returns seconds per epoch. Each epoch: a fresh random order, the
    last partial batch dropped; per batch, dw = backward(params, X_b, Y_b)[k] / B (the mean cost's
    gradient), v = mu v - lr dw, w += v. ``evaluate`` runs before and after each epoch, untimed."""
    B, n_batches, epoch_seconds = sgd.batch_size, len(X) // sgd.batch_size, []
    velocity = {k: np.zeros_like(w) for k, w in params.items()} if velocity is None else velocity
    evaluate(params, 0)
    for epoch in range(sgd.epochs):
        lr, start = sgd.rate(epoch), time.perf_counter()
        for idx in rng.permutation(len(X))[:n_batches * B].reshape(n_batches, B):
            Xb, Yb = X[idx], Y[idx]
            if sgd.max_shift:  # augmentation: the whole batch moves by the same (dy, dx)
                Xb = shift_with_zero_fill(Xb, *rng.integers(-sgd.max_shift, sgd.max_shift + 1, 2))
            grads = backward(params, Xb, Yb)
            for k, w in params.items():  # all in place (grads are fresh): no temporary arrays
                dw = grads[k]
                if sgd.weight_decay and k.startswith("W"):
                    dw += (sgd.weight_decay * B) * w
                dw *= lr / B  # lr times the gradient of the mean cost (dw / B)
                v = velocity[k]  # v = mu v - lr dw;  w += v
                v *= sgd.momentum
                v -= dw
                w += v
        epoch_seconds.append(time.perf_counter() - start)
        evaluate(params, (epoch + 1) * n_batches)
    return epoch_seconds


# ==== Part 5: two affine models fitted by full-batch gradient descent =============
def gradient_descent_affine(X, T, iterations, output_gradient, step_factor):
    """Full-batch gradient descent from W = 0 on O = X_a W, X_a = [X, 1] (bias last): dC/dW =
    X_a^T output_gradient(O, T), step step_factor / L, L the largest eigenvalue of X_a^T X_a. With
    fewer examples than inputs W = X_a^T A stays in the row space: iterate on A, G = X_a X_a^T."""
    Xa = np.hstack([X, np.ones((len(X), 1))])
    dual = Xa.shape[0] < Xa.shape[1]
    G = Xa @ Xa.T if dual else Xa.T @ Xa
    step = step_factor / np.linalg.eigvalsh(G)[-1]
    A = np.zeros((len(G), T.shape[1]))
    for _ in range(iterations):
        A -= step * (output_gradient(G @ A, T) if dual else Xa.T @ output_gradient(Xa @ A, T))
    return Xa.T @ A if dual else A


# The two models, as (dC/dO, step factor) for gradient_descent_affine. Linear regression,
# C = sum_n ||o_n - t_n||^2 / 2: dC/dO = O - T grows with the distance to the target; step 1/L,
# the largest stable one. Multinomial logistic regression, C = summed NLL: dC/dO = P - T, every
# entry at most 1 in size; step 2/L (its Hessian is at most X^T X / 2).
FITS = {"linear": (lambda O, T: O - T, 1.0), "logistic": (lambda O, T: softmax(O) - T, 2.0)}


def accuracy_affine(W, X, labels) -> float:
    return float(((X @ W[:-1] + W[-1]).argmax(1) == labels).mean())


def make_outlier_2d(rng, n_per_class, n_outliers, distance):
    """Two Gaussian classes in 2-D, plus ``n_outliers`` correctly labelled class-1 points afar."""
    mean0, mean1 = np.array([-1.0, -1.0]), np.array([1.0, 1.0])
    X = np.vstack([rng.normal(mean0, 0.8, (n_per_class, 2)),
                   rng.normal(mean1, 0.8, (n_per_class, 2))])
    y = np.repeat([0, 1], n_per_class)
    if n_outliers and distance > 0:
        far = rng.normal(mean1 + distance * np.array([1.0, 0.2]), 0.5, (n_outliers, 2))
        X, y = np.vstack([X, far]), np.concatenate([y, np.ones(n_outliers, int)])
    return X, y


# ==== Part 6: N tanh layers of K units, C = ||h_N - y||^2 / 2, one example =========
def deep_forward(Ws, x):
    """h_0 = x (K,), h_l = tanh(W_l h_{l-1}) for l = 1..N; returns [h_0, ..., h_N]."""
    hs = [x]
    for W in Ws:
        hs.append(np.tanh(W @ hs[-1]))
    return hs


def deep_backprop(Ws, x, y):
    """dC/dW_l by backpropagation, one backward pass shared by every weight, O(N K^2):
    delta_N = (h_N - y) * (1 - h_N^2); dC/dW_l = delta_l h_{l-1}^T;
    delta_{l-1} = (W_l^T delta_l) * (1 - h_{l-1}^2)."""
    hs = deep_forward(Ws, x)
    delta = (hs[-1] - y) * (1 - hs[-1] ** 2)
    grads = [None] * len(Ws)
    for l in range(len(Ws) - 1, -1, -1):
        grads[l] = np.outer(delta, hs[l])
        if l:
            delta = (Ws[l].T @ delta) * (1 - hs[l] ** 2)
    return grads


def deep_per_weight(Ws, x, y):
    """dC/dW_l with each weight's derivative computed on its own, O(N^2 K^4).
    Weight (i, j) of layer l: dh_l/dw = e_i h_{l-1,j} (1 - h_l^2), carried forward through layers
    l+1..N (dh_m = (1 - h_m^2) * (W_m dh_{m-1})) and dotted with h_N - y; one row per weight."""
    hs, K, grads = deep_forward(Ws, x), len(x), []
    rows = np.arange(K * K)  # row i K + j: weight (i, j)
    for l in range(len(Ws)):
        D = np.zeros((K * K, Ws[l].shape[0]))
        D[rows, rows // K] = np.tile(hs[l], K) * (1 - hs[l + 1][rows // K] ** 2)
        for m in range(l + 1, len(Ws)):
            D = (D @ Ws[m].T) * (1 - hs[m + 1] ** 2)
        grads.append((D @ (hs[-1] - y)).reshape(K, K))
    return grads


def predicted_cost(N: int, K: int) -> tuple[int, int, int]:
    """Multiply-adds per example (backprop, per-weight, per-weight uncached). Backprop: forward
    N K^2 + backward (N - 1) K^2 + outer products N K^2. Per-weight: forward N K^2 + per layer l,
    K^2 weights x ((N - l) K^2 + 2K); uncached (as the handout poses it): a forward pass each."""
    per_weight = N * K ** 2 + K ** 4 * N * (N - 1) // 2 + 2 * N * K ** 3
    return (3 * N - 1) * K ** 2, per_weight, per_weight - N * K ** 2 + (N * K ** 2) ** 2


def plot_digit_grid(images):
    """One mosaic: row d holds images 10 d .. 10 d + 9 (a single imshow, fast to draw)."""
    side = 28 + 2  # 2-pixel white gaps
    mosaic = np.zeros((N_CLASSES * side - 2, 10 * side - 2))  # 0: white in gray_r
    for (d, j), img in zip(np.ndindex(N_CLASSES, 10), images):
        mosaic[d * side:d * side + 28, j * side:j * side + 28] = img.reshape(28, 28)
    fig, ax = plt.subplots(figsize=(4.2, 4.6))  # drawn at the size it prints: ~6 pt labels
    ax.imshow(mosaic, cmap="gray_r", vmin=0, vmax=255, interpolation="nearest")
    ax.set_yticks(np.arange(N_CLASSES) * side + 14, [str(d) for d in range(N_CLASSES)])
    ax.set_xticks([]), ax.set_ylabel("digit (label)")
    ax.set_title("MNIST (mnist_all.mat): ten random\ntraining images of each digit", fontsize=10)
    return fig


def plot_curves(curves: dict, title: str):
    fig, (ax_c, ax_a) = plt.subplots(1, 2, figsize=(8.5, 3.4))
    for split, style in (("train", "-"), ("val", "--"), ("test", ":")):
        ax_c.plot(curves["iteration"], curves[f"{split}_cost"], style, label=split)
        ax_a.plot(curves["iteration"], np.multiply(curves[f"{split}_accuracy"], 100), style,
                  label=split)
    low = min(min(curves[f"{s}_accuracy"][1:] or [1]) for s in ("train", "val", "test"))
    ax_a.set_ylabel("accuracy (%)"), ax_a.set_ylim(max(0, low * 100 - 1), 100.2)
    ax_c.set_ylabel("cost (mean NLL per image)"), ax_c.set_yscale("log")
    for ax in (ax_c, ax_a):
        ax.set_xlabel("iteration (mini-batches)"), ax.grid(alpha=0.3), ax.legend()
    fig.suptitle(title), fig.tight_layout()
    return fig


def plot_weight_images(W, titles, title, ncols=10):
    """Columns of W (784, k) as 28x28 images, a diverging colour map centred on zero."""
    nrows = math.ceil(W.shape[1] / ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(ncols * 1.0, nrows * 1.25 + 0.6), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for j, ax in zip(range(W.shape[1]), axes.flat):
        # a few rarely lit border pixels carry extreme weights: limit at the 99th percentile
        lim = float(np.percentile(np.abs(W[:, j]), 99)) or 1.0
        ax.imshow(W[:, j].reshape(28, 28), cmap="RdBu_r", vmin=-lim, vmax=lim)
        ax.set_title(titles[j], fontsize=9)
    fig.suptitle(title + "\n(red > 0, blue < 0; colours saturate at the 99th percentile of |w|)",
                 fontsize=10), fig.tight_layout()
    return fig


def plot_sweeps(s: Part5, noise: dict, outliers: dict):
    fig, axes = plt.subplots(1, 2, figsize=(8.5, 3.6))
    for ax, xs, sweep, xlabel, title in (
            (axes[0], s.noise_scales, noise, "Gaussian pixel-noise std (pixels in 0..1)",
             f"MNIST: {s.per_digit} noisy training images per digit, clean test set"),
            (axes[1], s.outlier_distances, outliers, "distance of the far class-1 points",
             f"2-D, {s.n_outliers} far points among 400")):
        for model, style, name in (("linear", "o-", "linear regression, quadratic cost"),
                                   ("logistic", "s-", "multinomial logistic regression")):
            a = np.array(sweep[model]) * 100
            ax.errorbar(xs, a.mean(1), yerr=a.std(1), fmt=style, capsize=3, label=name)
            ax.fill_between(xs, a.min(1), a.max(1), alpha=0.15)
        ax.set_xlabel(xlabel), ax.set_ylabel("test accuracy (%)"), ax.set_title(title, fontsize=10)
        ax.grid(alpha=0.3), ax.legend(fontsize=8)
    fig.suptitle(f"Mean +- std (bars) and min-max (band) over {s.n_seeds} seeds")
    fig.tight_layout()
    return fig


def plot_boundaries(s: Part5, X, y, W_lin, W_log):
    fig, ax = plt.subplots(figsize=(4.8, 3.6))
    ax.scatter(*X[y == 0].T, s=10, c="tab:blue", label="class 0")
    ax.scatter(*X[y == 1].T, s=10, c="tab:red", label="class 1")
    xs = np.linspace(X[:, 0].min() - 1, X[:, 0].max() + 1, 200)
    for W, style, name in ((W_lin, "k--", "linear regression"), (W_log, "g-", "logistic")):
        w, c = W[:-1, 1] - W[:-1, 0], W[-1, 1] - W[-1, 0]  # boundary o_1 = o_0: w . x + c = 0
        ax.plot(xs, -(w[0] * xs + c) / w[1], style, label=f"{name} boundary")
    ax.set_ylim(X[:, 1].min() - 1, X[:, 1].max() + 1)
    ax.set_xlabel("x1"), ax.set_ylabel("x2"), ax.legend(fontsize=8), ax.grid(alpha=0.3)
    ax.set_title(f"{s.n_outliers} correctly labelled class-1 points far\nfrom the boundary "
                 f"(distance {s.outlier_report:g})", fontsize=10)
    return fig


def plot_speedups(rows: list[dict]):
    fig, ax = plt.subplots(figsize=(4.6, 3.8))
    for N in sorted({r["N"] for r in rows}):
        pts = [r for r in rows if r["N"] == N]
        ax.plot([r["predicted_speedup"] for r in pts], [r["measured_speedup"] for r in pts], "o-",
                label=f"N = {N} layers")
        for r in pts:
            ax.annotate(f"K={r['K']}", (r["predicted_speedup"], r["measured_speedup"]), fontsize=7)
    speedups = [r[k] for r in rows for k in ("predicted_speedup", "measured_speedup")]
    lim = [min(speedups) / 1.5, max(speedups) * 1.5]
    ax.plot(lim, lim, "k:", label="measured = predicted")
    ax.set(xscale="log", yscale="log", xlabel="predicted speedup (ratio of multiply-adds)",
           ylabel="measured speedup (ratio of CPU seconds)",
           title="Backprop vs one gradient per weight\n(one example, tanh layers of K units)")
    ax.legend(fontsize=8), ax.grid(alpha=0.3, which="both")
    return fig


# ==== Parts: each returns its settings, metrics and figures for run_parts to record ====
def part1(run: runs.Run, settings: None, data: Digits) -> dict:
    """The dataset: images per digit, pixel range, ten images of each digit."""
    rng, mnist = run.rng(1), data.all_mnist  # all of MNIST, even under --quick
    counts = {s: np.bincount(mnist[f"{s}_y"], minlength=N_CLASSES) for s in ("train", "test")}
    for s, c in counts.items():
        print(f"{s:5} images of each digit 0..9: {c.tolist()}, {c.sum()} in all")
    lo, hi = int(mnist["train_x"].min()), int(mnist["train_x"].max())
    print(f"pixels: uint8 in {lo}..{hi}, 28x28 = 784 per image")
    picks = np.concatenate([rng.choice(np.flatnonzero(mnist["train_y"] == d), 10, replace=False)
                            for d in range(N_CLASSES)])  # ten of each digit, in order
    return {"settings": {f"{s}_counts_per_digit": c for s, c in counts.items()},
            "metrics": {**{f"{s}_count": int(c.sum()) for s, c in counts.items()},
                        "pixel_min": lo, "pixel_max": hi},
            "figures": [run.figure(plot_digit_grid(mnist["train_x"][picks]),
                                   "digits_part1_samples")]}


def part2(run: runs.Run, settings: None, data: Digits) -> dict:
    """The 784-10 network with a softmax, vectorised over a batch of 100 test images."""
    X = to_inputs(data.mnist["test_x"][:100])
    P = softmax(softmax_forward(init_softmax_params(run.rng(2)), X))
    error = float(np.abs(P.sum(1) - 1).max())
    print(f"P = softmax(X W + b) {P.shape}: rows sum to 1 within {error:.1e}; softmax([1e4, 0, "
          f"-1e4]) = {softmax(np.array([[1e4, 0.0, -1e4]]))[0]}, stable")
    return {"settings": {"batch": len(X), "init": "W ~ N(0, 0.01^2), b = 0"},
            "metrics": {"output_rows": P.shape[0], "output_columns": P.shape[1],
                        "max_row_sum_error": error}}


def part3(run: runs.Run, s: Part3, data: Digits) -> dict:
    """Both nets' gradients against finite differences at random coordinates (float64)."""
    rng, mnist = run.rng(3), data.mnist
    idx = rng.choice(len(mnist["train_y"]), s.n_images, replace=False)
    X = to_inputs(mnist["train_x"][idx], np.float64)
    Y = one_hot(mnist["train_y"][idx], dtype=np.float64)
    lit = np.flatnonzero(X.any(axis=0))  # pixels lit in this batch
    soft = {k: 0.1 * rng.standard_normal(v.shape)  # larger than the init's: outputs that differ
            for k, v in init_softmax_params(rng).items()}
    snap = {k: v.astype(np.float64) for k, v in data.snapshot.items()}
    nets = {"softmax": (lambda p: softmax_forward(p, X), softmax_backward, soft, "W"),
            "tanh": (lambda p: tanh_forward(p, X)[1], tanh_backward, snap, "W0")}
    tables = {net: gradient_check(lambda p: nll_cost(logits(p), Y), lambda p: backward(p, X, Y),
                                  params, rng, s.n_coords, s.step, {W_in: lit})
              for net, (logits, backward, params, W_in) in nets.items()}
    rows = [{"network": net, **r, "index": "/".join(map(str, r["index"]))}
            for net, table in tables.items() for r in table]
    print(f"{'network':8} {'array':5} {'index':>9} {'analytic':>16} {'numeric':>16} {'rel.err':>9}")
    for r in rows:
        print(f"{r['network']:8} {r['array']:5} {r['index']:>9} {r['analytic']:16.9e} "
              f"{r['numeric']:16.9e} {r['rel_error']:9.2e}")
    inputs.write_text(run.out / "results" / "digits_part3_gradcheck.csv", "".join(
        ",".join(map(str, r)) + "\n" for r in [list(rows[0])] + [r.values() for r in rows]))
    metrics = {f"{net}_max_rel_error": max(r["rel_error"] for r in t) for net, t in tables.items()}
    metrics.update({f"{net}_coordinates_checked": len(t) for net, t in tables.items()})
    for net in tables:
        print(f"{net}: largest relative error {metrics[f'{net}_max_rel_error']:.2e} (bar: 1e-7)")
    return {"settings": {**asdict(s), "table": "results/digits_part3_gradcheck.csv"},
            "metrics": metrics}


def part4(run: runs.Run, s: Part4, data: Digits) -> dict:
    """Mini-batch training of the softmax net, then of the tanh net from snapshot50.pkl."""
    rng, mnist = run.rng(4), data.mnist
    X_all, Y_all = to_inputs(mnist["train_x"]), one_hot(mnist["train_y"])
    perm = rng.permutation(len(X_all))
    fit, val = np.sort(perm[s.n_val:]), np.sort(perm[:s.n_val])
    sub = fit[rng.choice(len(fit), min(s.n_train_eval, len(fit)), replace=False)]
    sets = {"train": (X_all[sub], Y_all[sub]), "val": (X_all[val], Y_all[val]),
            "test": (to_inputs(mnist["test_x"]), one_hot(mnist["test_y"]))}
    nets = {"softmax": ("Softmax 784-10 network", softmax_backward, s.softmax),
            "tanh": ("Tanh 784-300-10 network from snapshot50.pkl", tanh_backward, s.tanh)}
    metrics, curves, timings, figures, params = {}, {}, {}, [], {}

    def evaluate(p, iteration):  # a point on the curves of ``net``, the net the loop trains
        c = curves.setdefault(net, {"iteration": []})
        c["iteration"].append(iteration)
        line = f"  {net} it {iteration:6d}   accuracy (cost):"
        for k, (X_k, Y_k) in sets.items():
            cost, accuracy = cost_and_accuracy(p, X_k, Y_k)
            c.setdefault(f"{k}_cost", []).append(cost)
            c.setdefault(f"{k}_accuracy", []).append(accuracy)
            line += f"  {k} {accuracy:.4f} ({cost:.4f})"
        print(line, flush=True)

    for net, (title, backward, sgd) in nets.items():
        print(f"{title}: {len(fit)} training, {len(val)} validation images; {sgd}")
        params[net] = (init_softmax_params(rng) if net == "softmax" else  # trained in place
                       {k: v.copy() for k, v in data.snapshot.items()})
        clock = time.perf_counter()
        timings[f"{net}_epoch_seconds"] = train_network(
            params[net], backward, X_all[fit], Y_all[fit], sgd, rng, evaluate)
        metrics[f"{net}_test_accuracy"] = curves[net]["test_accuracy"][-1]
        metrics[f"{net}_validation_accuracy"] = curves[net]["val_accuracy"][-1]
        metrics[f"{net}_train_seconds"] = time.perf_counter() - clock  # with the evaluations
        figures.append(run.figure(plot_curves(curves[net], f"{title}: SGD + momentum, batch "
                                  f"{sgd.batch_size}"), f"digits_part4_{net}_curves"))
    metrics["snapshot50_test_accuracy"] = curves["tanh"]["test_accuracy"][0]  # before training
    # the median training-only epoch, scaled to one pass over 60,000 images
    metrics["tanh_seconds_per_epoch"] = np.median(timings["tanh_epoch_seconds"]) * 60000 / len(fit)
    W, W0, W1 = params["softmax"]["W"], params["tanh"]["W0"], params["tanh"]["W1"]
    shown = np.argsort(-np.abs(W1).sum(axis=1))[:s.n_hidden_shown]  # largest outgoing weights
    figures.append(run.figure(plot_weight_images(W, [f"digit {d}" for d in range(N_CLASSES)],
                   "Softmax network: weights into each output"), "digits_part4_softmax_weights"))
    figures.append(run.figure(plot_weight_images(W0[:, shown], [
        f"{u} -> {W1[u].argmax()}" for u in shown], f"Tanh network: input weights of the "
        f"{len(shown)} hidden units with the largest outgoing weights (above each: unit -> the "
        "output it excites most)"), "digits_part4_tanh_hidden"))
    return {"settings": {**asdict(s), "n_fit": len(fit), "n_test": len(mnist["test_y"]),
                         "train_curve_subset": len(sub)},
            "metrics": metrics, "figures": figures, "timings": timings, "curves": curves}


def sweep(values, n_seeds: int, trial, what: str) -> dict:
    """{"linear": [[accuracy per seed] per value], "logistic": ...}; trial(value, seed) -> pair."""
    out = {model: [] for model in FITS}
    for value in values:
        for model, accuracies in zip(out, zip(*[trial(value, seed) for seed in range(n_seeds)])):
            out[model].append(list(accuracies))
        print(f"  {what} {value:5.1f}: " + "   ".join(
            f"{m} {np.mean(out[m][-1]):.4f} +- {np.std(out[m][-1]):.4f}" for m in out), flush=True)
    return out


def part5(run: runs.Run, s: Part5, data: Digits) -> dict:
    """Linear regression (quadratic cost) vs multinomial logistic regression under corruption."""
    mnist, drawn = data.mnist, {}
    X_test, y_test = to_inputs(mnist["test_x"], np.float64), mnist["test_y"]

    def noisy_mnist(scale, seed):
        r = run.rng(5, seed)
        idx = np.concatenate([r.choice(np.flatnonzero(mnist["train_y"] == d), s.per_digit,
                                       replace=False) for d in range(N_CLASSES)])
        X = to_inputs(mnist["train_x"][idx], np.float64)  # noise on the training images only:
        X += scale * r.standard_normal(X.shape)
        T = one_hot(mnist["train_y"][idx], dtype=np.float64)
        return [accuracy_affine(gradient_descent_affine(X, T, s.gd_iterations, *fit), X_test,
                                y_test) for fit in FITS.values()]

    def far_points(distance, seed):
        r = run.rng(52, seed)
        X, y = make_outlier_2d(r, 200, s.n_outliers, distance)
        Xt, yt = make_outlier_2d(r, 1000, 0, 0.0)
        T = one_hot(y, 2, np.float64)
        Ws = [gradient_descent_affine(X, T, s.gd_iterations_2d, *fit) for fit in FITS.values()]
        if seed == 0 and distance == s.outlier_report:
            drawn.update(X=X, y=y, W_lin=Ws[0], W_log=Ws[1])
        return [accuracy_affine(W, Xt, yt) for W in Ws]

    noise = sweep(s.noise_scales, s.n_seeds, noisy_mnist, "noise")
    outliers = sweep(s.outlier_distances, s.n_seeds, far_points, "outliers at")
    figures = [run.figure(plot_sweeps(s, noise, outliers), "digits_part5_sweep"),
               run.figure(plot_boundaries(s, **drawn), "digits_part5_boundaries")]
    i, j = s.noise_scales.index(s.report_noise), s.outlier_distances.index(s.outlier_report)
    print("The quadratic cost's gradient (o - t) x grows with |o - t|: far points dominate the "
          "fit. The log-probability's, (p - t) x with |p - t| <= 1, stays bounded.")
    return {"settings": {**asdict(s), "test_images": len(y_test)}, "figures": figures,
            "metrics": {**{f"noise_{m}_test_accuracy": float(np.mean(noise[m][i])) for m in noise},
                        **{f"outlier2d_{m}_test_accuracy": float(np.mean(outliers[m][j]))
                           for m in noise}},
            "sweep": {"noise_scales": s.noise_scales, "noise": noise,
                      "outlier_distances": s.outlier_distances, "outlier2d": outliers}}


def cpu_seconds(fn, repeats: int, round_seconds: float) -> float:
    """CPU seconds per call: best of ``repeats`` timeit rounds, one BLAS thread (no idle spin)."""
    from threadpoolctl import threadpool_limits
    timer = timeit.Timer(fn, timer=time.process_time)
    with threadpool_limits(1):
        number = max(1, math.ceil(round_seconds / max(timer.timeit(1), 1e-6)))
        return min(timer.repeat(repeats, number)) / number


def part6(run: runs.Run, s: Part6, data: Digits) -> dict:
    """Backprop vs per-weight gradients: predicted and measured cost over a grid of N and K."""
    rng, rows = run.rng(6), []
    print(" N   K  backprop MACs  per-weight MACs  predicted  measured")
    for N in s.layers:
        for K in s.units:
            Ws = [rng.standard_normal((K, K)) / math.sqrt(K) for _ in range(N)]
            x, y = rng.standard_normal(K), rng.uniform(-0.5, 0.5, K)
            differ = max(float(np.abs(a - b).max())
                         for a, b in zip(deep_backprop(Ws, x, y), deep_per_weight(Ws, x, y)))
            assert differ < 1e-10, f"per-weight and backprop gradients differ by {differ}"
            t_bp = cpu_seconds(lambda: deep_backprop(Ws, x, y), s.repeats, s.round_seconds)
            t_pw = cpu_seconds(lambda: deep_per_weight(Ws, x, y), s.repeats, s.round_seconds)
            c_bp, c_pw, c_nc = predicted_cost(N, K)
            rows.append({"N": N, "K": K, "backprop_macs": c_bp, "per_weight_macs": c_pw,
                         "predicted_speedup": c_pw / c_bp, "per_weight_no_cache_macs": c_nc,
                         "predicted_speedup_no_cache": c_nc / c_bp, "backprop_seconds": t_bp,
                         "per_weight_seconds": t_pw, "measured_speedup": t_pw / t_bp,
                         "max_gradient_difference": differ})
            print(f"{N:>2} {K:>3} {c_bp:>14} {c_pw:>16} {c_pw / c_bp:>10.1f} {t_pw / t_bp:>9.1f}")
    print("Backprop shares dC/dh among a layer's weights: ~3 N K^2 multiply-adds, not N^2 K^4 / 2")
    return {"metrics": {f"max_{k}": max(r[k] for r in rows) for k in (
                "measured_speedup", "predicted_speedup", "predicted_speedup_no_cache")},
            "figures": [run.figure(plot_speedups(rows), "digits_part6_speedup")], "grid": rows}


PARTS = {"part1": runs.Part(part1), "part2": runs.Part(part2),
         "part3": runs.Part(part3, Part3, Part3.check),
         "part4": runs.Part(part4, Part4, Part4.check),
         "part5": runs.Part(part5, Part5, Part5.check), "part6": runs.Part(part6, Part6)}


def main(argv=None) -> dict:
    args = runs.parser(__doc__, PARTS).parse_args(argv)
    data = Digits(args.quick)  # each input read once, by the first check or part that needs it
    run, names = runs.start("digits.py", args, PARTS, context=(data,))
    return runs.run_parts(run, PARTS, names, data)


if __name__ == "__main__":
    runs.main_guard(main)
