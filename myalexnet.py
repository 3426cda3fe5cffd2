"""AlexNet in TensorFlow 2, built exactly as the handout's ``myalexnet_forward.py`` builds it.

What this reproduces
--------------------
The CSC411 (Winter 2017) handout gives a TensorFlow port of Caffe's ``bvlc_alexnet`` together
with its weights, ``bvlc_alexnet.npy``. Parts 10-11 (deepfaces.py) use the activations of one of
its layers (conv4 by default) as features for faces. This module is that network:

    conv1 11x11/4, 96 maps, SAME   -> ReLU -> LRN -> max-pool 3x3/2 VALID
    conv2  5x5/1, 256 maps, 2 groups, SAME -> ReLU -> LRN -> max-pool 3x3/2 VALID
    conv3  3x3/1, 384 maps, SAME -> ReLU
    conv4  3x3/1, 384 maps, 2 groups, SAME -> ReLU
    conv5  3x3/1, 256 maps, 2 groups, SAME -> ReLU -> max-pool 3x3/2 VALID
    fc6 4096 -> ReLU;  fc7 4096 -> ReLU;  fc8 1000;  prob = softmax(fc8)

At a 227 x 227 input the maps are 57 (conv1), 28 (pool1, conv2), 13 (pool2 .. conv5) and 6
(pool5) pixels wide, so conv4 is 13 x 13 x 384 = 64,896 values and fc6 sees 6 * 6 * 256 = 9216.
LRN is TensorFlow's ``local_response_normalization`` with depth radius 2, alpha 2e-5, beta 0.75
and bias 1.0 (Caffe's alpha 1e-4 divided by its window of 5, as the handout's port does).

Conventions
-----------
* One table, :data:`LAYERS`, lists every layer; one builder, :func:`forward`, walks it and can
  stop after any named layer (``forward(x, weights, stop_at="conv4")``).
* Weights are a dict ``name -> (W, b)`` in the layout of ``bvlc_alexnet.npy``: convolution
  kernels HWIO with the input channels *of one group* (conv2 is 5 x 5 x 48 x 256), fully
  connected matrices ``in x out``. A grouped convolution splits the input channels and the
  kernel's output channels into ``group`` halves, convolves each pair and concatenates,
  exactly like the handout (TensorFlow's own grouped conv2d is not implemented on CPUs).
* Input: a batch ``N x 227 x 227 x 3`` made by :func:`preprocess` (BGR, ImageNet mean removed).
* Importing this module reads no weights and imports no TensorFlow; :func:`load_weights` reads the
  file through the restricted unpickler of ``deepnn_io`` (the file is a pickle: never ``np.load``
  it with ``allow_pickle=True``).

Getting the weights
-------------------
``bvlc_alexnet.npy`` (about 233 MB) comes from
http://www.cs.toronto.edu/~guerzhoy/tf_alexnet/bvlc_alexnet.npy. Put it in the project's
``data/`` folder or in a folder named by ``DEEPNN_DATA``; :func:`find_weights` looks there and
otherwise tries that address.

Cost: the forward pass to conv4 of one 227 x 227 image is about 0.7 GFLOP (about 10-20 ms per
image on two CPU cores in batches).

    python myalexnet.py [image ...]   # ImageNet top-5 of the images (needs the weights)
"""
from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path

import numpy as np

import deepnn_io

WEIGHTS_FILE = "bvlc_alexnet.npy"
INPUT_SIZE = 227  # the side the handout feeds; conv4 is 13 x 13 at this size

# The mean that Caffe's bvlc_alexnet was trained with, per channel in BGR order (the per-pixel
# ImageNet mean image averaged over pixels: B 104.0, G 116.7, R 122.7). The handout's own script
# instead subtracts the scalar mean of each image; ``preprocess(..., mean="image")`` does that.
IMAGENET_MEAN_BGR = np.array([104.00698793, 116.66876762, 122.67891434], dtype=np.float32)

# LRN as the handout's port sets it (TensorFlow's parametrisation of Caffe's LRN).
LRN_RADIUS, LRN_ALPHA, LRN_BETA, LRN_BIAS = 2, 2e-05, 0.75, 1.0


# ======================================================================================
# The layer table
# ======================================================================================

@dataclass(frozen=True)
class Layer:
    """One row of the network. ``kind`` is conv | lrn | maxpool | fc | softmax."""
    name: str
    kind: str
    size: int = 0          # kernel / pool side
    maps: int = 0          # output channels (conv) or units (fc)
    stride: int = 1
    group: int = 1         # conv: number of channel groups
    padding: str = "SAME"
    relu: bool = False     # conv / fc: ReLU after the affine map


LAYERS: tuple[Layer, ...] = (
    Layer("conv1", "conv", size=11, maps=96, stride=4, group=1, padding="SAME", relu=True),
    Layer("lrn1", "lrn"),
    Layer("maxpool1", "maxpool", size=3, stride=2, padding="VALID"),
    Layer("conv2", "conv", size=5, maps=256, stride=1, group=2, padding="SAME", relu=True),
    Layer("lrn2", "lrn"),
    Layer("maxpool2", "maxpool", size=3, stride=2, padding="VALID"),
    Layer("conv3", "conv", size=3, maps=384, stride=1, group=1, padding="SAME", relu=True),
    Layer("conv4", "conv", size=3, maps=384, stride=1, group=2, padding="SAME", relu=True),
    Layer("conv5", "conv", size=3, maps=256, stride=1, group=2, padding="SAME", relu=True),
    Layer("maxpool5", "maxpool", size=3, stride=2, padding="VALID"),
    Layer("fc6", "fc", maps=4096, relu=True),
    Layer("fc7", "fc", maps=4096, relu=True),
    Layer("fc8", "fc", maps=1000, relu=False),
    Layer("prob", "softmax"),
)
LAYER_NAMES = tuple(layer.name for layer in LAYERS)
WEIGHTED_LAYERS = tuple(layer.name for layer in LAYERS if layer.kind in ("conv", "fc"))


def _layers_upto(stop_at: str) -> tuple[Layer, ...]:
    if stop_at not in LAYER_NAMES:
        raise ValueError(f"unknown AlexNet layer '{stop_at}'; choose one of {', '.join(LAYER_NAMES)}")
    return LAYERS[: LAYER_NAMES.index(stop_at) + 1]


def _out_side(side: int, layer: Layer) -> int:
    """Spatial side after a conv / pool layer (TensorFlow's SAME and VALID rules)."""
    if layer.padding == "SAME":
        return -(-side // layer.stride)
    return (side - layer.size) // layer.stride + 1


def layer_shapes(input_shape=(INPUT_SIZE, INPUT_SIZE, 3), stop_at: str = "prob"
                 ) -> dict[str, tuple[int, ...]]:
    """Output shape (without the batch axis) of every layer up to ``stop_at``, from the table."""
    h, w, c = input_shape
    shapes: dict[str, tuple[int, ...]] = {}
    flat = None
    for layer in _layers_upto(stop_at):
        if layer.kind in ("conv", "maxpool"):
            h, w = _out_side(h, layer), _out_side(w, layer)
            c = layer.maps if layer.kind == "conv" else c
        if layer.kind in ("fc", "softmax"):
            flat = layer.maps if layer.kind == "fc" else flat
            shapes[layer.name] = (flat,)
        else:
            shapes[layer.name] = (h, w, c)
            flat = h * w * c
    return shapes


def weight_shapes(input_shape=(INPUT_SIZE, INPUT_SIZE, 3)) -> dict[str, tuple[tuple, tuple]]:
    """``name -> (W shape, b shape)`` that the table implies, in bvlc_alexnet.npy's layout.

    At 227 x 227 x 3: conv1 (11,11,3,96), conv2 (5,5,48,256), conv3 (3,3,256,384),
    conv4 (3,3,192,384), conv5 (3,3,192,256), fc6 (9216,4096), fc7 (4096,4096), fc8 (4096,1000).
    """
    h, w, c = input_shape
    flat = h * w * c
    shapes = {}
    for layer in LAYERS:
        if layer.kind == "conv":
            shapes[layer.name] = ((layer.size, layer.size, c // layer.group, layer.maps),
                                  (layer.maps,))
        elif layer.kind == "fc":
            shapes[layer.name] = ((flat, layer.maps), (layer.maps,))
        if layer.kind in ("conv", "maxpool"):
            h, w = _out_side(h, layer), _out_side(w, layer)
            c = layer.maps if layer.kind == "conv" else c
            flat = h * w * c
        elif layer.kind == "fc":
            flat = layer.maps
    return shapes


# ======================================================================================
# Loading the weights
# ======================================================================================

def find_weights(download: bool = True) -> Path:
    """Path of bvlc_alexnet.npy on the data search path (downloaded into data/ if allowed).

    Raises deepnn_io.MissingInputError with the address and the folders to put it in.
    """
    return deepnn_io.find_input(WEIGHTS_FILE, download=download, timeout=60.0)


def check_weights(weights: dict, required=WEIGHTED_LAYERS, source: str = WEIGHTS_FILE) -> dict:
    """Check every layer of ``weights`` against :func:`weight_shapes`; return float32 (W, b) pairs.

    Layers named in ``required`` must be present; any other layer of the table that is present
    is checked too; unknown names are ignored (the file holds only the eight layers).
    Raises deepnn_io.InputFormatError naming the file, the layer and the shapes.
    """
    if not isinstance(weights, dict):
        raise deepnn_io.InputFormatError(
            f"{source}: expected a dict 'layer name -> [weights, biases]', found "
            f"{type(weights).__name__}. Get a fresh copy of {WEIGHTS_FILE}.")
    expected = weight_shapes()
    missing = [name for name in required if name not in weights]
    if missing:
        raise deepnn_io.InputFormatError(
            f"{source}: layers {missing} are missing (found {sorted(weights)}). "
            f"Get a fresh copy of {WEIGHTS_FILE}.")
    checked = {}
    for name, (w_shape, b_shape) in expected.items():
        if name not in weights:
            continue
        pair = weights[name]
        if not isinstance(pair, (list, tuple)) or len(pair) != 2:
            raise deepnn_io.InputFormatError(
                f"{source}: layer '{name}' should be [weights, biases], found {type(pair).__name__}")
        W, b = (np.asarray(a) for a in pair)
        if W.shape != w_shape or b.shape != b_shape:
            raise deepnn_io.InputFormatError(
                f"{source}: layer '{name}' has weights {W.shape} and biases {b.shape}; AlexNet "
                f"needs {w_shape} and {b_shape}. The file is not the handout's bvlc_alexnet.npy.")
        if not (np.issubdtype(W.dtype, np.floating) and np.issubdtype(b.dtype, np.floating)):
            raise deepnn_io.InputFormatError(
                f"{source}: layer '{name}' is {W.dtype}/{b.dtype}, expected floating point")
        checked[name] = (W.astype(np.float32, copy=False), b.astype(np.float32, copy=False))
    return checked


def load_weights(path: Path | str | None = None, stop_at: str = "prob") -> dict:
    """Read bvlc_alexnet.npy safely and check it; ``name -> (W, b)`` float32.

    ``path`` None finds the file (see :func:`find_weights`). The layers up to ``stop_at`` must be
    present. The file is a Python-2 pickle, read with ``encoding="latin1"`` through the restricted
    unpickler, so a file that would run code on load is refused rather than run.
    """
    path = Path(path) if path is not None else find_weights()
    weights = deepnn_io.load_npy_object_safely(path, encoding="latin1")
    required = [layer.name for layer in _layers_upto(stop_at) if layer.name in WEIGHTED_LAYERS]
    return check_weights(weights, required=required, source=str(path))


def save_weights(path: Path | str, weights: dict) -> Path:
    """Write ``weights`` in bvlc_alexnet.npy's format (``np.save`` of a dict of [W, b] lists)."""
    with deepnn_io.atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            np.save(f, {name: [np.asarray(W), np.asarray(b)] for name, (W, b) in weights.items()},
                    allow_pickle=True)
    return Path(path)


def random_weights(rng: np.random.Generator, stop_at: str = "prob", scale: float = 0.01) -> dict:
    """Small random weights of the right shapes for every layer up to ``stop_at`` (for tests)."""
    shapes = weight_shapes()
    names = [layer.name for layer in _layers_upto(stop_at) if layer.name in WEIGHTED_LAYERS]
    return {name: (scale * rng.standard_normal(shapes[name][0], dtype=np.float32),
                   scale * rng.standard_normal(shapes[name][1], dtype=np.float32))
            for name in names}


# ======================================================================================
# Preprocessing
# ======================================================================================

def preprocess(images, mean: str = "imagenet") -> np.ndarray:
    """RGB uint8 faces ``N x 227 x 227 x 3`` (0..255) -> the float32 BGR input AlexNet expects.

    The Caffe weights were trained on BGR images in 0..255 with the ImageNet mean removed, so:
    1. channels are reordered RGB -> BGR with fancy indexing, which makes a real copy. (The
       handout's ``im[:, :, 0], im[:, :, 2] = im[:, :, 2], im[:, :, 0]`` swaps *views*: the
       second assignment copies the already overwritten channel back, and both end up red.)
    2. ``mean="imagenet"`` subtracts :data:`IMAGENET_MEAN_BGR` per channel (what Caffe did);
       ``mean="image"`` subtracts each image's own scalar mean, as the handout's script does.
    Images must already be 227 x 227 (get_all_imgs.py makes them at that size).
    """
    x = np.asarray(images)
    if x.ndim == 3:
        x = x[None]
    if x.ndim != 4 or x.shape[1:] != (INPUT_SIZE, INPUT_SIZE, 3):
        raise ValueError(f"AlexNet input must be N x {INPUT_SIZE} x {INPUT_SIZE} x 3 RGB, "
                         f"got {x.shape}")
    bgr = x[..., [2, 1, 0]].astype(np.float32)  # fancy index: a new array, not a view
    if mean == "imagenet":
        return bgr - IMAGENET_MEAN_BGR
    if mean == "image":
        return bgr - bgr.mean(axis=(1, 2, 3), keepdims=True)
    raise ValueError(f"mean must be 'imagenet' or 'image', got {mean!r}")


# ======================================================================================
# The network: one builder walking the table
# ======================================================================================

def grouped_conv(x, W, b, stride: int, padding: str, group: int):
    """Convolution with ``group`` channel groups, as the handout builds it.

    x: N x H x W x (group*c) ; W: k x k x c x M (M divisible by group) ; b: M.
    Group g sees input channels [g*c, (g+1)*c) and produces output maps [g*M/group, ...).
    """
    import tensorflow as tf
    conv = lambda inp, ker: tf.nn.conv2d(inp, ker, strides=[1, stride, stride, 1], padding=padding)
    if group == 1:
        out = conv(x, W)
    else:
        xs = tf.split(x, group, axis=3)
        Ws = tf.split(W, group, axis=3)
        out = tf.concat([conv(xi, Wi) for xi, Wi in zip(xs, Ws)], axis=3)
    return tf.nn.bias_add(out, b)


def lrn(x):
    """Local response normalisation across channels (the handout's settings).

    y[..., d] = x[..., d] / (bias + alpha * sum_{j=d-r}^{d+r} x[..., j]^2) ** beta, r = 2.
    """
    import tensorflow as tf
    return tf.nn.local_response_normalization(x, depth_radius=LRN_RADIUS, alpha=LRN_ALPHA,
                                              beta=LRN_BETA, bias=LRN_BIAS)


def forward(x, weights: dict, stop_at: str = "prob", keep: bool = False):
    """Run AlexNet on a preprocessed batch ``N x 227 x 227 x 3`` up to layer ``stop_at``.

    ``weights``: ``name -> (W, b)`` (NumPy or tensors). Returns the activation of ``stop_at``
    (a tf.Tensor), or with ``keep=True`` a dict of every layer's activation up to it.
    """
    import tensorflow as tf
    h = tf.convert_to_tensor(x, dtype=tf.float32)
    acts = {}
    for layer in _layers_upto(stop_at):
        if layer.kind == "conv":
            W, b = weights[layer.name]
            h = grouped_conv(h, W, b, layer.stride, layer.padding, layer.group)
        elif layer.kind == "lrn":
            h = lrn(h)
        elif layer.kind == "maxpool":
            h = tf.nn.max_pool2d(h, ksize=layer.size, strides=layer.stride, padding=layer.padding)
        elif layer.kind == "fc":
            W, b = weights[layer.name]
            h = tf.matmul(tf.reshape(h, [tf.shape(h)[0], -1]), W) + b
        elif layer.kind == "softmax":
            h = tf.nn.softmax(h)
        if layer.relu:
            h = tf.nn.relu(h)
        if keep:
            acts[layer.name] = h
    return acts if keep else h


def make_extractor(weights: dict, stop_at: str = "conv4"):
    """A compiled function ``batch (N x 227 x 227 x 3 preprocessed) -> activation of stop_at``.

    The weights become constants of one traced graph, so batches after the first are fast.
    """
    import tensorflow as tf
    names = [layer.name for layer in _layers_upto(stop_at) if layer.name in WEIGHTED_LAYERS]
    consts = {n: (tf.constant(weights[n][0]), tf.constant(weights[n][1])) for n in names}

    @tf.function(input_signature=[tf.TensorSpec([None, INPUT_SIZE, INPUT_SIZE, 3], tf.float32)],
                 reduce_retracing=True)
    def extract(batch):
        return forward(batch, consts, stop_at=stop_at)

    return extract


# ======================================================================================
# Command line: classify images with the real weights
# ======================================================================================

def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description="AlexNet (bvlc_alexnet.npy) top-5 on images")
    parser.add_argument("images", nargs="*", type=Path, help="image files (any size; resized)")
    parser.add_argument("--mean", choices=("imagenet", "image"), default="imagenet",
                        help="mean to subtract: ImageNet per channel, or the handout's image mean")
    args = parser.parse_args(argv)
    weights = load_weights()
    print("loaded", WEIGHTS_FILE, {n: W.shape for n, (W, _) in weights.items()})
    from PIL import Image
    for path in args.images:
        img = Image.open(path).convert("RGB").resize((INPUT_SIZE, INPUT_SIZE), Image.BILINEAR)
        prob = forward(preprocess(np.asarray(img), mean=args.mean), weights).numpy()[0]
        top = np.argsort(prob)[::-1][:5]
        print(path, " ".join(f"class {k}: {prob[k]:.3f}" for k in top))


if __name__ == "__main__":
    deepnn_io.run_cli(main)
