"""Parts 7-9 of CSC411 (Winter 2017) Project 2: a one-hidden-layer tanh network on faces.

* Part 7 -- ``60x60 pixels -> H tanh units -> softmax over the actors``, trained in TensorFlow
  with mini-batches on the grayscale faces of six actors; H chosen on validation over a sweep
  holding the report's 300, 600 and 900; learning curves; the test accuracy and its spread over
  training seeds.
* Part 8 -- a scenario that needs regularisation: five training photos per actor and 300 hidden
  units initialised 3x too large; L2 weight decay swept on a log grid, chosen on validation, and
  its test-set gain over lambda = 0, averaged over seeds.
* Part 9 -- for two actors, the hidden units that contribute most to that actor's output, drawn
  as 60x60 weight images beside the actor's mean face.

The split (``apparatus.facedata``, fixed by the seed, shared with deepfaces.py): per actor 30 test
and 15 validation photos, the rest for training; near-duplicate crops never straddle two splits.

    python faces.py all                 # part7 | part8 | part9 | all;  --seed 0 --quick --out DIR
    python faces.py part7 --set hidden_sweep="(300,600)"     # any setting of --help, by name

Needs ``python get_all_imgs.py`` first. Rows are examples (X is N x D), labels index the actors;
W0 (D, H), b0 (H,), W1 (H, K), b1 (K,) as in the handout; accuracies are fractions in 0..1.
"""
from __future__ import annotations

import dataclasses
import functools
import time
from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from apparatus import facedata, runs
from apparatus.inputs import UserError
from apparatus.runs import setting

tf = runs.import_tensorflow()  # quiet: its C++ libraries' loading notices

SIZE = (60, 60)  # the handout's grayscale crops


# ==== The network: X -> h = tanh(X W0 + b0) -> o = h W1 + b1 -> softmax(o) ================

def init_params(D: int, H: int, K: int, settings: TrainSettings, rng) -> dict:
    """W0 (D, H), b0 (H,), W1 (H, K), b1 (K,): normal weights (NumPy draws, so the init does not
    depend on TensorFlow's random streams), zero biases."""
    def std(fan_in, fan_out):  # Glorot's sqrt(2 / (fan_in + fan_out)), or 1, times the scale
        return settings.init_scale * (np.sqrt(2.0 / (fan_in + fan_out))
                                      if settings.init == "glorot" else 1.0)
    return {"W0": (rng.standard_normal((D, H)) * std(D, H)).astype(np.float32),
            "b0": np.zeros(H, np.float32),
            "W1": (rng.standard_normal((H, K)) * std(H, K)).astype(np.float32),
            "b1": np.zeros(K, np.float32)}


def hidden(params: dict, X):
    """(N, D) -> (N, H): h = tanh(X W0 + b0)."""
    return tf.tanh(tf.matmul(X, params["W0"]) + params["b0"])


def logits(params: dict, X):
    """(N, D) -> (N, K): o = h W1 + b1; softmax(o) are the actors' probabilities."""
    return tf.matmul(hidden(params, X), params["W1"]) + params["b1"]


def accuracy(params: dict, X, y) -> float:
    """The fraction of rows whose most probable actor (the largest logit) is the label y."""
    X = X if tf.is_tensor(X) else np.asarray(X, np.float32)
    predicted = logits(params, X).numpy().argmax(axis=1)
    return float(np.mean(predicted == y)) if len(y) else float("nan")


# ==== Training: mini-batch steps, an evaluation every eval_every steps, early stopping ====

def train_net(X, y, split: dict, settings: TrainSettings, seed: int):
    """Mini-batch training on rows split["train"] (X (N, D) float32, or a tf.Tensor made once
    for many nets; y (N,) labels 0..K-1), an evaluation of "val" and "test" every ``eval_every``
    steps, of "train_eval" (default "train") every ``train_eval_every``. Cost: mean cross-entropy
    + l2 * (|W0|^2 + |W1|^2); the history's costs are the cross-entropy alone. With early
    stopping, the params of the best validation accuracy (ties: lower cost). Returns (params as
    NumPy arrays, history)."""
    runs.seed_tensorflow(seed)
    rng = np.random.default_rng(seed)
    X, y = tf.convert_to_tensor(X, tf.float32), np.asarray(y, np.int64)
    D, H, K = X.shape[1], settings.hidden_units, int(y.max()) + 1
    net = Network.start(init_params(D, H, K, settings, rng), settings, seed)
    data, l2 = (X, tf.constant(y)), tf.constant(settings.l2, tf.float32)
    rows = {"train": split.get("train_eval", split["train"]), "val": split["val"],
            "test": split["test"]}
    eval_rows = {k: tf.constant(v, tf.int64) for k, v in rows.items() if len(v)}
    history = {"best_iteration": None, "iteration": [], **{f"{name}_{what}": [] for name in (
        "train", "val", "test") for what in ("accuracy", "cost")}}
    best, best_params, since_best = (-1.0, np.inf), None, 0
    batches = batch_order(np.asarray(split["train"]), settings.batch_size or len(split["train"]),
                          rng)
    for done in range(0, settings.iterations, settings.eval_every):  # steps, then an evaluation
        it = min(done + settings.eval_every, settings.iterations)
        net.train_steps(*data, tf.constant([next(batches) for _ in range(done, it)]), l2,
                        settings.input_noise, settings.dropout)
        history["iteration"].append(it)
        for name in ("train", "val", "test"):  # the training rows (curves only): less often
            due = (name != "train" or it % settings.train_eval_every == 0
                   or it == settings.iterations)
            acc, cost = net.evaluate(*data, eval_rows[name]) if name in eval_rows and due else (
                np.nan, np.nan)
            history[f"{name}_accuracy"].append(float(acc))
            history[f"{name}_cost"].append(float(cost))
        score = (history["val_accuracy"][-1], history["val_cost"][-1])
        if score[0] > best[0] or (score[0] == best[0] and score[1] < best[1]):
            best, since_best = score, 0
            best_params = {k: v.numpy() for k, v in net.params.items()}
            history["best_iteration"] = it
        else:
            since_best += 1
        if settings.patience is not None and since_best >= settings.patience:
            break
    if settings.early_stopping and best_params is not None:
        return best_params, history
    history["best_iteration"] = history["iteration"][-1]
    return {k: v.numpy() for k, v in net.params.items()}, history


def batch_order(rows: np.ndarray, batch_size: int, rng):
    """Batches of ``rows`` without replacement; a new shuffle when an epoch has too few left."""
    order, cursor = rng.permutation(rows), 0
    while True:
        if cursor + batch_size > len(order):
            order, cursor = rng.permutation(rows), 0
        yield order[cursor:cursor + batch_size]
        cursor += batch_size


class Network:
    """W0, b0, W1, b1 as tf.Variables, their optimizer and the compiled training steps."""

    def __init__(self, D: int, H: int, K: int, optimizer):
        shapes = {"W0": (D, H), "b0": (H,), "W1": (H, K), "b1": (K,)}
        self.params = {k: tf.Variable(tf.zeros(shape), name=k) for k, shape in shapes.items()}
        self.variables, self.optimizer = list(self.params.values()), optimizer
        optimizer.build(self.variables)  # its state (Adam's m and v) exists before any tracing
        self.fresh = [v.numpy() for v in optimizer.variables]  # step 0, zero m and v
        self.rng = tf.random.Generator.from_seed(0)  # input noise and dropout

    @staticmethod
    def start(params: dict, settings: TrainSettings, seed: int) -> Network:
        """A network holding ``params``, its optimizer at step 0, its noise drawn from ``seed``.
        Tracing the steps is slow, so one Network per shape and optimizer serves a whole run."""
        (D, H), K = params["W0"].shape, params["W1"].shape[1]
        net = compiled(D, H, K, settings.optimizer, settings.learning_rate, settings.momentum)
        for k, value in params.items():
            net.params[k].assign(value)
        net.optimizer.set_weights(net.fresh)
        net.rng.reset_from_seed(seed)
        return net

    # AutoGraph makes the loop over tf.range a graph loop: no Python between steps; XLA
    # compiles it to fused machine code (jit_compile), about twice as fast on the CPU
    @tf.function(jit_compile=True)
    def train_steps(self, X, y, batches, l2, noise=0.0, dropout=0.0):
        """One update per row of batches (k, B), row indices into X (N, D) and y (N,)."""
        for i in tf.range(tf.shape(batches)[0]):
            self.train_step(tf.gather(X, batches[i]), tf.gather(y, batches[i]), l2, noise, dropout)

    def train_step(self, xb, yb, l2, noise, dropout):
        if noise > 0:  # Python constants: decided once, when the step is traced
            xb = xb + noise * self.rng.normal(tf.shape(xb))
        with tf.GradientTape() as tape:  # forward, recorded ...
            h = hidden(self.params, xb)
            if dropout > 0:  # drop each unit with probability `dropout`, scale up the others
                h = h * tf.cast(self.rng.uniform(tf.shape(h)) >= dropout, h.dtype) / (1 - dropout)
            W0, W1, b1 = (self.params[k] for k in ("W0", "W1", "b1"))
            o = tf.matmul(h, W1) + b1
            cross_entropy = tf.reduce_mean(
                tf.nn.sparse_softmax_cross_entropy_with_logits(labels=yb, logits=o))
            cost = cross_entropy + l2 * (tf.reduce_sum(W0 * W0) + tf.reduce_sum(W1 * W1))
        # ... and backward: dC/dW0, dC/db0, dC/dW1, dC/db1 by reverse-mode autodiff
        self.optimizer.apply_gradients(zip(tape.gradient(cost, self.variables), self.variables))

    @tf.function(jit_compile=True)
    def evaluate(self, X, y, rows):
        """Accuracy and mean cross-entropy of ``rows`` of X (N, D) with labels y (N,)."""
        X, y = tf.gather(X, rows), tf.gather(y, rows)
        o = logits(self.params, X)
        cost = tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(labels=y, logits=o))
        return tf.reduce_mean(tf.cast(tf.equal(tf.argmax(o, 1), y), tf.float32)), cost


@functools.cache  # one Network per shape and optimizer in a process
def compiled(D: int, H: int, K: int, optimizer: str, learning_rate: float, momentum: float):
    if optimizer == "adam":
        return Network(D, H, K, tf.keras.optimizers.Adam(learning_rate=learning_rate))
    # v = momentum * v - lr * dC/dW;  W += v
    return Network(D, H, K, tf.keras.optimizers.SGD(learning_rate, momentum=momentum))


# ==== Settings: the trainer's, then one table per part ====================================

@dataclass(frozen=True)
class TrainSettings:
    """Everything the trainer needs; it knows nothing about pixels."""
    hidden_units: int = setting(300, ge=1)  # H: the report's network
    l2: float = setting(1e-4, ge=0)  # lambda in cost = mean cross-entropy + lambda*(|W0|^2+|W1|^2)
    learning_rate: float = setting(5e-4, gt=0)  # Adam's step: smooth curves at this batch size
    batch_size: int = setting(64, ge=0)  # photos per step (0: all training photos in every step)
    iterations: int = setting(1200, ge=1)  # at most: early stopping usually ends the run sooner
    eval_every: int = setting(25, ge=1)  # full-batch evaluation of validation and test every k
    train_eval_every: int = setting(100, ge=1)  # ... of the training rows (curves only) every k
    init: str = setting("glorot", choices=("glorot", "normal"))  # std init_scale*sqrt(2/(in+out))
    init_scale: float = setting(0.5, gt=0)  # half Glorot: tanh starts unsaturated on 3600 inputs
    optimizer: str = setting("adam", choices=("adam", "sgd"))  # "adam" | "sgd" (with momentum)
    momentum: float = setting(0.9, ge=0, lt=1)  # only for sgd
    early_stopping: bool = True  # keep the weights of the best validation evaluation
    patience: int | None = setting(8, ge=1)  # stop after this many evaluations without a better one
    input_noise: float = setting(0.0, ge=0)  # std of Gaussian noise on each training input (0: off)
    dropout: float = setting(0.0, ge=0, lt=1)  # dropout rate of the hidden units (0: off)


@dataclass(frozen=True)
class Part7(TrainSettings):
    hidden_sweep: tuple = setting((100, 300, 600, 900), ge=1)  # H: the report's 300, 600, 900; 100
    flip: bool = True  # add mirrored training faces: a mirror keeps the identity
    # (dy, dx) copies of the training faces: the crops are not aligned
    shifts: tuple = ((-2, -2), (-2, 0), (-2, 2), (0, -2), (0, 2), (2, -2), (2, 0), (2, 2))
    n_seeds: int = setting(5, ge=2)  # training seeds for mean and spread (same split, test set)
    QUICK: ClassVar[dict] = dict(hidden_sweep=(16, 32), iterations=60, eval_every=10,
                                 train_eval_every=10, patience=4, shifts=(), n_seeds=2)
    SWEPT: ClassVar[dict] = {"hidden_units": "hidden_sweep"}  # trainer field -> this part's sweep

    def __post_init__(self):  # each shift a (dy, dx) pair of whole pixels
        if not all(isinstance(d, tuple) and len(d) == 2 and all(
                isinstance(x, int) and abs(x) < min(SIZE) for x in d) for d in self.shifts):
            raise UserError(f"--set shifts={self.shifts!r}: give (dy, dx) pairs of whole pixels, "
                            "e.g. \"shifts=((-2, 0), (2, 0))\", or () for none")


@dataclass(frozen=True)
class Part8(TrainSettings):
    l2_sweep: tuple = setting((0.0, 1e-3, 3e-3, 1e-2, 3e-2, 1e-1, 3e-1, 1.0), ge=0)  # 0, then log
    n_train_per_actor: int = setting(5, ge=1)  # five photos per actor against a million weights
    hidden_units: int = 300  # the report's network: many more weights than photos
    learning_rate: float = 1e-3  # full-batch Adam fits the 30 photos within 200 steps
    batch_size: int = 0  # 0: all training photos in every step (full batch)
    iterations: int = 200  # the training photos are fitted exactly by then
    eval_every: int = 200  # only the final network counts
    init_scale: float = 3.0  # 3x Glorot: a careless init that decay has to clean up
    early_stopping: bool = False  # the point is what decay alone does
    patience: int | None = None
    n_seeds: int = setting(5, ge=1)  # each seed draws other training photos and another init
    QUICK: ClassVar[dict] = dict(hidden_units=64, iterations=60, eval_every=60,
                                 l2_sweep=(0.0, 1e-3, 1e-1), n_seeds=2)
    SWEPT: ClassVar[dict] = {"l2": "l2_sweep"}

    def __post_init__(self):
        if not self.l2_sweep or self.l2_sweep[0] != 0:
            raise UserError(f"--set l2_sweep={self.l2_sweep!r}: the sweep starts at 0, the "
                            "network without decay, e.g. \"l2_sweep=(0.0, 1e-3, 1e-2)\"")


@dataclass(frozen=True)
class Part9(TrainSettings):
    actors: tuple = ("Fran Drescher", "Steve Carell")  # one actress, one actor
    n_units: int = setting(5, ge=1)  # units shown per actor
    l2: float = 1e-2  # 100x Part 7's decay, for 1500 steps without early stopping:
    iterations: int = 1500  # decay wipes out what is left of the random init, so the
    early_stopping: bool = False  # weight images show face parts instead of pixel noise
    eval_every: int = 1500  # only the final network counts
    patience: int | None = None
    flip: bool = False  # keep left/right information in the weights we look at
    QUICK: ClassVar[dict] = dict(hidden_units=32, iterations=60, eval_every=60)


def train_settings(settings, **changes) -> TrainSettings:
    """The trainer's fields out of a part's settings (which extend them), with ``changes``."""
    own = {f.name: getattr(settings, f.name) for f in dataclasses.fields(TrainSettings)}
    return TrainSettings(**{**own, **changes})


# ==== Preprocessing: per-image standardisation, mirrors and shifts, per-pixel scaling ======

def standardise_images(images: np.ndarray) -> np.ndarray:
    """(N, H, W) -> X (N, H*W) float32, each row mean 0 and std 1: a photo's brightness and
    contrast say nothing about who is in it."""
    X = np.asarray(images, np.float32).reshape(len(images), -1)
    X = X - X.mean(axis=1, keepdims=True)
    return (X / (X.std(axis=1, keepdims=True) + 1e-6)).astype(np.float32)


def shift_edge(images: np.ndarray, dy: int, dx: int) -> np.ndarray:
    """(N, H, W) images moved by (dy, dx) pixels; the edge row/column is repeated into the gap."""
    H, W = images.shape[1:3]
    rows, cols = np.clip(np.arange(H) - dy, 0, H - 1), np.clip(np.arange(W) - dx, 0, W - 1)
    return images[:, rows][:, :, cols]


def standardise_columns(X: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """Each pixel (column) to mean 0, std 1 over the training ``rows`` only: the background
    varies more than the nose; equal spreads let one learning rate and init suit every input."""
    mean, std = X[rows].mean(axis=0), X[rows].std(axis=0) + 1e-3
    return ((X - mean) / std).astype(np.float32)


def augmented_features(images, labels, split: dict, flip: bool, shifts=()):
    """X (N + M, D), y (N + M,): all faces, then M mirrored/shifted copies of the training faces;
    the split's "train" holds both, "train_eval" the real ones (accuracies are of real photos)."""
    train = split["train"]
    base = np.asarray(images, np.float32)
    extra = [base[train][:, :, ::-1]] if flip else []
    for dy, dx in shifts:
        extra.append(shift_edge(base[train], dy, dx))
        if flip:
            extra.append(shift_edge(base[train][:, :, ::-1], dy, dx))
    X = standardise_images(np.concatenate([base] + extra))
    y = np.concatenate([labels] + [labels[train]] * len(extra)).astype(np.int64)
    out = dict(split, train=np.concatenate([train, np.arange(len(base), len(X))]),
               train_eval=train)
    return standardise_columns(X, out["train"]), y, out


def plot_learning_curves(history: dict, title: str):
    """Accuracy and cost against iterations for training, validation and test, one figure."""
    import matplotlib.pyplot as plt
    fig, axes = plt.subplots(1, 2, figsize=(8.5, 3.4))
    for ax, key, ylabel in zip(axes, ("accuracy", "cost"), ("accuracy", "mean cross-entropy")):
        for name, style, label in (("train", "-", "training"), ("val", "--", "validation"),
                                   ("test", ":", "test")):
            it, values = np.array(history["iteration"]), np.array(history[f"{name}_{key}"])
            ax.plot(it[np.isfinite(values)], values[np.isfinite(values)], style, label=label)
        ax.axvline(history["best_iteration"], color="gray", lw=0.8, label="chosen on validation")
        ax.set(xlabel="iteration (mini-batch steps)", ylabel=ylabel)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=9)
    fig.suptitle(title, fontsize=11)
    fig.tight_layout()
    return fig


# ==== Parts, and the faces and split that each loads ======================================

def load_faces_and_split(run: runs.Run, actors) -> tuple[dict, dict, dict]:
    """The 60x60 gray faces, their rows per split and the split record. The split file lives
    beside the dataset: data/, or data/quick/ for get_all_imgs.py --quick's small datasets."""
    data, rows, record = facedata.load_split(actors, run.seed, run.quick)
    print(f"{len(data['labels'])} faces of {len(data['actors'])} actors; split "
          f"train {len(rows['train'])} / val {len(rows['val'])} / test {len(rows['test'])}, "
          f"{record['duplicate_groups']} near-duplicate groups each kept in one split")
    return data, rows, record


def part7(run: runs.Run, settings: Part7, actors) -> dict:
    """H chosen on validation; learning curves; the test accuracy over training seeds."""
    data, split, record = load_faces_and_split(run, actors)
    X, y, split_aug = augmented_features(data["images"], data["labels"], split, settings.flip,
                                         settings.shifts)
    K, sweep = len(data["actors"]), settings.hidden_sweep
    print(f"network: {X.shape[1]} pixels -> H tanh units -> {K} softmax, H in {list(sweep)} "
          f"chosen on validation; {len(X) - len(data['labels'])} mirrored/shifted training faces")

    nets, X_tf = {}, tf.constant(X)  # on TensorFlow's side once, for every net of the part
    for H in sweep:
        clock = time.perf_counter()
        params, history = train_net(X_tf, y, split_aug, train_settings(settings, hidden_units=H),
                                    run.seed)
        nets[H] = {"params": params, "history": history, "seconds": time.perf_counter() - clock,
                   "val": accuracy(params, X[split["val"]], y[split["val"]]),
                   "train": accuracy(params, X[split["train"]], y[split["train"]])}
        print(f"  H = {H:4d}: validation {nets[H]['val']:.3f}  training {nets[H]['train']:.3f}  "
              f"(best iteration {history['best_iteration']}, {nets[H]['seconds']:.1f} s)")
    chosen = max(sweep, key=lambda h: (nets[h]["val"], -h))  # ties: the smaller network
    best = nets[chosen]
    test_acc = accuracy(best["params"], X[split["test"]], y[split["test"]])
    print(f"chosen on validation: H = {chosen}; its test accuracy {test_acc:.4f}")

    # other training seeds (init and batch order; same split): early stopping needs only val
    seed_accs, no_rows = [test_acc], np.array([], dtype=np.int64)
    val_only = {**split_aug, "train_eval": no_rows, "test": no_rows}
    for s in range(run.seed + 1, run.seed + settings.n_seeds):
        params, _ = train_net(X_tf, y, val_only, train_settings(settings, hidden_units=chosen), s)
        seed_accs.append(accuracy(params, X[split["test"]], y[split["test"]]))
        print(f"  training seed {s}: test {seed_accs[-1]:.4f}")
    mean, std = float(np.mean(seed_accs)), float(np.std(seed_accs, ddof=1))
    print(f"test accuracy over {settings.n_seeds} training seeds: {mean:.4f} +- {std:.4f}")

    import matplotlib.pyplot as plt
    figures = [run.figure(plot_learning_curves(best["history"], f"Part 7: {X.shape[1]}-{chosen}-"
                                               f"{K} tanh network (test accuracy {test_acc:.3f})"),
                          "faces_part7_curves")]
    fig, ax = plt.subplots(figsize=(5.5, 3.8))
    ax.plot(sweep, [nets[h]["train"] for h in sweep], "o-", label="training")
    ax.plot(sweep, [nets[h]["val"] for h in sweep], "s--", label="validation")
    ax.axvline(chosen, color="gray", lw=0.8, label=f"chosen: {chosen}")
    ax.set(xlabel="hidden units H", ylabel="accuracy (at the early-stopping iteration)",
           title="Part 7: number of hidden units chosen on validation")
    ax.grid(alpha=0.3)
    ax.legend()
    figures.append(run.figure(fig, "faces_part7_hidden_units"))

    metrics = {"test_accuracy": test_acc, "test_accuracy_mean": mean, "test_accuracy_std": std,
               "validation_accuracy": best["val"], "train_accuracy": best["train"],
               "hidden_units": chosen, "duplicate_groups": record["duplicate_groups"],
               "best_iteration": best["history"]["best_iteration"], "n_seeds": settings.n_seeds,
               "test_accuracy_per_seed": seed_accs, "n_test": len(split["test"]),
               **{f"validation_accuracy_h{h}": nets[h]["val"] for h in sweep}}
    return {"metrics": metrics, "figures": figures, "actors": list(data["actors"]),
            "timings": {f"train_h{h}_seconds": round(nets[h]["seconds"], 2) for h in sweep},
            "split": {k: len(v) for k, v in split.items()}, "n_inputs": X.shape[1]}


def part8(run: runs.Run, settings: Part8, actors) -> dict:
    """Few training photos, many units: lambda swept on a log grid, chosen on validation.

    30 photos span 30 of the 3600 input directions; the large random weights along the others
    get (almost) no gradient from the data, so without decay they stay and add noise to every
    new photo. Decay shrinks them towards zero: smoother functions of the pixels.
    """
    data, split, _ = load_faces_and_split(run, actors)
    X, y, K = standardise_images(data["images"]), data["labels"], len(data["actors"])
    lambdas = settings.l2_sweep
    n_per = min(settings.n_train_per_actor, int(np.bincount(y[split["train"]]).min()))
    train = train_settings(settings, l2=0.0)  # batch_size 0: the n_per * K photos in each step
    print(f"network: {X.shape[1]} pixels -> {train.hidden_units} tanh units -> {K} softmax; "
          f"{n_per} training photos per actor; lambdas {list(lambdas)}; {settings.n_seeds} seeds")
    val, X_tf = np.zeros((settings.n_seeds, len(lambdas))), tf.constant(X)
    test, weight_norm = np.zeros_like(val), np.zeros_like(val)
    for i, s in enumerate(range(run.seed, run.seed + settings.n_seeds)):
        rng = np.random.default_rng(s)  # seed s: its own training photos and its own init
        few = np.concatenate([rng.choice(split["train"][y[split["train"]] == a], n_per,
                                         replace=False) for a in range(K)])
        for j, lam in enumerate(lambdas):
            params, _ = train_net(X_tf, y, dict(split, train=few),
                                  dataclasses.replace(train, l2=lam), s)
            val[i, j] = accuracy(params, X[split["val"]], y[split["val"]])
            test[i, j] = accuracy(params, X[split["test"]], y[split["test"]])
            weight_norm[i, j] = float(np.sqrt(np.sum(params["W0"] ** 2)))
        print(f"  seed {s}: val " + " ".join(f"{v:.3f}" for v in val[i]) +
              " | test " + " ".join(f"{v:.3f}" for v in test[i]))
    mean_val = val.mean(axis=0)
    best_j = int(np.argmax(mean_val))  # ties: the smaller lambda (first on the grid)
    gain = 100 * (test[:, best_j].mean() - test[:, 0].mean())
    print(f"best lambda on validation: {lambdas[best_j]}; test {test[:, 0].mean():.4f} "
          f"(lambda 0) -> {test[:, best_j].mean():.4f}: {gain:+.1f} points")

    import matplotlib.pyplot as plt
    smallest = min([lam for lam in lambdas if lam > 0] or [1.0])
    positions = np.array([lam or smallest / 10 for lam in lambdas])  # lambda 0 at the left
    fig, ax = plt.subplots(figsize=(6.5, 4))
    for arr, name, style in ((val, "validation", "s--"), (test, "test", "o-")):
        ax.errorbar(positions, arr.mean(axis=0), yerr=arr.std(axis=0, ddof=1) if len(arr) > 1
                    else None, fmt=style, capsize=3, label=f"{name}, mean +- std of {len(arr)}")
    ax.axvline(positions[best_j], color="gray", lw=0.8, label=f"chosen: {lambdas[best_j]:g}")
    ax.set(xscale="log", ylabel="accuracy",
           xlabel="L2 weight decay lambda (log scale; leftmost point is lambda = 0)")
    ax.set_xticks(positions, [f"{lam:g}" for lam in lambdas], rotation=45)
    ax.set_title(f"Part 8: {n_per} training photos per actor, {train.hidden_units} hidden units, "
                 f"init {train.init_scale:g}x Glorot", fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    figures = [run.figure(fig, "faces_part8_lambda")]

    spread = test.std(axis=0, ddof=1) if len(test) > 1 else np.zeros(len(lambdas))
    metrics = {"best_lambda": float(lambdas[best_j]),
               "test_accuracy_no_decay_mean": float(test[:, 0].mean()),
               "test_accuracy_best_lambda_mean": float(test[:, best_j].mean()),
               "gain_points_mean": float(gain), "test_accuracy_no_decay_std": float(spread[0]),
               "test_accuracy_best_lambda_std": float(spread[best_j]),
               "validation_accuracy_best_lambda_mean": float(mean_val[best_j]),
               "n_seeds": settings.n_seeds}
    per_lambda = {"validation_mean": mean_val.tolist(), "test_mean": test.mean(axis=0).tolist(),
                  "W0_norm_mean": weight_norm.mean(axis=0).tolist()}
    return {"metrics": metrics, "figures": figures, "n_train_per_actor": n_per,
            "per_lambda": per_lambda}


def unit_usefulness(H_act: np.ndarray, labels: np.ndarray, W1: np.ndarray, actor: int):
    """How much each hidden unit raises ``actor``'s logit on that actor's photos (H_act (N, H)):
    score_j = W1[j, actor] * (mean h_j over the actor's photos - mean h_j over all photos)."""
    gap = H_act[labels == actor].mean(axis=0) - H_act.mean(axis=0)
    return W1[:, actor] * gap


def part9(run: runs.Run, settings: Part9, actors) -> dict:
    """The hidden units most useful for two actors, as weight images beside the mean face."""
    data, split, _ = load_faces_and_split(run, actors)
    names = [str(a) for a in data["actors"]]
    X, y, split_aug = augmented_features(data["images"], data["labels"], split, settings.flip)
    params, _ = train_net(X, y, split_aug, train_settings(settings), run.seed)
    W0, W1 = params["W0"], params["W1"]
    train = split["train"]
    # the network sees each pixel divided by its training std (standardise_columns): the weight
    # on a per-image-standardised pixel is W0 / std, which is what we draw
    W0 = W0 / (standardise_images(data["images"])[train].std(axis=0) + 1e-3)[:, None]
    H_act = hidden(params, X[train]).numpy()
    n_units = min(settings.n_units, settings.hidden_units)
    test_acc = accuracy(params, X[split["test"]], y[split["test"]])
    print(f"{settings.hidden_units} hidden units, test accuracy {test_acc:.3f}")

    import matplotlib.pyplot as plt
    fig, axes = plt.subplots(len(settings.actors), n_units + 1, layout="constrained",
                             figsize=(1.3 * (n_units + 1) + 0.5, 1.6 * len(settings.actors) + 0.4))
    chosen_units = {}
    for row, actor in enumerate(settings.actors):
        a = names.index(actor)
        scores = unit_usefulness(H_act, y[train], W1, a)
        units = np.argsort(scores)[::-1][:n_units]
        chosen_units[actor] = [int(u) for u in units]
        print(f"  {actor}: units {units.tolist()}, scores " +
              " ".join(f"{v:.3f}" for v in scores[units]))
        axes[row, 0].imshow(data["images"][train][y[train] == a].mean(axis=0), cmap="gray")
        axes[row, 0].set_title(f"{actor}\nmean training face", fontsize=9)
        # tanh(h) feeds the logit with weight W1[u, a]: W0 drawn with that sign, so that red
        # pixels push the photo towards this actor. One symmetric colour limit per row.
        images = [W0[:, u].reshape(SIZE) * np.sign(W1[u, a]) for u in units]
        lim = max(np.abs(w).max() for w in images)
        for col, (u, w) in enumerate(zip(units, images), start=1):
            im = axes[row, col].imshow(w, cmap="RdBu_r", vmin=-lim, vmax=lim)
            axes[row, col].set_title(f"unit {u}\nscore {scores[u]:.2f}", fontsize=9)
        fig.colorbar(im, ax=list(axes[row, 1:]), fraction=0.02, pad=0.01)
    for ax in axes.ravel():
        ax.set(xticks=[], yticks=[])
    fig.suptitle("Part 9: incoming weights of the most useful hidden units, on the per-image "
                 "standardised pixels\n(red: pushes towards the actor; symmetric limits per row)",
                 fontsize=9)
    figures = [run.figure(fig, "faces_part9_units")]
    metrics = {"test_accuracy": test_acc, "hidden_units": settings.hidden_units,
               **{f"units_{facedata.actors_tag([a])}": chosen_units[a] for a in settings.actors}}
    return {"metrics": metrics, "figures": figures}


def check_part9(settings: Part9, run: runs.Run, actors) -> None:
    """Part 9's actors: one or more names of the actor set, checked before any part trains."""
    unknown = [a for a in settings.actors if a not in actors]
    if unknown or not settings.actors:
        raise UserError(f"--set actors={settings.actors!r}: part9 draws one or more actors of the "
                        f"actor set ({', '.join(actors)}), e.g. --set actors=\"({actors[0]!r},)\"")

# ==== Command line ========================================================================

PARTS = {"part7": runs.Part(part7, Part7), "part8": runs.Part(part8, Part8),
         "part9": runs.Part(part9, Part9, check_part9)}


def main(argv=None) -> dict:
    p = runs.parser(__doc__, PARTS)
    facedata.add_actors_option(p)
    args = p.parse_args(argv)
    run, names = runs.start("faces.py", args, PARTS, tags=facedata.actors_tags(args.actors),
                            context=(args.actors,))
    return runs.run_parts(run, PARTS, names, args.actors)


if __name__ == "__main__":
    runs.main_guard(main)
