"""Benchmark: images per second of feature extraction, and the share of this CPU's peak it reaches.

Parts 10-11 (deepfaces.py) push every face through a backbone up to one layer; this times that on
random images of the real size: myalexnet.py to ``conv4`` (random weights, bvlc layout), MobileNet
to Part 10's layer; the FLOP rate (convolutions only) as a fraction of the float32 matmul peak.

    python bench/features_speed.py                # --backbones alexnet, --set batch=16
    python bench/features_speed.py --quick        # a smoke run in seconds (numbers not quotable)
"""
import os
import sys
import time
import timeit
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import ClassVar

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the project: apparatus, myalexnet
import numpy as np  # noqa: E402

from apparatus import inputs, runs  # noqa: E402

ALEXNET_LAYER = "conv4"  # the AlexNet layer deepfaces.py offers


def part10_layer() -> str:
    """The MobileNet layer Part 10 chose in the committed full run."""
    record = runs.read_results("deepfaces.py", "part10") or {}
    if record.get("backbone") != "mobilenet" or "layer" not in record:
        raise inputs.UserError(f"{runs.results_path('deepfaces.py', 'part10')}: no MobileNet "
                               "layer of Part 10 to time; run python deepfaces.py part10 first")
    return record["layer"]


@dataclass(frozen=True)
class Bench:
    batch: int = runs.setting(32, ge=1)  # deepfaces.py extracts in batches of about this size
    timed_batches: int = runs.setting(6, ge=1)  # after one untimed warm-up batch (tracing)
    matmul_side: int = runs.setting(2048, ge=1)  # 17 GFLOP a product: reaches the peak, runs short
    matmul_repeats: int = runs.setting(5, ge=1)  # the peak is the best of these
    QUICK: ClassVar[dict] = dict(batch=4, timed_batches=1, matmul_side=512, matmul_repeats=2)


def fastest(step, number: int = 1, repeat: int = 1) -> float:
    """Seconds of the fastest of ``repeat`` runs of ``number`` calls, after a warm-up call."""
    step()
    return min(timeit.repeat(step, number=number, repeat=repeat))


# Each backbone: (rng, layer) -> (batch -> features, FLOPs per image, input side, which weights).
def alexnet(rng: np.random.Generator, layer: str):
    import myalexnet
    weights = myalexnet.random_weights(rng, stop_at=layer)
    shapes = myalexnet.layer_shapes(stop_at=layer)
    flop = sum(2 * shapes[name][0] * shapes[name][1] * W.size  # W holds one group's channels
               for name, (W, _) in weights.items())
    return (myalexnet.make_extractor(weights, stop_at=layer), flop,
            myalexnet.INPUT_SIZE, "random (bvlc layout)")


def mobilenet(rng: np.random.Generator, layer: str):
    import keras
    tf = runs.import_tensorflow()
    path = inputs.locate("mobilenet_1_0_224_imagenet.weights.h5")
    base = keras.applications.MobileNet(input_shape=(224, 224, 3), alpha=1.0, include_top=False,
                                        weights=str(path) if path else None)
    model = keras.Model(base.input, base.get_layer(layer).output)
    flop = sum(2 * conv.output.shape[1] * conv.output.shape[2] * int(np.prod(conv.kernel.shape))
               for conv in model.layers
               if isinstance(conv, (keras.layers.Conv2D, keras.layers.DepthwiseConv2D)))
    extract = tf.function(lambda batch: model(batch, training=False), reduce_retracing=True)
    return extract, flop, 224, "ImageNet" if path else "random"


BACKBONES = {"alexnet": alexnet, "mobilenet": mobilenet}


def main(argv=None) -> None:
    p = runs.parser(__doc__, {}, settings={"bench": Bench})
    p.add_argument("--backbones", nargs="+", choices=sorted(BACKBONES), default=sorted(BACKBONES),
                   help="which backbones to time (a subset is a trial, written under runs/)")
    args = p.parse_args(argv)
    subset = () if sorted(set(args.backbones)) == sorted(BACKBONES) else ("+".join(args.backbones),)
    run, _ = runs.start("bench/features_speed.py", args, {"bench": Bench}, tags=subset)
    settings = run.settings(Bench)
    extra = dict(backbones=args.backbones, alexnet_layer=ALEXNET_LAYER, cpu_count=os.cpu_count(),
                 mobilenet_layer=part10_layer() if "mobilenet" in args.backbones else None,
                 load_average_at_start=round(os.getloadavg()[0], 2))
    print("context: " + ", ".join(f"{k}={v}" for k, v in extra.items()))  # settings: printed above
    runs.seed_tensorflow(run.seed)
    rng, t0 = run.rng(), time.perf_counter()
    tf, side, repeats = runs.import_tensorflow(), settings.matmul_side, settings.matmul_repeats
    a, b = np.random.default_rng(0).standard_normal((2, side, side), dtype=np.float32)
    ta, tb, gflop = tf.constant(a), tf.constant(b), 2e-9 * side ** 3  # the float32 matmul peak
    metrics = {"numpy_matmul_gflops": gflop / fastest(lambda: np.matmul(a, b), repeat=repeats),
               "tensorflow_matmul_gflops": gflop / fastest(lambda: (ta @ tb).numpy(),
                                                           repeat=repeats)}
    metrics = {"peak_gflops": max(metrics.values()), **metrics}
    print("float32 matmul: " + ", ".join(f"{k} {v:.1f}" for k, v in metrics.items()))
    timings = {}
    for name in args.backbones:
        extract, flop, side, extra[f"{name}_weights"] = BACKBONES[name](rng, extra[f"{name}_layer"])
        images = rng.uniform(-1, 1, size=(settings.batch, side, side, 3)).astype(np.float32)
        seconds = fastest(lambda: np.asarray(extract(images)), settings.timed_batches)
        timings[f"{name}_timed"] = round(seconds, 3)
        per_second = settings.batch * settings.timed_batches / seconds
        metrics |= {f"{name}_images_per_second": per_second, f"{name}_gflop_per_image": flop / 1e9,
                    f"{name}_gflops": per_second * flop / 1e9,
                    f"{name}_fraction_of_peak": per_second * flop / 1e9 / metrics["peak_gflops"]}
        print("  ".join(f"{k} {v:.4g}" for k, v in metrics.items() if k.startswith(name)))
    extra["load_average_at_end"] = round(os.getloadavg()[0], 2)  # other work during the run?
    run.record(None, {**asdict(settings), **extra}, metrics, [], time.perf_counter() - t0, timings)


if __name__ == "__main__":
    runs.main_guard(main)
