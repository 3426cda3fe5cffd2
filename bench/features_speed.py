"""Benchmark: images per second of feature extraction, and the share of this CPU's peak it reaches.

What it measures
----------------
Parts 10-11 (deepfaces.py) push every face through a pretrained backbone up to one layer. This
bench times exactly those forward passes on batches of random images of the real input size
(no dataset needed; throughput does not depend on the pixel or the weight values):

* ``alexnet``: myalexnet.py up to ``conv4`` (227 x 227 x 3 input), random weights in the
  bvlc_alexnet.npy layout (``myalexnet.random_weights``);
* ``mobilenet``: keras.applications.MobileNet (alpha 1.0) up to ``conv_pw_11_relu``
  (224 x 224 x 3 input), with the ImageNet weights when ``mobilenet_1_0_224_imagenet.weights.h5``
  is on the data search path, else random weights.

For each it reports images per second and the arithmetic rate reached, as a fraction of the
machine's float32 matrix-multiply peak measured in the same run (the best of a large
``np.matmul`` and ``tf.matmul``). FLOPs per image are counted analytically from the layer
shapes: 2 x output pixels x kernel size for every convolution (depthwise ones included); pooling,
normalisation and activations are left out, so the fraction is a slight underestimate.

Results: ``results/bench_features_speed.json`` with ``<backbone>_images_per_second``,
``<backbone>_fraction_of_peak``, ``<backbone>_gflop_per_image`` and ``peak_gflops``.

    python bench/features_speed.py            # about a minute on 2 cores
    python bench/features_speed.py --quick    # a smoke run in seconds (numbers not quotable)

Run it on a quiet machine: anything else using the CPUs lowers every number here.
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

PROJECT_DIR = Path(__file__).resolve().parents[1]
if str(PROJECT_DIR) not in sys.path:
    sys.path.insert(0, str(PROJECT_DIR))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402

import deepnn_io  # noqa: E402

# ======================================================================================
# Settings
# ======================================================================================

BATCH = 32              # deepfaces.py extracts in batches of about this size
TIMED_BATCHES = 6       # after one untimed warm-up batch (tracing, memory allocation)
MATMUL_SIDE = 2048      # 17 GFLOP per product: long enough to reach the peak, short to run
MATMUL_REPEATS = 5      # the peak is the best of these
QUICK = dict(batch=4, timed_batches=1, matmul_side=512, matmul_repeats=2)
MOBILENET_LAYER = "conv_pw_11_relu"
MOBILENET_WEIGHTS = "mobilenet_1_0_224_imagenet.weights.h5"
ALEXNET_LAYER = "conv4"

# ======================================================================================
# The peak
# ======================================================================================

def matmul_peak(side: int, repeats: int) -> dict:
    """Best float32 GFLOP/s of a ``side x side`` matrix product in NumPy and in TensorFlow."""
    import tensorflow as tf
    rng = np.random.default_rng(0)
    a = rng.standard_normal((side, side), dtype=np.float32)
    b = rng.standard_normal((side, side), dtype=np.float32)
    flop = 2.0 * side ** 3
    best_np = best_tf = 0.0
    np.matmul(a, b)  # warm-up
    for _ in range(repeats):
        start = time.perf_counter()
        np.matmul(a, b)
        best_np = max(best_np, flop / (time.perf_counter() - start))
    ta, tb = tf.constant(a), tf.constant(b)
    tf.matmul(ta, tb).numpy()
    for _ in range(repeats):
        start = time.perf_counter()
        tf.matmul(ta, tb).numpy()
        best_tf = max(best_tf, flop / (time.perf_counter() - start))
    return {"numpy_gflops": best_np / 1e9, "tensorflow_gflops": best_tf / 1e9,
            "peak_gflops": max(best_np, best_tf) / 1e9}


# ======================================================================================
# The backbones: (a compiled batch -> features function, FLOPs per image, input side)
# ======================================================================================

def alexnet_backbone(rng: np.random.Generator):
    import myalexnet
    weights = myalexnet.random_weights(rng, stop_at=ALEXNET_LAYER)
    shapes = myalexnet.layer_shapes(stop_at=ALEXNET_LAYER)
    flop = 0
    for name, (w, _) in weights.items():
        h, w_side, _ = shapes[name]
        flop += 2 * h * w_side * int(np.prod(w.shape))  # W holds one group's input channels
    return (myalexnet.make_extractor(weights, stop_at=ALEXNET_LAYER), flop,
            myalexnet.INPUT_SIZE, "random (bvlc layout)")


def mobilenet_backbone(rng: np.random.Generator):
    import keras
    import tensorflow as tf
    path = deepnn_io.locate(MOBILENET_WEIGHTS)
    base = keras.applications.MobileNet(input_shape=(224, 224, 3), alpha=1.0,
                                        include_top=False,
                                        weights=str(path) if path else None)
    model = keras.Model(base.input, base.get_layer(MOBILENET_LAYER).output)
    flop = 0
    for layer in model.layers:
        if isinstance(layer, (keras.layers.Conv2D, keras.layers.DepthwiseConv2D)):
            _, h, w, _ = layer.output.shape
            flop += 2 * h * w * int(np.prod(layer.kernel.shape))

    @tf.function(reduce_retracing=True)
    def extract(batch):
        return model(batch, training=False)

    return extract, flop, 224, "ImageNet" if path else "random"


BACKBONES = {"alexnet": alexnet_backbone, "mobilenet": mobilenet_backbone}


def time_backbone(build, rng, batch: int, timed_batches: int) -> dict:
    extract, flop, side, weights = build(rng)
    images = rng.uniform(-1, 1, size=(batch, side, side, 3)).astype(np.float32)
    np.asarray(extract(images))  # warm-up: tracing and allocation are not throughput
    start = time.perf_counter()
    for _ in range(timed_batches):
        np.asarray(extract(images))
    seconds = time.perf_counter() - start
    return {"images_per_second": batch * timed_batches / seconds,
            "gflop_per_image": flop / 1e9, "seconds": seconds, "weights": weights}


# ======================================================================================
# Main
# ======================================================================================

def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    deepnn_io.add_common_args(parser)
    parser.add_argument("--backbones", nargs="+", choices=sorted(BACKBONES),
                        default=sorted(BACKBONES), help="which backbones to time")
    parser.add_argument("--batch", type=int, default=None, help=f"images per batch ({BATCH})")
    parser.add_argument("--batches", type=int, default=None,
                        help=f"timed batches per backbone ({TIMED_BATCHES})")
    args = parser.parse_args(argv)
    settings = dict(batch=BATCH, timed_batches=TIMED_BATCHES, matmul_side=MATMUL_SIDE,
                    matmul_repeats=MATMUL_REPEATS)
    if args.quick:
        settings.update(QUICK)
    if args.batch:
        settings["batch"] = args.batch
    if args.batches:
        settings["timed_batches"] = args.batches
    settings.update(backbones=args.backbones, alexnet_layer=ALEXNET_LAYER,
                    mobilenet_layer=MOBILENET_LAYER, cpu_count=os.cpu_count(),
                    load_average_at_start=round(os.getloadavg()[0], 2))
    print("settings: " + ", ".join(f"{k}={v}" for k, v in settings.items()))
    deepnn_io.seed_tensorflow(args.seed)
    rng = deepnn_io.make_rng(args.seed)

    clock = time.perf_counter()
    peak = matmul_peak(settings["matmul_side"], settings["matmul_repeats"])
    print(f"float32 matmul peak: numpy {peak['numpy_gflops']:.1f} GFLOP/s, tensorflow "
          f"{peak['tensorflow_gflops']:.1f} GFLOP/s")
    metrics = {"peak_gflops": peak["peak_gflops"], "numpy_matmul_gflops": peak["numpy_gflops"],
               "tensorflow_matmul_gflops": peak["tensorflow_gflops"]}
    timings = {}
    for name in args.backbones:
        measured = time_backbone(BACKBONES[name], rng, settings["batch"],
                                 settings["timed_batches"])
        rate = measured["images_per_second"] * measured["gflop_per_image"]
        metrics[f"{name}_images_per_second"] = measured["images_per_second"]
        metrics[f"{name}_gflop_per_image"] = measured["gflop_per_image"]
        metrics[f"{name}_gflops"] = rate
        metrics[f"{name}_fraction_of_peak"] = rate / peak["peak_gflops"]
        settings[f"{name}_weights"] = measured["weights"]
        timings[f"{name}_timed"] = round(measured["seconds"], 3)
        print(f"{name:10s} {measured['images_per_second']:8.1f} images/s  "
              f"{measured['gflop_per_image']:.3f} GFLOP/image  {rate:7.1f} GFLOP/s  "
              f"{rate / peak['peak_gflops']:.1%} of peak")
    seconds = time.perf_counter() - clock
    settings["load_average_at_end"] = round(os.getloadavg()[0], 2)  # other work during the run?
    path = deepnn_io.write_results(  # results/bench_features_speed.json
        args.out, "bench/features_speed.py", None, seed=args.seed, quick=args.quick, settings=settings,
        metrics=metrics, figures=[], seconds=seconds, timings=timings)
    print(f"wrote {path} ({seconds:.1f} s)")
    return metrics


if __name__ == "__main__":
    deepnn_io.run_cli(main)
