"""Benchmark: images per second of feature extraction, and the share of this CPU's peak it reaches.

Parts 10-11 (deepfaces.py) push every face through a pretrained backbone up to one layer. This
times those forward passes on random images of the real input size (the values do not change the
speed): ``alexnet``, myalexnet.py to ``conv4`` (227 x 227 x 3), weights generated in
bvlc_alexnet.npy's layout; ``mobilenet``, keras.applications.MobileNet (alpha 1.0, 224 x 224 x 3)
to the layer Part 10 chose (results/deepfaces_part10.json); ImageNet weights, else random.

For each: images per second, and the arithmetic rate reached as a fraction of this machine's
float32 matrix-multiply peak measured in the same run (the best of ``np.matmul`` and ``tf.matmul``).
FLOPs per image: 2 x output pixels x kernel size over the convolutions (depthwise ones included);
pooling, normalisation and activations are left out, so the fraction is a slight underestimate.
Run it on a quiet machine: anything else using the CPUs lowers every number here.

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
from apparatus.runs import setting  # noqa: E402

ALEXNET_LAYER = "conv4"  # the AlexNet layer deepfaces.py offers
MOBILENET_WEIGHTS = "mobilenet_1_0_224_imagenet.weights.h5"


def part10_layer() -> str:
    """The MobileNet layer Part 10 chose in the committed full run."""
    record = runs.read_results("deepfaces.py", "part10") or {}
    if record.get("backbone") != "mobilenet" or "layer" not in record:
        raise inputs.UserError(f"{runs.results_path('deepfaces.py', 'part10')}: no MobileNet "
                               "layer of Part 10 to time; run python deepfaces.py part10 first")
    return record["layer"]


@dataclass(frozen=True)
class Bench:
    batch: int = setting(32, ge=1)  # deepfaces.py extracts in batches of about this size
    timed_batches: int = setting(6, ge=1)  # after one untimed warm-up batch (tracing)
    matmul_side: int = setting(2048, ge=1)  # 17 GFLOP a product: reaches the peak, runs short
    matmul_repeats: int = setting(5, ge=1)  # the peak is the best of these
    QUICK: ClassVar[dict] = dict(batch=4, timed_batches=1, matmul_side=512, matmul_repeats=2)


def best_gflops(step, flop: float, repeats: int) -> float:  # fastest call, after a warm-up
    step()
    return flop / min(timeit.repeat(step, number=1, repeat=repeats)) / 1e9


def matmul_peak(side: int, repeats: int) -> dict:
    """Best float32 GFLOP/s of a ``side x side`` matrix product in NumPy and in TensorFlow."""
    tf = runs.import_tensorflow()
    rng = np.random.default_rng(0)
    a, b = (rng.standard_normal((side, side), dtype=np.float32) for _ in range(2))
    ta, tb, flop = tf.constant(a), tf.constant(b), 2.0 * side ** 3
    return {"numpy_matmul_gflops": best_gflops(lambda: np.matmul(a, b), flop, repeats),
            "tensorflow_matmul_gflops": best_gflops(lambda: (ta @ tb).numpy(), flop, repeats)}


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
    path = inputs.locate(MOBILENET_WEIGHTS)
    base = keras.applications.MobileNet(input_shape=(224, 224, 3), alpha=1.0, include_top=False,
                                        weights=str(path) if path else None)
    model = keras.Model(base.input, base.get_layer(layer).output)
    flop = sum(2 * conv.output.shape[1] * conv.output.shape[2] * int(np.prod(conv.kernel.shape))
               for conv in model.layers
               if isinstance(conv, (keras.layers.Conv2D, keras.layers.DepthwiseConv2D)))
    extract = tf.function(lambda batch: model(batch, training=False), reduce_retracing=True)
    return extract, flop, 224, "ImageNet" if path else "random"


BACKBONES = {"alexnet": alexnet, "mobilenet": mobilenet}


def main(argv=None) -> dict:
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
    metrics = matmul_peak(settings.matmul_side, settings.matmul_repeats)
    metrics = {"peak_gflops": max(metrics.values()), **metrics}
    print(f"float32 matmul peak: numpy {metrics['numpy_matmul_gflops']:.1f} GFLOP/s, tensorflow "
          f"{metrics['tensorflow_matmul_gflops']:.1f} GFLOP/s")
    timings = {}
    for name in args.backbones:
        extract, flop, side, extra[f"{name}_weights"] = BACKBONES[name](rng, extra[f"{name}_layer"])
        images = rng.uniform(-1, 1, size=(settings.batch, side, side, 3)).astype(np.float32)
        np.asarray(extract(images))  # warm-up: tracing and allocation are not throughput
        seconds = timeit.timeit(lambda: np.asarray(extract(images)), number=settings.timed_batches)
        per_second = settings.batch * settings.timed_batches / seconds
        rate = per_second * flop / 1e9
        metrics.update({f"{name}_images_per_second": per_second,
                        f"{name}_gflop_per_image": flop / 1e9, f"{name}_gflops": rate,
                        f"{name}_fraction_of_peak": rate / metrics["peak_gflops"]})
        timings[f"{name}_timed"] = round(seconds, 3)
        print(f"{name:10s} {per_second:8.1f} images/s  {flop / 1e9:.3f} GFLOP/image  "
              f"{rate:7.1f} GFLOP/s  {rate / metrics['peak_gflops']:.1%} of peak")
    extra["load_average_at_end"] = round(os.getloadavg()[0], 2)  # other work during the run?
    run.record(None, {**asdict(settings), **extra}, metrics, [], time.perf_counter() - t0, timings)
    return metrics


if __name__ == "__main__":
    runs.main_guard(main)
