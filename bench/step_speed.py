"""Benchmark: what one compiled training step of Parts 7 and 10 costs, beside its pieces.

At the shapes of Part 7 (64 faces, 3,600 pixels, 300 hidden units) and Part 10 (32 faces, 25,088
or 50,176 features, 64 hidden units), interleaved in one run, in milliseconds a step:
* ``step``: faces.py's own compiled step (forward, backward, Keras's Adam on every array);
* ``forward_xla`` / ``forward_numpy``: the product of the batch's gathered rows with W0, compiled
  by XLA and by NumPy (OpenBLAS), with the tanh;
* ``adam_w0``: Keras's Adam update of a W0-sized array alone (compiled). It must read the
  gradient, m, v and W0 and write the last three: ``adam_w0_gb_per_s`` is that stream's rate;
* ``step_fused_adam``: the same step with XLA computing only the gradients, in a graph loop that
  updates every array with TensorFlow's one-kernel Adam (``ResourceApplyAdam``) instead.

    python bench/step_speed.py          # results/bench_step_speed.json;  --set rounds=5
"""
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the project, for faces

import numpy as np  # noqa: E402

from apparatus import runs  # noqa: E402

# (faces a step, inputs, hidden units): Part 7's batch of 60x60 faces and its chosen H; Part 10's
# batch, its two feature sizes (7 x 7 x 512 and 7 x 7 x 1024) and its hidden units
SHAPES = {"part7": (64, 60 * 60, 300), "part10_conv_pw_9": (32, 7 * 7 * 512, 64),
          "part10_conv_pw_13": (32, 7 * 7 * 1024, 64)}


@dataclass(frozen=True)
class Bench:
    rounds: int = runs.setting(10, ge=1)  # calls per arm; the median call counts
    steps: int = runs.setting(25, ge=1)  # steps per call, as Part 7 and 10 train between evaluations
    rows: int = runs.setting(1500, ge=1)  # rows to gather the batches from (Part 10: 1,476)
    QUICK: ClassVar[dict] = {"rounds": 2, "steps": 5, "rows": 200}


def arms(B: int, D: int, H: int, s: Bench, rng) -> dict:
    """{arm: call}, each call doing ``s.steps`` steps at this shape."""
    import faces  # TensorFlow: loaded when the benchmark runs, not when it is imported
    tf, K = faces.tf, 6
    X = rng.standard_normal((s.rows, D)).astype(np.float32)
    y = rng.integers(0, K, s.rows)
    batches = rng.integers(0, s.rows, (s.steps, B))
    settings = faces.TrainSettings(hidden_units=H, batch_size=B)
    params = faces.init_params(D, H, K, settings, rng)
    net = faces.Network.start(params, settings, 0)
    X_tf, y_tf, batches_tf, l2 = tf.constant(X), tf.constant(y), tf.constant(batches), tf.constant(
        settings.l2)
    W0, sink = tf.Variable(params["W0"]), tf.Variable(tf.zeros(H))
    optimizer = tf.keras.optimizers.Adam(settings.learning_rate)
    optimizer.build([W0])
    gradient = tf.constant(rng.standard_normal((D, H)).astype(np.float32) * 1e-3)

    @tf.function(jit_compile=True)
    def forward_xla():  # a new batch each step: nothing to hoist out of the loop
        for i in tf.range(s.steps):
            h = tf.tanh(tf.matmul(tf.gather(X_tf, batches_tf[i]), W0))
            sink.assign_add(tf.reduce_sum(h, axis=0))

    def forward_numpy():
        for idx in batches:
            np.tanh(X[idx] @ params["W0"])

    @tf.function(jit_compile=True)
    def adam_w0():
        for _ in tf.range(s.steps):
            optimizer.apply_gradients([(gradient, W0)])

    variables = {k: tf.Variable(v) for k, v in params.items()}
    moments = [{k: tf.Variable(tf.zeros_like(v)) for k, v in params.items()} for _ in "mv"]
    done = tf.Variable(0.0)

    @tf.function(jit_compile=True)
    def gradients(xb, yb):  # faces.train_step's cost, its gradients only
        with tf.GradientTape() as tape:
            o = faces.logits(variables, xb)
            cost = tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(yb, o)) + l2 * (
                tf.reduce_sum(variables["W0"] ** 2) + tf.reduce_sum(variables["W1"] ** 2))
        return tape.gradient(cost, variables)

    @tf.function
    def step_fused_adam():
        for i in tf.range(s.steps):
            g = gradients(tf.gather(X_tf, batches_tf[i]), tf.gather(y_tf, batches_tf[i]))
            done.assign_add(1.0)
            for k, v in variables.items():
                tf.raw_ops.ResourceApplyAdam(
                    var=v.handle, m=moments[0][k].handle, v=moments[1][k].handle,
                    beta1_power=0.9 ** done, beta2_power=0.999 ** done,
                    lr=settings.learning_rate, beta1=0.9, beta2=0.999, epsilon=1e-7, grad=g[k])

    return {"step": lambda: net.train_steps(X_tf, y_tf, batches_tf, l2, 0.0, 0.0),
            "step_fused_adam": step_fused_adam, "forward_xla": forward_xla,
            "forward_numpy": forward_numpy, "adam_w0": adam_w0}


def main(argv=None) -> None:
    p = runs.parser(__doc__, {}, settings={"bench": Bench})
    args = p.parse_args(argv)
    run, _ = runs.start("bench/step_speed.py", args, {"bench": Bench})
    s, rng, clock = run.settings(Bench), run.rng(), time.perf_counter()
    metrics, timings = {}, {}
    for shape, (B, D, H) in SHAPES.items():
        calls = arms(B, D, H, s, rng)
        for call in calls.values():  # traced and compiled outside the timing
            call()
        ms = {a: [] for a in calls}
        for r in range(s.rounds):  # each arm in turn, the order rotated: the machine's drift
            for a in list(calls)[r % len(calls):] + list(calls)[:r % len(calls)]:
                start = time.perf_counter()
                calls[a]()
                ms[a].append(1e3 * (time.perf_counter() - start) / s.steps)
        median = {a: float(np.median(v)) for a, v in ms.items()}
        metrics |= {f"{shape}_{a}_ms": v for a, v in median.items()}
        metrics[f"{shape}_adam_w0_gb_per_s"] = 7 * D * H * 4 / median["adam_w0"] / 1e6
        timings |= {f"{shape}_{a}_ms": [round(x, 3) for x in v] for a, v in ms.items()}
        print(f"{shape} (B {B}, D {D}, H {H}): " + ", ".join(
            f"{a} {v:.2f} ms" for a, v in median.items()) +
            f"; Adam's stream {metrics[f'{shape}_adam_w0_gb_per_s']:.1f} GB/s", flush=True)
    run.record(None, {**vars(s), "shapes": SHAPES}, metrics, [], time.perf_counter() - clock,
               timings)


if __name__ == "__main__":
    runs.main_guard(main)
