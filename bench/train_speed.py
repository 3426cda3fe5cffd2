"""Benchmark: our NumPy training of the 784-300-10 tanh network against Keras and scikit-learn.

Part 4's network trained by ``digits.train_network`` (the lesson's own code), by Keras and by
scikit-learn's ``MLPClassifier`` from the same initial weights (``snapshot50.pkl``) and settings.
The floor: the two products of each batch that no trainer can skip, X_b W0 and X_b^T dZ0.

    python bench/train_speed.py               # 20 epochs each: results/bench_train_speed.json
    python bench/train_speed.py --threads 1   # every arm on one thread (BLAS and TensorFlow)
"""
import os
import statistics
import subprocess
import sys
import time
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import ClassVar

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the project, for digits

import numpy as np  # noqa: E402
from threadpoolctl import threadpool_info  # noqa: E402  (installed with scikit-learn)

import digits  # noqa: E402  (NumPy and matplotlib only)
from apparatus import digitdata, runs  # noqa: E402


@dataclass(frozen=True)
class Bench:
    epochs: int = runs.setting(20, ge=1)  # MLPClassifier and Keras reach about 98% by then
    batch_size: int = runs.setting(100, ge=1)  # the handout's mini-batch size
    learning_rate: float = runs.setting(0.05, gt=0)  # Part 4's, kept constant (sklearn: no cosine)
    momentum: float = runs.setting(0.9, ge=0, lt=1)  # plain (heavy-ball) momentum in all three
    train_images: int = runs.setting(60000, ge=1)  # all of MNIST's training images
    test_images: int = runs.setting(10000, ge=1)  # all of its test images
    QUICK: ClassVar[dict] = {"epochs": 1, "train_images": 3000, "test_images": 1000}


class NumpyArm:
    """digits.train_network, one epoch per call; the velocities carry over."""
    def __init__(self, params, X, y, s: Bench, seed, threads):
        self.params = {k: v.copy() for k, v in params.items()}  # trained in place
        self.velocity = {k: np.zeros_like(v) for k, v in params.items()}
        self.X, self.Y, self.rng = X, digitdata.one_hot(y), np.random.default_rng(seed)
        self.sgd = digits.SGDSettings(epochs=1, batch_size=s.batch_size, schedule="constant",
                                      learning_rate=s.learning_rate, momentum=s.momentum)

    def epoch(self) -> float:
        return digits.train_network(self.params, digits.tanh_backward, self.X, self.Y, self.sgd,
                                    self.rng, velocity=self.velocity)[0]

    def accuracy(self, X_test, y_test) -> float:
        return digits.cost_and_accuracy(self.params, X_test, digitdata.one_hot(y_test))[1]


class FloorArm:
    """The two batch products of an epoch alone, on the same batches (slices: no gathering)."""
    def __init__(self, params, X, y, s: Bench, seed, threads):
        n_batches = len(X) // s.batch_size
        self.W0, self.batches = params["W0"], np.split(X[:n_batches * s.batch_size], n_batches)
        self.dZ0 = np.ones((s.batch_size, self.W0.shape[1]), np.float32)  # values do not matter

    def epoch(self) -> float:
        start = time.perf_counter()
        for Xb in self.batches:
            Xb @ self.W0     # forward: (100, 784) @ (784, 300)
            Xb.T @ self.dZ0  # backward: (784, 100) @ (100, 300)
        return time.perf_counter() - start


class KerasArm:
    """``model.fit(..., epochs=1)`` per call, timed by a callback (not fit's per-call set-up)."""
    def __init__(self, params, X, y, s: Bench, seed, threads):
        import tensorflow as tf
        if threads:  # before TensorFlow's first op; afterwards it can no longer change
            tf.config.threading.set_intra_op_parallelism_threads(threads)
            tf.config.threading.set_inter_op_parallelism_threads(threads)
        import keras
        runs.seed_tensorflow(seed)
        self.model = keras.Sequential([keras.Input((X.shape[1],)),
                                       keras.layers.Dense(len(params["b0"]), activation="tanh"),
                                       keras.layers.Dense(len(params["b1"]), activation="softmax")])
        self.model.set_weights([params[k] for k in ("W0", "b0", "W1", "b1")])
        self.model.compile(loss="categorical_crossentropy", optimizer=keras.optimizers.SGD(
            learning_rate=s.learning_rate, momentum=s.momentum))
        self.X, self.Y, self.batch_size, self.done = X, digitdata.one_hot(y), s.batch_size, 0
        self.marks = []  # perf_counter at the start and the end of each epoch
        self.timer = keras.callbacks.LambdaCallback(
            on_epoch_begin=lambda *_: self.marks.append(time.perf_counter()),
            on_epoch_end=lambda *_: self.marks.append(time.perf_counter()))

    def epoch(self) -> float:
        self.model.fit(self.X, self.Y, batch_size=self.batch_size, initial_epoch=self.done,
                       epochs=self.done + 1, shuffle=True, verbose=0, callbacks=[self.timer])
        self.done += 1
        return self.marks[-1] - self.marks[-2]

    def accuracy(self, X_test, y_test) -> float:
        return float(np.mean(self.model.predict(X_test, 1000, verbose=0).argmax(1) == y_test))


class SklearnArm:
    """``MLPClassifier.partial_fit`` per call, one shuffled epoch, timed whole."""
    def __init__(self, params, X, y, s: Bench, seed, threads):
        import sklearn.neural_network
        sklearn.set_config(assume_finite=True)  # no scan of X for NaN in each epoch
        self.classifier = sklearn.neural_network.MLPClassifier(
            hidden_layer_sizes=(params["W0"].shape[1],), activation="tanh", solver="sgd",
            alpha=0.0, batch_size=s.batch_size, learning_rate="constant", shuffle=True,
            learning_rate_init=s.learning_rate, momentum=s.momentum, nesterovs_momentum=False,
            max_iter=1, tol=0.0, n_iter_no_change=10 ** 6, random_state=seed)
        self.X, self.y = X, y
        # one fit on an image per class sets up shapes and classes; then our weights replace
        # its own, and its optimizer goes: the first epoch starts with zero velocity
        first = np.array([np.flatnonzero(y == c)[0] for c in np.unique(y)])
        with warnings.catch_warnings(action="ignore"):  # convergence; batch larger than sample
            self.classifier.fit(X[first], y[first])
        self.classifier.coefs_ = [params["W0"].copy(), params["W1"].copy()]
        self.classifier.intercepts_ = [params["b0"].copy(), params["b1"].copy()]
        del self.classifier._optimizer

    def epoch(self) -> float:
        start = time.perf_counter()
        self.classifier.partial_fit(self.X, self.y)
        return time.perf_counter() - start

    def accuracy(self, X_test, y_test) -> float:
        return float(np.mean(self.classifier.predict(X_test) == y_test))


def step_by_step(arm: NumpyArm) -> dict[str, float]:
    """The seconds of each step of an epoch of ``arm`` (``train_network``'s lines, clocked)."""
    p, velocity, X, Y = arm.params, arm.velocity, arm.X, arm.Y
    B, lr, mu = arm.sgd.batch_size, arm.sgd.learning_rate, arm.sgd.momentum
    seconds = {}
    for idx in arm.rng.permutation(len(X))[:len(X) // B * B].reshape(-1, B):
        clock = [("", time.perf_counter())]  # (the step that just ended, when)
        Xb, Yb = X[idx], Y[idx]
        clock.append(("gather the batch's rows", time.perf_counter()))
        Z0 = Xb @ p["W0"]
        clock.append(("forward product X W0 (floor)", time.perf_counter()))
        H = np.tanh(Z0 + p["b0"])
        clock.append(("tanh of the hidden layer", time.perf_counter()))
        dO = digits.softmax(H @ p["W1"] + p["b1"]) - Yb
        clock.append(("output layer and softmax", time.perf_counter()))
        dZ0 = (dO @ p["W1"].T) * (1 - H * H)
        clock.append(("back through W1 and tanh", time.perf_counter()))
        grads = {"W0": Xb.T @ dZ0}
        clock.append(("gradient of W0 (floor)", time.perf_counter()))
        grads.update(b0=dZ0.sum(axis=0), W1=H.T @ dO, b1=dO.sum(axis=0))
        clock.append(("gradients of W1 and the biases", time.perf_counter()))
        for k, w in p.items():  # in place, as train_network: v = mu v - lr dw; w += v
            grads[k] *= lr / B
            velocity[k] *= mu
            velocity[k] -= grads[k]
            w += velocity[k]
        clock.append(("momentum step (4 arrays)", time.perf_counter()))
        for (_, t0), (step, t1) in zip(clock, clock[1:]):
            seconds[step] = seconds.get(step, 0.0) + t1 - t0
    return seconds


ARMS = {"numpy": NumpyArm, "keras": KerasArm, "sklearn": SklearnArm}  # and the floor, always


def main(argv=None) -> None:
    p = runs.parser(__doc__, {}, settings={"bench": Bench})
    p.add_argument("--epochs", type=int, help=f"epochs per arm (default {Bench.epochs})")
    p.add_argument("--arms", nargs="+", choices=list(ARMS), default=list(ARMS),
                   help="which implementations to train (default: all three; the floor always)")
    p.add_argument("--threads", type=int, help="every arm on N threads (BLAS, TensorFlow's pools)")
    args = p.parse_args(argv)
    args.set += [f"epochs={args.epochs}"] if args.epochs else []
    tags = ([f"threads{args.threads}"] if args.threads else []) + (
        ["arms-" + "-".join(args.arms)] if set(args.arms) != set(ARMS) else [])
    run, _ = runs.start("bench/train_speed.py", args, {"bench": Bench}, tags=tuple(tags))
    if args.threads and os.environ.get("OPENBLAS_NUM_THREADS") != str(args.threads):
        # OpenBLAS sizes its pool as NumPy loads (limiting it later was 2-4x slower): run again
        env = dict(os.environ, **{v: str(args.threads) for v in (
            "OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")})
        done = subprocess.run([sys.executable, __file__, *(argv or sys.argv[1:])], env=env)
        raise SystemExit(done.returncode)
    s, rng = run.settings(Bench), run.rng()
    data = digitdata.load_mnist()  # sorted by digit: a random subset under --quick
    train, test = (rng.permutation(len(data[f"{k}_y"]))[:n]
                   for k, n in (("train", s.train_images), ("test", s.test_images)))
    X, y = digitdata.to_inputs(data["train_x"][train]), data["train_y"][train]
    X_test, y_test = digitdata.to_inputs(data["test_x"][test]), data["test_y"][test]
    params = digitdata.load_snapshot()
    settings = {**asdict(s), "arms": args.arms, "threads": args.threads, "dtype": "float32",
                "architecture": "784-300-10, tanh hidden, softmax output, cross-entropy",
                "cpu_count": os.cpu_count(), "blas_threads": [  # OpenBLAS busy-waits under load
                    f"{p['internal_api']} {p['num_threads']}" for p in threadpool_info()],
                "load_average_at_start": round(os.getloadavg()[0], 2)}
    print("settings: " + ", ".join(f"{k}={v}" for k, v in settings.items()))
    clock = time.perf_counter()
    arms = {a: {**ARMS, "floor": FloorArm}[a](params, X, y, s, run.seed, args.threads)
            for a in [*args.arms, "floor"]}
    seconds = {a: [] for a in arms}
    for epoch in range(s.epochs):
        # each arm in turn, in an order rotated each epoch: other work on the machine slows all
        for a in list(arms)[epoch % len(arms):] + list(arms)[:epoch % len(arms)]:
            seconds[a].append(arms[a].epoch())
        print(f"epoch {epoch + 1:3d}/{s.epochs}: " + "  ".join(
            f"{a} {seconds[a][-1]:.3f} s" for a in arms), flush=True)
    # the median epoch: robust to a first epoch that compiles (Keras) and to a stray burst
    median = {a: statistics.median(t) for a, t in seconds.items()}
    accuracy = {a: arms[a].accuracy(X_test, y_test) for a in args.arms}
    metrics = {"floor_seconds_per_epoch": median["floor"]}
    for a in args.arms:
        metrics |= {f"{a}_seconds_per_epoch": median[a],
                    f"{a}_mean_epoch_seconds": statistics.fmean(seconds[a]),
                    f"{a}_test_accuracy": accuracy[a],
                    f"{a}_over_floor": median[a] / median["floor"]}
    for a in [a for a in ("keras", "sklearn") if a in arms and "numpy" in arms]:
        side_by_side = [t / u for t, u in zip(seconds[a], seconds["numpy"])]  # epoch by epoch
        metrics |= {f"{a}_over_numpy_ratio": median[a] / median["numpy"],
                    f"{a}_over_numpy_ratio_min": min(side_by_side),
                    f"{a}_over_numpy_ratio_max": max(side_by_side),
                    f"{a}_minus_numpy_accuracy_points": 100 * (accuracy[a] - accuracy["numpy"])}
    breakdown = step_by_step(NumpyArm(params, X, y, s, run.seed, None)) if "numpy" in arms else {}
    print("\n".join(f"  {k:36s} {v:9.4f}" for k, v in {**metrics, **breakdown}.items()))
    settings["load_average_at_end"] = round(os.getloadavg()[0], 2)  # other work during the run?
    run.record(None, settings, metrics, [], time.perf_counter() - clock,
               {**{f"{a}_epoch_seconds": [round(x, 4) for x in t] for a, t in seconds.items()},
                "numpy_epoch_breakdown": {k: round(v, 4) for k, v in breakdown.items()}})


if __name__ == "__main__":
    runs.main_guard(main)
