"""AlexNet as the handout's myalexnet builds it, in TensorFlow 2, stoppable at any layer.

The handout's port of Caffe's ``bvlc_alexnet`` (weights ``bvlc_alexnet.npy``, 233 MB, in data/
or a $DEEPNN_DATA folder; no published sha256, so ``load_weights`` checks the content). Parts
10-11 (deepfaces.py) use one layer's activations as face features. The network is one table
(``LAYERS``) walked by ``forward``, with grouped convolutions (conv2, conv4, conv5: AlexNet was
trained on two GPUs) and LRN across channels. A batch is ``N x H x W x C``; weights are a dict
``name -> (W, b)`` in bvlc_alexnet.npy's layout (kernels HWIO with one group's input channels).

    python myalexnet.py                  # the layer table, checked by a pass with generated weights
    python myalexnet.py photo.jpg ...    # the ImageNet top 5 of each image (needs the weights)
"""
from collections import namedtuple
from pathlib import Path

import numpy as np

from apparatus import inputs, runs

WEIGHTS_FILE = "bvlc_alexnet.npy"
INPUT_SIZE = 227  # the side the handout feeds
# Caffe's bvlc_alexnet was trained on BGR images less this mean (ImageNet's, per channel).
IMAGENET_MEAN_BGR = np.array([104.00698793, 116.66876762, 122.67891434], dtype=np.float32)
# LRN as the handout's port sets it: Caffe's alpha 1e-4 divided by its window of 2 * 2 + 1.
LRN = dict(depth_radius=2, alpha=2e-05, beta=0.75, bias=1.0)

# ==== The layer table =====================================================================

Layer = namedtuple("Layer", "name kind size maps stride group padding relu")
LAYERS = (  # size: kernel or pool side; maps: output channels or units; group: channel groups
    Layer("conv1",    "conv",    11,  96,   4, 1, "SAME",  True),
    Layer("lrn1",     "lrn",     0,   0,    1, 1, "",      False),
    Layer("maxpool1", "maxpool", 3,   0,    2, 1, "VALID", False),
    Layer("conv2",    "conv",    5,   256,  1, 2, "SAME",  True),
    Layer("lrn2",     "lrn",     0,   0,    1, 1, "",      False),
    Layer("maxpool2", "maxpool", 3,   0,    2, 1, "VALID", False),
    Layer("conv3",    "conv",    3,   384,  1, 1, "SAME",  True),
    Layer("conv4",    "conv",    3,   384,  1, 2, "SAME",  True),
    Layer("conv5",    "conv",    3,   256,  1, 2, "SAME",  True),
    Layer("maxpool5", "maxpool", 3,   0,    2, 1, "VALID", False),
    Layer("fc6",      "fc",      0,   4096, 1, 1, "",      True),
    Layer("fc7",      "fc",      0,   4096, 1, 1, "",      True),
    Layer("fc8",      "fc",      0,   1000, 1, 1, "",      False),
    Layer("prob",     "softmax", 0,   0,    1, 1, "",      False),
)
LAYER_NAMES = tuple(layer.name for layer in LAYERS)


def layers_upto(stop_at: str) -> tuple[Layer, ...]:
    if stop_at not in LAYER_NAMES:
        raise ValueError(f"unknown AlexNet layer '{stop_at}'; "
                         f"choose one of {', '.join(LAYER_NAMES)}")
    return LAYERS[: LAYER_NAMES.index(stop_at) + 1]


def weighted_upto(stop_at: str) -> list[str]:
    return [layer.name for layer in layers_upto(stop_at) if layer.kind in ("conv", "fc")]


def layer_shapes(input_shape=(INPUT_SIZE, INPUT_SIZE, 3), stop_at: str = "prob") -> dict:
    """Output shape (no batch axis) of every layer up to ``stop_at``, from the table alone. At 227:
    conv1 57 x 57 x 96, maxpool1 28 x 28, maxpool2 to conv5 13 x 13, maxpool5 6 x 6 x 256."""
    shape, shapes = tuple(input_shape), {}
    for layer in layers_upto(stop_at):
        if layer.kind in ("conv", "maxpool"):  # TensorFlow's SAME and VALID rules
            shape = (*[-(-n // layer.stride) if layer.padding == "SAME"
                       else (n - layer.size) // layer.stride + 1 for n in shape[:2]],
                     layer.maps or shape[2])
        elif layer.kind == "fc":
            shape = (layer.maps,)
        shapes[layer.name] = shape
    return shapes


def weight_shapes(input_shape=(INPUT_SIZE, INPUT_SIZE, 3)) -> dict:
    """``name -> (W shape, b shape)`` that the table implies, in bvlc_alexnet.npy's layout."""
    # the input of each layer: the image, then the output of the layer before
    inp = dict(zip(LAYER_NAMES, [tuple(input_shape), *layer_shapes(input_shape).values()]))
    return {l.name: ((l.size, l.size, inp[l.name][2] // l.group, l.maps) if l.kind == "conv"
                     else (int(np.prod(inp[l.name])), l.maps), (l.maps,))
            for l in LAYERS if l.kind in ("conv", "fc")}  # a kernel sees one group's channels


# ==== The network: preprocessing, grouped convolution, LRN, forward =======================

def preprocess(images, mean: str = "imagenet") -> np.ndarray:
    """RGB uint8 images ``N x 227 x 227 x 3`` -> the float32 BGR input, less ``IMAGENET_MEAN_BGR``
    (``mean="imagenet"``, as Caffe) or each image's mean (``"image"``, as the handout)."""
    x = np.asarray(images)
    x = x[None] if x.ndim == 3 else x
    if x.ndim != 4 or x.shape[1:] != (INPUT_SIZE, INPUT_SIZE, 3):
        raise ValueError(f"AlexNet input must be N x {INPUT_SIZE} x {INPUT_SIZE} x 3 RGB, "
                         f"got {x.shape}")
    bgr = x[..., [2, 1, 0]].astype(np.float32)  # a copy: the handout's swap of views made both red
    if mean == "imagenet":
        return bgr - IMAGENET_MEAN_BGR
    if mean == "image":
        return bgr - bgr.mean(axis=(1, 2, 3), keepdims=True)
    raise ValueError(f"mean must be 'imagenet' or 'image', got {mean!r}")


def grouped_conv(x, W, b, stride: int, padding: str, group: int):
    """x: N x H x W x (group * c), W: k x k x c x M -> N x H' x W' x M: group g convolves its
    slice of channels into its slice of maps, as the handout (TF's grouped conv2d needs a GPU)."""
    tf = runs.import_tensorflow()
    conv = lambda inp, ker: tf.nn.conv2d(inp, ker, strides=[1, stride, stride, 1], padding=padding)
    pairs = zip(tf.split(x, group, axis=3), tf.split(W, group, axis=3))
    return tf.nn.bias_add(tf.concat([conv(xi, Wi) for xi, Wi in pairs], axis=3), b)


def lrn(x):
    """y[..., d] = x[..., d] / (bias + alpha * sum_{j=d-r..d+r} x[..., j]^2) ** beta, r = 2."""
    tf = runs.import_tensorflow()
    return tf.nn.local_response_normalization(x, **LRN)


def forward(x, weights: dict, stop_at: str = "prob", keep: bool = False):
    """A preprocessed batch ``N x 227 x 227 x 3`` -> the activation of layer ``stop_at`` (a tensor),
    or with ``keep=True`` a dict of every layer's activation. ``weights``: ``name -> (W, b)``."""
    tf = runs.import_tensorflow()
    h, acts = tf.convert_to_tensor(x, dtype=tf.float32), {}
    for layer in layers_upto(stop_at):
        if layer.kind == "conv":
            h = grouped_conv(h, *weights[layer.name], layer.stride, layer.padding, layer.group)
        elif layer.kind == "lrn":
            h = lrn(h)
        elif layer.kind == "maxpool":
            h = tf.nn.max_pool2d(h, ksize=layer.size, strides=layer.stride, padding=layer.padding)
        elif layer.kind == "fc":
            W, b = weights[layer.name]
            h = tf.matmul(tf.reshape(h, [tf.shape(h)[0], -1]), W) + b
        elif layer.kind == "softmax":
            h = tf.nn.softmax(h)
        acts[layer.name] = h = tf.nn.relu(h) if layer.relu else h
    return acts if keep else h


def make_extractor(weights: dict, stop_at: str = "conv4"):
    """One traced graph: preprocessed batch -> activation of ``stop_at``, weights as constants."""
    tf = runs.import_tensorflow()
    consts = {name: tuple(map(tf.constant, weights[name])) for name in weighted_upto(stop_at)}

    @tf.function(input_signature=[tf.TensorSpec([None, INPUT_SIZE, INPUT_SIZE, 3], tf.float32)])
    def extract(batch):
        return forward(batch, consts, stop_at=stop_at)
    return extract


# ==== The weights: bvlc_alexnet.npy found, read safely, checked against the table =========

def find_weights(download: bool = True) -> Path:
    """bvlc_alexnet.npy on the data search path, else downloaded into data/ (when allowed)."""
    return inputs.find_input(WEIGHTS_FILE, download=download)


def load_weights(path: Path | str | None = None, stop_at: str = "prob") -> dict:
    """bvlc_alexnet.npy (``path`` None: :func:`find_weights`) as float32 ``name -> (W, b)``, read
    through the restricted unpickler and checked: layers up to ``stop_at`` there, shapes, finite."""
    path = Path(path) if path is not None else find_weights()
    weights, checked = inputs.load_npy_object(path), {}

    def refuse(problem):
        raise inputs.InputFormatError(f"{path}: {problem}. It is not the handout's {WEIGHTS_FILE}"
                                      f": get a fresh copy from {inputs.REGISTRY[WEIGHTS_FILE][0]}")
    if not isinstance(weights, dict):
        refuse(f"expected a dict 'layer name -> [weights, biases]', found {type(weights).__name__}")
    for name, expected in weight_shapes().items():
        if name not in weights:  # only the layers past stop_at may be absent
            if name in weighted_upto(stop_at):
                refuse(f"layer '{name}' is missing (found {sorted(map(str, weights))})")
            continue
        pair = weights[name]  # types only: np.asarray (or repr) of nested shared lists explodes
        if not (isinstance(pair, (list, tuple)) and len(pair) == 2
                and all(isinstance(a, np.ndarray) for a in pair)):
            found = [type(a).__name__ for a in pair[:3]] if isinstance(pair, (list, tuple)) else ""
            refuse(f"layer '{name}' should be [weights, biases] arrays, found "
                   f"{type(pair).__name__} {found}")
        W, b = pair
        if (W.shape, b.shape) != expected:
            refuse(f"layer '{name}' has weights {W.shape} and biases {b.shape}; AlexNet needs "
                   f"{expected[0]} and {expected[1]}")
        if not all(np.issubdtype(a.dtype, np.floating) and np.isfinite(a).all() for a in (W, b)):
            refuse(f"layer '{name}' ({W.dtype}/{b.dtype}) holds values that are not finite numbers")
        checked[name] = (W.astype(np.float32, copy=False), b.astype(np.float32, copy=False))
    return checked


def save_weights(path: Path | str, weights: dict) -> Path:
    """``weights`` in bvlc_alexnet.npy's format: ``np.save`` of a dict of [W, b] lists."""
    with inputs.atomic_path(path) as tmp, open(tmp, "wb") as f:
        np.save(f, {name: [np.asarray(W), np.asarray(b)] for name, (W, b) in weights.items()})
    return Path(path)


def random_weights(rng: np.random.Generator, stop_at: str = "prob", scale: float = 0.01) -> dict:
    """Small normal weights of the right shapes for every weighted layer up to ``stop_at``."""
    return {name: (scale * rng.standard_normal(w, dtype=np.float32),
                   scale * rng.standard_normal(b, dtype=np.float32))
            for name, (w, b) in weight_shapes().items() if name in weighted_upto(stop_at)}


def main(argv=None) -> None:
    p = runs.parser(__doc__, {})
    p.add_argument("images", nargs="*", type=Path, help="image files (any size; resized to 227)")
    args = p.parse_args(argv)
    run, _ = runs.start("myalexnet.py", args, {})
    if args.images:  # the ImageNet top 5, with the real weights
        from PIL import Image
        images = []
        for path in args.images:  # every image read before the 233 MB of weights
            try:
                with Image.open(path) as img:
                    images.append(img.convert("RGB").resize((INPUT_SIZE,) * 2, Image.BILINEAR))
            except OSError as err:  # missing, unreadable, or not an image PIL knows
                raise inputs.UserError(f"{path}: not a readable image ({err})") from None
        weights = load_weights()
        for path, img in zip(args.images, images):
            prob = forward(preprocess(np.asarray(img)), weights).numpy()[0]
            print(path, " ".join(f"class {k}: {prob[k]:.3f}" for k in np.argsort(prob)[::-1][:5]))
        return
    rng, weights = run.rng(), weight_shapes()  # the table beside a pass with generated weights
    x = preprocess(rng.integers(0, 256, (1, INPUT_SIZE, INPUT_SIZE, 3), dtype=np.uint8))
    acts = forward(x, random_weights(rng), keep=True)
    for name, shape in layer_shapes().items():
        print(f"{name:9s} table {str(shape):15s} built {str(tuple(acts[name].shape[1:])):15s} "
              f"weights {weights.get(name, ('-',))[0]}")


if __name__ == "__main__":
    runs.main_guard(main)
