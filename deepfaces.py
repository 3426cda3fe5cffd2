"""Parts 10-11 of CSC411 (Winter 2017) Project 2: activations of a pretrained network as face features.

What it reproduces
------------------
* Part 10 -- the faces of the six actors (227 x 227 RGB crops from get_all_imgs.py) are passed through
  a network trained on ImageNet; the activations of one of its layers are the input of the small
  fully connected tanh network of faces.py (same trainer, same train/validation/test split as Part 7,
  so the same test photos). Learning curves for training, validation and test; the test accuracy; the
  error-rate reduction against Part 7 (1 - error here / error of Part 7).
* Part 11 -- what the hidden units trained on top of those features look at: for the most useful unit
  of each actor, where on the face (which positions of the feature grid) its positive incoming weights
  sit, drawn over the actor's mean face, and the training faces that excite it most, each with its own
  map of where the unit's input came from.

Backbones (``--backbone``)
--------------------------
* ``alexnet`` -- the handout's AlexNet (myalexnet.py, weights ``bvlc_alexnet.npy``), layer conv4
  (13 x 13 x 384 = 64,896 features) by default.
* ``mobilenet`` -- Keras's ImageNet MobileNet v1 (alpha 1.0, 224 x 224 input; weights
  ``mobilenet_1_0_224_imagenet.weights.h5`` from the data search path, else Keras's own download).
  The feature layer is chosen on the validation set among :data:`MOBILENET_CANDIDATES`; the 14 x 14
  maps are average-pooled 2 x 2 to 7 x 7 (the classifier then sees 25,088 features, and the spatial
  layout that Part 11 draws is kept).
* ``auto`` (default) -- AlexNet when bvlc_alexnet.npy is found, MobileNet otherwise; it says which.

Features are extracted once per image set, backbone, layer and weights file, in batches with a
progress bar, and cached in ``data/features_<backbone>_<layer>_<key>.npz`` (float16); a second run
extracts nothing. The key hashes the pixels of the faces, the weights file and the preprocessing.

Run
---
    python deepfaces.py                        # part10 then part11; --backbone alexnet|mobilenet
    python deepfaces.py part10 --layer conv_pw_11_relu --seed 0 --quick --out DIR

Needs data/faces_227x227_rgb.npz (python get_all_imgs.py) and the split of faces.py (made here from
the 60x60 dataset exactly as faces.py makes it when data/faces_split_seed<seed>.json is missing).
Cost on a quiet 2-core CPU with MobileNet: extraction of the 1,008 faces about 20 s (once), the three
candidate classifiers about a minute; test accuracy about 0.99 (results/deepfaces_part10.json).
"""
from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import os
import time
from dataclasses import dataclass
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np

import deepnn_io
import faces
import myalexnet

SCRIPT = "deepfaces.py"
FACES_SIZE = (227, 227)
MOBILENET_FILE = "mobilenet_1_0_224_imagenet.weights.h5"
MOBILENET_SIZE = 224  # MobileNet's native input side (a multiple of 32)
CACHE_VERSION = 1     # bump when the preprocessing below changes: old caches then miss

# MobileNet layers tried as features (chosen on validation): the last 14x14 blocks keep where on the
# face things are at ~16 px resolution; conv_pw_13 is the last, most ImageNet-specific block.
MOBILENET_CANDIDATES = ("conv_pw_9_relu", "conv_pw_11_relu", "conv_pw_13_relu")
ALEXNET_CANDIDATES = ("conv4",)  # the handout's choice; --layer picks another


# ======================================================================================
# Hyper-parameters
# ======================================================================================

@dataclass(frozen=True)
class Part10Config:
    backbone: str = "auto"            # auto | alexnet | mobilenet
    layer: str | None = None          # None: the candidates above, chosen on validation
    mobilenet_weights: str = "find"   # "find" (data path, else Keras download) | "none" | a path
    mobilenet_alpha: float = 1.0      # the width of the pretrained network (tests use 0.25 untrained)
    extract_batch: int = 32           # images per forward pass: fills 2 cores, ~100 MB activations
    pool_min_side: int = 14           # maps this wide or wider are average-pooled 2x2 (14 -> 7)
    train: faces.TrainConfig = faces.TrainConfig(
        hidden_units=64,      # ImageNet features separate the actors almost linearly; 64 is plenty
        l2=1e-4,              # a little decay: 25k-65k inputs for ~740 training faces
        learning_rate=1e-4,   # Adam moves every weight by ~lr per step, so a unit's input moves by
        #                       ~lr * sum|x| ~ lr * 10^4 with 25k unit-RMS features: 1e-3 saturates
        #                       tanh at once (validation stays at chance); 1e-4 learns smoothly
        batch_size=32,        # as Part 7
        iterations=2000,      # ~45 epochs of the ~1,480 faces with mirrors; validation still creeps
        #                       up at 1,500 iterations without mirrors
        eval_every=25,        # 80 points per learning curve
        patience=30)          # 750 iterations without a better validation accuracy/cost: stop
    flip: bool = True                 # add mirrored training faces (extracted once, cached)
    quick_per_split: tuple = (8, 4, 4)  # --quick: faces per actor kept from train / val / test


@dataclass(frozen=True)
class Part11Config:
    n_top: int = 4        # top-activating training faces shown per unit
    n_top_score: int = 10  # faces over which "same actor" is measured for the metric


# ======================================================================================
# Data: the faces and faces.py's split
# ======================================================================================

def load_split_rows(face_ids: np.ndarray, seed: int, log=print,
                    quick: bool = False) -> dict[str, np.ndarray]:
    """Rows of the RGB dataset in faces.py's train / val / test split of ``seed``.

    The split is faces.py's saved data/faces_split_seed<seed>.json. When it is missing it is made
    exactly as ``python faces.py part7 --seed <seed>`` makes it (on the 60x60 grayscale faces, whose
    near-duplicate groups define it) and saved; the face ids then select the same photos here.
    A --quick run on get_all_imgs.py --quick's tiny datasets finds it in data/quick/ instead
    (faces.split_dir_of).
    """
    ctx = faces.RunContext(seed=seed, log=log, quick=quick)
    split_dir = faces.split_dir_of(ctx)
    try:
        saved = faces.load_split(seed, split_dir)
    except deepnn_io.MissingInputError:
        log(f"split of seed {seed} not found: making it as faces.py does (60x60 grayscale faces)")
        faces.load_data_and_split(ctx)
        saved = faces.load_split(seed, split_dir)
    return faces.split_indices_for(face_ids, saved)


def quick_subset(labels: np.ndarray, split: dict, per_split: tuple, rng) -> dict[str, np.ndarray]:
    """A few rows per actor and split (for --quick); the test rows stay test rows."""
    out = {}
    for name, n in zip(("train", "val", "test"), per_split):
        rows = split[name]
        out[name] = np.sort(np.concatenate([
            rng.permutation(rows[labels[rows] == a])[:n] for a in np.unique(labels[rows])]))
    return out


def pixels_key(images: np.ndarray, face_ids: np.ndarray) -> str:
    """sha256 of the face pixels and ids: the cache follows the images, not the file name."""
    digest = hashlib.sha256()
    digest.update(np.ascontiguousarray(face_ids, dtype=np.int64).tobytes())
    digest.update(str(images.shape).encode())
    digest.update(np.ascontiguousarray(images).tobytes())
    return digest.hexdigest()


# ======================================================================================
# Backbones: one extractor per backbone, returning every requested layer in one pass
# ======================================================================================

def resolve_backbone(name: str, log=print) -> str:
    """auto -> alexnet when bvlc_alexnet.npy is on the data path, else mobilenet (and say so)."""
    if name != "auto":
        return name
    found = deepnn_io.locate(myalexnet.WEIGHTS_FILE)
    if found is not None:
        log(f"backbone auto: found {found}, using AlexNet")
        return "alexnet"
    log(f"backbone auto: {myalexnet.WEIGHTS_FILE} not found in "
        f"{', '.join(map(str, deepnn_io.search_dirs()))}; using MobileNet")
    return "mobilenet"


def pool_factor(side: int, min_side: int) -> int:
    """2 for maps at least ``min_side`` wide with an even side, else 1 (no pooling)."""
    return 2 if side >= min_side and side % 2 == 0 else 1


def mobilenet_weights_id(setting: str, alpha: float, seed: int) -> tuple[object, str]:
    """(what keras.applications.MobileNet gets as ``weights``, an id of those weights for the key)."""
    if setting == "none":
        return None, f"untrained-alpha{alpha}-seed{seed}"
    path = deepnn_io.locate(MOBILENET_FILE) if setting == "find" else Path(setting)
    if path is None:
        return "imagenet", f"keras-imagenet-alpha{alpha}"
    if not Path(path).exists():
        raise deepnn_io.MissingInputError(deepnn_io.missing_message(Path(path).name))
    return str(path), f"{Path(path).name}:{deepnn_io.sha256_file(path)}"


def build_mobilenet(layers, weights, alpha: float, min_side: int):
    """A function uint8 batch (N, 227, 227, 3) RGB -> {layer: float32 activations}, one pass.

    Input as the weights expect: antialiased resize to 224 x 224, then
    keras.applications.mobilenet.preprocess_input (x / 127.5 - 1). Maps ``min_side`` or wider are
    average-pooled 2 x 2. Returns (function, {layer: output shape}).
    """
    import keras
    import tensorflow as tf
    base = keras.applications.MobileNet(alpha=alpha, include_top=False, weights=weights,
                                        input_shape=(MOBILENET_SIZE, MOBILENET_SIZE, 3))
    try:
        outputs = [base.get_layer(name).output for name in layers]
    except ValueError as err:
        names = [l.name for l in base.layers if l.name.endswith("relu")]
        raise ValueError(f"MobileNet has no layer {err}; feature layers: {', '.join(names)}") from err
    model = keras.Model(base.input, outputs)
    pools = {name: pool_factor(int(out.shape[1]), min_side) for name, out in zip(layers, outputs)}

    @tf.function(input_signature=[tf.TensorSpec([None, *FACES_SIZE, 3], tf.uint8)])
    def extract(batch):
        x = tf.image.resize(tf.cast(batch, tf.float32), (MOBILENET_SIZE, MOBILENET_SIZE),
                            antialias=True)
        acts = model(keras.applications.mobilenet.preprocess_input(x), training=False)
        acts = acts if isinstance(acts, (list, tuple)) else [acts]
        return {name: (tf.nn.avg_pool2d(a, pools[name], pools[name], "VALID")
                       if pools[name] > 1 else a) for name, a in zip(layers, acts)}

    shapes = {name: tuple(int(d) // (pools[name] if i < 2 else 1)
                          for i, d in enumerate(out.shape[1:])) for name, out in zip(layers, outputs)}
    return extract, pools, shapes


def build_alexnet(layers, weights: dict, min_side: int):
    """As :func:`build_mobilenet`, for myalexnet's AlexNet (BGR, ImageNet mean removed)."""
    import tensorflow as tf
    deepest = max(layers, key=myalexnet.LAYER_NAMES.index)
    consts = {n: (tf.constant(W), tf.constant(b)) for n, (W, b) in weights.items()}
    shapes = myalexnet.layer_shapes(stop_at=deepest)
    pools = {n: pool_factor(shapes[n][0], min_side) if len(shapes[n]) == 3 else 1 for n in layers}
    mean = tf.constant(myalexnet.IMAGENET_MEAN_BGR)

    @tf.function(input_signature=[tf.TensorSpec([None, *FACES_SIZE, 3], tf.uint8)])
    def extract(batch):
        # the same arithmetic as myalexnet.preprocess, in the graph: RGB -> BGR (a gather, a copy)
        x = tf.gather(tf.cast(batch, tf.float32), [2, 1, 0], axis=3) - mean
        acts = myalexnet.forward(x, consts, stop_at=deepest, keep=True)
        return {n: (tf.nn.avg_pool2d(acts[n], pools[n], pools[n], "VALID") if pools[n] > 1
                    else acts[n]) for n in layers}

    out_shapes = {n: tuple(d // pools[n] if i < 2 else d for i, d in enumerate(shapes[n]))
                  for n in layers}
    return extract, pools, out_shapes


# ======================================================================================
# Feature extraction with a cache
# ======================================================================================

def cache_path(backbone: str, layer: str, pool: int, key: str) -> Path:
    return deepnn_io.DATA_DIR / f"features_{backbone}_{layer}-pool{pool}_{key[:16]}.npz"


def cache_key(images_key: str, weights_id: str, layer: str, pool: int) -> str:
    text = json.dumps({"images": images_key, "weights": weights_id, "layer": layer, "pool": pool,
                       "version": CACHE_VERSION}, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()


def run_extractor(extract, images: np.ndarray, layers, batch: int, desc: str):
    """Every batch through ``extract``; {layer: float16 (N, ...)} and images per second."""
    from tqdm import tqdm
    feats = {name: [] for name in layers}
    # trace the graph and warm up outside the timing (one batch when there are many)
    extract(images[:batch] if len(images) > 4 * batch else images[:1])
    start = time.perf_counter()
    for i in tqdm(range(0, len(images), batch), desc=desc, unit="batch", leave=False):
        out = extract(images[i:i + batch])
        for name in layers:
            feats[name].append(out[name].numpy().astype(np.float16))
    seconds = time.perf_counter() - start
    return {n: np.concatenate(v) for n, v in feats.items()}, len(images) / max(seconds, 1e-9)


def extract_features(backbone: str, layers, images: np.ndarray, face_ids: np.ndarray,
                     config: Part10Config, seed: int, log=print) -> dict:
    """Features of every image for each layer, from the cache or by one pass of the backbone.

    Returns {"features": {layer: float16 array}, "pools": {layer: int}, "images_per_second": float,
    "extracted": number of images passed through the network now (0 when all came from the cache),
    "weights": what was loaded, "cache": {layer: path}}.
    """
    images_key = pixels_key(images, face_ids)
    if backbone == "alexnet":
        weights_path = myalexnet.find_weights()
        weights_id = f"{weights_path.name}:{deepnn_io.sha256_file(weights_path)}"
        weights_desc = str(weights_path)
        shapes = myalexnet.layer_shapes(stop_at=max(layers, key=myalexnet.LAYER_NAMES.index))
        pools = {n: pool_factor(shapes[n][0], config.pool_min_side) if len(shapes[n]) == 3 else 1
                 for n in layers}
    elif backbone == "mobilenet":
        weights_arg, weights_id = mobilenet_weights_id(config.mobilenet_weights,
                                                       config.mobilenet_alpha, seed)
        weights_desc = weights_arg if weights_arg is not None else "untrained (random init)"
        pools = None  # known after building the model, unless every layer is cached
    else:
        raise ValueError(f"unknown backbone {backbone!r}; use auto, alexnet or mobilenet")

    def path_for(name, pool):
        return cache_path(backbone, name, pool, cache_key(images_key, weights_id, name, pool))

    # MobileNet layers' pools need the model; try both pool factors in the cache first
    cached, ips = {}, []
    for name in layers:
        for pool in ([pools[name]] if pools else [2, 1]):
            path = path_for(name, pool)
            if path.exists():
                z = deepnn_io.load_npz(path)
                if np.array_equal(z["face_ids"], face_ids):
                    cached[name] = (z["features"], pool, path)
                    ips.append(float(z["images_per_second"]))
                    break
    if len(cached) == len(layers):
        log(f"features of {len(images)} faces from the cache: "
            + ", ".join(str(p[2].name) for p in cached.values()))
        return {"features": {n: c[0] for n, c in cached.items()},
                "pools": {n: c[1] for n, c in cached.items()}, "images_per_second": min(ips),
                "extracted": 0, "weights": weights_desc,
                "cache": {n: str(c[2]) for n, c in cached.items()}}

    deepnn_io.seed_tensorflow(seed)  # an untrained MobileNet's init is then the same every run
    with deepnn_io.Stopwatch() as build_time:
        if backbone == "alexnet":
            weights = myalexnet.load_weights(weights_path,
                                             stop_at=max(layers, key=myalexnet.LAYER_NAMES.index))
            extract, pools, shapes = build_alexnet(layers, weights, config.pool_min_side)
        else:
            extract, pools, shapes = build_mobilenet(layers, weights_arg, config.mobilenet_alpha,
                                                     config.pool_min_side)
    log(f"{backbone} built in {build_time.seconds:.1f} s (weights: {weights_desc}); extracting "
        + ", ".join(f"{n} {shapes[n]}" for n in layers) + f" for {len(images)} faces in batches "
        f"of {config.extract_batch}")
    feats, ips = run_extractor(extract, images, layers, config.extract_batch,
                               f"{backbone} features")
    log(f"extracted at {ips:.1f} images/s")
    paths = {}
    for name in layers:
        path = path_for(name, pools[name])
        deepnn_io.save_npz_atomic(path, features=feats[name], face_ids=np.asarray(face_ids),
                                  images_per_second=np.float64(ips),
                                  info=np.array(json.dumps({"backbone": backbone, "layer": name,
                                                            "pool": pools[name],
                                                            "weights": weights_id})))
        paths[name] = str(path)
    return {"features": feats, "pools": pools, "images_per_second": ips,
            "extracted": len(images), "weights": weights_desc, "cache": paths}


# ======================================================================================
# The classifier on top
# ======================================================================================

def features_X(features: np.ndarray, train_rows: np.ndarray) -> tuple[np.ndarray, float]:
    """(N, ...) activations -> X (N, D) float32 divided by the RMS of the training rows.

    One scalar for all features: ReLU maps are sparse and a per-feature standardisation would blow
    up rarely active features; unit RMS suits Glorot initialisation and Adam's step.
    """
    X = features.reshape(len(features), -1).astype(np.float32)
    rms = float(np.sqrt(np.mean(X[train_rows] ** 2))) or 1.0
    return X / rms, rms


def train_on_layer(features, labels, split, config: faces.TrainConfig, seed: int) -> dict:
    """faces.py's trainer on one layer's features; split may add rows to "train" ("train_eval"
    then names the real training faces on which training accuracy is measured)."""
    X, rms = features_X(features, split["train"])
    with deepnn_io.Stopwatch() as t:
        model, history = faces.train_classifier(X, labels, split, config, seed)
    rows = {"train": split.get("train_eval", split["train"]), "val": split["val"],
            "test": split["test"]}
    acc = {name: faces.accuracy(model, X[r], labels[r]) for name, r in rows.items()}
    best = history["iteration"].index(model.best_iteration)
    return {"model": model, "history": history, "X": X, "rms": rms, "accuracy": acc,
            "val_cost": history["val_cost"][best], "seconds": t.seconds}


def part7_test_accuracy(out: Path, n_test: int) -> float | None:
    """metrics.test_accuracy of <out>/results/faces_part7.json, or None when it is missing, a
    --quick run, or was measured on another number of test faces (then not the same test set)."""
    record = deepnn_io.read_results(out, "faces.py", "part7")
    if not record or record.get("quick") or record.get("metrics", {}).get("test_accuracy") is None:
        return None
    if record.get("settings", {}).get("split", {}).get("n_test", n_test) != n_test:
        return None
    return float(record["metrics"]["test_accuracy"])


def error_rate_reduction(acc_here: float, acc_before: float | None) -> float | None:
    """1 - (1 - acc_here) / (1 - acc_before); None without a Part 7 number."""
    if acc_before is None:
        return None
    if acc_before >= 1.0:
        return 0.0 if acc_here >= 1.0 else float("-inf")
    return 1.0 - (1.0 - acc_here) / (1.0 - acc_before)


# ======================================================================================
# Parts
# ======================================================================================

RunContext = faces.RunContext  # seed, quick, out, log (and faces.py's data options, unused here)


def prepare(config: Part10Config, ctx: RunContext, layers=None) -> dict:
    """Faces, faces.py's split, the backbone and the features of each candidate layer."""
    log = ctx.log
    data = faces.load_faces(FACES_SIZE, "rgb", quick=ctx.quick)
    labels = data["labels"].astype(np.int64)
    split = load_split_rows(data["face_ids"], ctx.seed, log, quick=ctx.quick)
    if ctx.quick:
        split = quick_subset(labels, split, config.quick_per_split, deepnn_io.make_rng(ctx.seed))
    used = np.sort(np.concatenate([split[k] for k in ("train", "val", "test")]))
    remap = np.full(len(labels), -1)
    remap[used] = np.arange(len(used))
    split = {k: remap[v] for k, v in split.items()}
    images, labels, face_ids = data["images"][used], labels[used], data["face_ids"][used]
    backbone = resolve_backbone(config.backbone, log)
    if layers is None:
        layers = ([config.layer] if config.layer else
                  list(ALEXNET_CANDIDATES if backbone == "alexnet" else MOBILENET_CANDIDATES))
    log(f"{len(images)} faces of {len(data['actors'])} actors; split train {len(split['train'])} / "
        f"val {len(split['val'])} / test {len(split['test'])} (faces.py's, seed {ctx.seed})")
    # mirrored training faces (a mirrored face is the same person) are extracted with the rest;
    # their rows follow the N faces and join only the training rows (as faces.py's Part 7 does)
    train, n = split["train"], len(images)
    mirrored = images[train][:, :, ::-1] if config.flip else images[:0]
    feats = extract_features(backbone, layers, np.concatenate([images, mirrored]),
                             np.concatenate([face_ids, face_ids[train][:len(mirrored)]]),
                             config, ctx.seed, log)
    split_aug = dict(split, train=np.concatenate([train, n + np.arange(len(mirrored))]),
                     train_eval=train)
    return {"images": images, "labels": labels, "face_ids": face_ids,
            "labels_aug": np.concatenate([labels, labels[train][:len(mirrored)]]),
            "split_aug": split_aug, "actors": [str(a) for a in data["actors"]], "split": split,
            "backbone": backbone, "layers": layers, **feats}


def train_config(config: Part10Config, quick: bool) -> faces.TrainConfig:
    if not quick:
        return config.train
    return dataclasses.replace(config.train, hidden_units=16, iterations=40, eval_every=10,
                               patience=None)


def part10(config: Part10Config, ctx: RunContext) -> dict:
    """Features of a pretrained network -> faces.py's tanh classifier; layer chosen on validation."""
    clock = time.perf_counter()
    log = ctx.log
    prep = prepare(config, ctx)
    labels, split = prep["labels_aug"], prep["split_aug"]
    cfg = train_config(config, ctx.quick)
    runs = {}
    for layer in prep["layers"]:
        runs[layer] = train_on_layer(prep["features"][layer], labels, split, cfg, ctx.seed)
        r = runs[layer]
        log(f"  {layer:18s} {str(prep['features'][layer].shape[1:]):16s} validation "
            f"{r['accuracy']['val']:.4f} (cost {r['val_cost']:.4f})  training "
            f"{r['accuracy']['train']:.4f}  ({r['seconds']:.1f} s)")
    # best validation accuracy; ties: lower validation cost
    layer = max(runs, key=lambda n: (runs[n]["accuracy"]["val"], -runs[n]["val_cost"]))
    best = runs[layer]
    acc = best["accuracy"]
    before = part7_test_accuracy(ctx.out, len(split["test"]))
    reduction = error_rate_reduction(acc["test"], before)
    log(f"chosen on validation: {prep['backbone']} {layer}; test accuracy {acc['test']:.4f}; "
        + (f"Part 7 {before:.4f} -> error-rate reduction {reduction:.1%}" if before is not None
           else f"no full Part 7 result on these {len(split['test'])} test faces in "
                f"{ctx.out}/results/faces_part7.json (run python faces.py part7): no reduction"))

    shape = prep["features"][layer].shape[1:]
    fig = faces.plot_learning_curves(
        best["history"], f"Part 10: {prep['backbone']} {layer} {shape} -> {cfg.hidden_units} tanh "
        f"-> {len(prep['actors'])} (test accuracy {acc['test']:.3f})", best["model"].best_iteration)
    figures = [deepnn_io.save_figure(fig, ctx.out, "deepfaces_part10_curves")]

    preprocessing = (
        f"{prep['backbone']} activations of layer {layer}"
        + (f", average-pooled {prep['pools'][layer]}x{prep['pools'][layer]}"
           if prep["pools"][layer] > 1 else "")
        + f" ({'x'.join(map(str, shape))} = {int(np.prod(shape))} values), flattened, divided by "
        "their RMS over the training faces; input "
        + ("RGB -> BGR, ImageNet mean per channel removed, 227x227" if prep["backbone"] == "alexnet"
           else "227x227 RGB resized (antialiased) to 224x224, scaled to [-1, 1]")
        + ("; training set enlarged with the mirrored training faces" if config.flip else ""))
    system = faces.describe_system(cfg, best["X"].shape[1], len(prep["actors"]), preprocessing)
    log(system)
    seconds = time.perf_counter() - clock
    metrics = {"test_accuracy": acc["test"], "validation_accuracy": acc["val"],
               "train_accuracy": acc["train"], "part7_test_accuracy": before,
               "error_rate_reduction": reduction,
               "extract_images_per_second": prep["images_per_second"],
               "images_extracted_now": prep["extracted"], "feature_dimension": best["X"].shape[1],
               "best_iteration": best["model"].best_iteration,
               "n_test": len(split["test"]),
               **{f"validation_accuracy_{n}": r["accuracy"]["val"] for n, r in runs.items()},
               **{f"test_accuracy_{n}": r["accuracy"]["test"] for n, r in runs.items()}}
    settings = {"backbone": prep["backbone"], "layer": layer, "candidates": prep["layers"],
                "pool": prep["pools"][layer], "feature_shape": list(shape),
                "weights": prep["weights"], "train": dataclasses.asdict(cfg),
                "extract_batch": config.extract_batch, "system": system,
                "cache": prep["cache"], "feature_rms": best["rms"],
                "selection": "the candidate layer with the best validation accuracy (ties: lower "
                             "validation cost); the test set is not looked at",
                "flip": config.flip,
                "split": {"n_train": len(split["train_eval"]), "n_val": len(split["val"]),
                          "n_train_with_mirrored": len(split["train"]),
                          "n_test": len(split["test"]),
                          "file": faces.split_path(ctx.seed).name}}
    timings = {"extract_seconds": (prep["extracted"] / prep["images_per_second"]
                                   if prep["extracted"] else 0.0),
               **{f"train_{n}_seconds": round(r["seconds"], 2) for n, r in runs.items()}}
    deepnn_io.write_results(ctx.out, SCRIPT, "part10", seed=ctx.seed, quick=ctx.quick,
                            settings=settings, metrics=metrics, figures=figures, seconds=seconds,
                            timings=timings)
    log(f"part10 done in {seconds:.1f} s")
    return metrics


def contribution_map(x: np.ndarray, w: np.ndarray, grid_shape: tuple) -> np.ndarray:
    """Where a unit's input comes from: (D,) features x and (D,) incoming weights w -> (G, G).

    Entry (i, j) = sum over channels c of x[i, j, c] * w[i, j, c]; the entries add up to the unit's
    pre-activation minus its bias (x @ w), so the map splits that input exactly over the grid.
    """
    return (x * w).reshape(grid_shape).sum(axis=-1)


def overlay(ax, image, heat, title):
    """An RGB face with a signed G x G map stretched over it (bilinear): red raises the unit's
    input, blue lowers it; colour limits symmetric, +-max|map| per panel."""
    lim = max(float(np.abs(heat).max()), 1e-12)
    ax.imshow(image)
    ax.imshow(heat, cmap="RdBu_r", alpha=0.6, extent=(0, image.shape[1], image.shape[0], 0),
              interpolation="bilinear", vmin=-lim, vmax=lim)
    ax.set_title(title, fontsize=7)
    ax.set_xticks([])
    ax.set_yticks([])


def part11(config: Part11Config, p10: Part10Config, ctx: RunContext) -> dict:
    """Where the most useful hidden unit of each actor looks, and the faces that excite it most."""
    clock = time.perf_counter()
    log = ctx.log
    record = deepnn_io.read_results(ctx.out, SCRIPT, "part10")
    layer = p10.layer
    if layer is None and record and record.get("seed") == ctx.seed \
            and record.get("quick") == ctx.quick:
        backbone = resolve_backbone(p10.backbone, lambda *_: None)
        if record["settings"].get("backbone") == backbone:
            layer = record["settings"]["layer"]
    if layer is None:
        backbone = resolve_backbone(p10.backbone, lambda *_: None)
        layer = "conv4" if backbone == "alexnet" else "conv_pw_11_relu"
        log(f"part11: no part10 result for this backbone and seed; using {layer}")
    prep = prepare(dataclasses.replace(p10, layer=layer), ctx, layers=[layer])
    labels, split, actors = prep["labels"], prep["split"], prep["actors"]
    run = train_on_layer(prep["features"][layer], prep["labels_aug"], prep["split_aug"],
                         train_config(p10, ctx.quick), ctx.seed)
    model, X = run["model"], run["X"]
    W0, b0, W1, _ = faces.hidden_weights(model)
    grid = prep["features"][layer].shape[1:]
    train = split["train"]
    H_act = model.hidden(X[train]).numpy()
    pre = X[train] @ W0 + b0  # pre-activations: unlike tanh they do not saturate, so they rank

    import matplotlib.pyplot as plt
    n_cols = 1 + config.n_top
    fig, axes = plt.subplots(len(actors), n_cols, figsize=(1.9 * n_cols, 2.15 * len(actors)))
    axes = np.atleast_2d(axes)
    # FaceScrub holds some photos twice (faces.py's near-duplicate groups): show a photo once
    groups = faces.load_split(ctx.seed, faces.split_dir_of(ctx)).get("groups", [])
    group_of = {fid: g for g, members in enumerate(groups) for fid in members}
    units, same_actor, centre_share = {}, [], []
    centre = np.zeros(grid[:2], bool)
    g0, g1 = grid[0] // 4, grid[1] // 4
    centre[g0:grid[0] - g0, g1:grid[1] - g1] = True
    for row, actor in enumerate(actors):
        a = actors.index(actor)
        scores = faces.unit_usefulness(H_act, labels[train], W1, a)
        u = int(next(j for j in np.argsort(scores)[::-1] if int(j) not in units.values()))
        units[actor] = u
        sign = np.sign(W1[u, a]) or 1.0
        w = W0[:, u] * sign  # signed so that a larger input means more evidence for the actor
        own = train[labels[train] == a]
        mean_map = contribution_map(X[own].mean(axis=0), w, grid)
        centre_share.append(float(np.abs(mean_map)[centre].sum() / np.abs(mean_map).sum()))
        mean_face = prep["images"][own].mean(axis=0) / 255.0
        overlay(axes[row, 0], mean_face, mean_map,
                f"{actor}: unit {u}\nmean input map, own faces")
        drive = pre[:, u] * sign
        top = np.argsort(drive)[::-1]
        same_actor.append(float(np.mean(labels[train][top[:config.n_top_score]] == a)))
        shown, seen = [], set()
        for t in top:
            key = group_of.get(int(prep["face_ids"][train[t]]), ("alone", int(t)))
            if key not in seen:
                seen.add(key)
                shown.append(t)
            if len(shown) == config.n_top:
                break
        for col, t in enumerate(shown, start=1):
            r = train[t]
            overlay(axes[row, col], prep["images"][r], contribution_map(X[r], w, grid),
                    f"#{col}: {actors[labels[r]].split()[-1]}\ninput {drive[t]:+.1f}")
    fig.suptitle(f"Part 11: hidden units on {prep['backbone']} {layer} {grid}. Per actor the unit "
                 "that most raises their output; colour = where on the face the unit's input comes "
                 "from (sum over channels of feature x weight, red raises it). Column 1: averaged "
                 "over the actor's training faces; then the 4 training photos that drive it most",
                 fontsize=8, wrap=True)
    fig.tight_layout(rect=(0, 0, 1, 0.96))
    figures = [deepnn_io.save_figure(fig, ctx.out, "deepfaces_part11_units")]

    # every unit at once: its mean input map over all training faces, signed towards the actor
    # whose output it raises most
    n = W0.shape[1]
    cols = min(8, n)
    rows = -(-n // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(1.4 * cols, 1.5 * rows))
    axes = np.atleast_1d(axes).ravel()
    overall = prep["images"][train].mean(axis=0) / 255.0
    mean_x = X[train].mean(axis=0)
    favourite = W1.argmax(axis=1)
    for j, ax in enumerate(axes):
        if j < n:
            overlay(ax, overall, contribution_map(mean_x, W0[:, j] * np.sign(W1[j, favourite[j]]),
                                                  grid), f"{j}: +{actors[favourite[j]].split()[-1]}")
        else:
            ax.axis("off")
    fig.suptitle(f"Part 11: every hidden unit's mean input map on the {grid[0]}x{grid[1]} grid "
                 "(training faces; red raises the output of the actor named), over the mean face",
                 fontsize=8, wrap=True)
    fig.tight_layout(rect=(0, 0, 1, 1 - 0.5 / fig.get_figheight()))
    figures.append(deepnn_io.save_figure(fig, ctx.out, "deepfaces_part11_all_units"))

    seconds = time.perf_counter() - clock
    metrics = {"test_accuracy": run["accuracy"]["test"],
               "top_faces_same_actor_fraction": float(np.mean(same_actor)),
               "input_share_central_region": float(np.mean(centre_share)),
               "central_region_area_share": float(centre.mean()),
               **{f"unit_{a.split()[-1].lower()}": u for a, u in units.items()}}
    settings = {"backbone": prep["backbone"], "layer": layer, "feature_shape": list(grid),
                "train": dataclasses.asdict(train_config(p10, ctx.quick)),
                "unit_selection": "per actor the unit with the largest faces.unit_usefulness "
                                  "score (W1[j, actor] x how much more the unit fires on the "
                                  "actor's training faces than on all), distinct units",
                "maps": "per grid position, sum over channels of x * W0[:, j] * sign(W1[j, actor]) "
                        "(x: a face's features, or their mean over the actor's training faces in "
                        "column 1): an exact split of the unit's input over the grid; stretched "
                        "bilinearly over the 227x227 face (a grid cell's receptive field is larger "
                        "than its square); faces ranked by pre-activation",
                "input_share_central_region": "share of sum |mean map| in the central half "
                                              "(by area) of the grid, averaged over the units",
                "top_faces_same_actor_fraction": f"share of each unit's {config.n_top_score} most "
                                                 "driving training faces that show its actor"}
    deepnn_io.write_results(ctx.out, SCRIPT, "part11", seed=ctx.seed, quick=ctx.quick,
                            settings=settings, metrics=metrics, figures=figures, seconds=seconds)
    log(f"part11: units {units}; top faces of the same actor {np.mean(same_actor):.2f}; input "
        f"from the central {centre.mean():.0%} of the grid: {np.mean(centre_share):.0%}; "
        f"done in {seconds:.1f} s")
    return metrics


# ======================================================================================
# Command line
# ======================================================================================

def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("part", choices=["part10", "part11", "all"], nargs="?", default="all",
                        help="which part to run (default: all)")
    deepnn_io.add_common_args(parser)
    parser.add_argument("--backbone", choices=["auto", "alexnet", "mobilenet"], default="auto",
                        help="pretrained network (auto: AlexNet when bvlc_alexnet.npy is found)")
    parser.add_argument("--layer", default=None,
                        help="feature layer (default: conv4 for AlexNet; for MobileNet chosen on "
                             f"validation among {', '.join(MOBILENET_CANDIDATES)})")
    parser.add_argument("--mobilenet-weights", default="find",
                        help="'find' (data path, else Keras download), 'none' (untrained), or a path")
    args = parser.parse_args(argv)
    config = Part10Config(backbone=args.backbone, layer=args.layer,
                          mobilenet_weights=args.mobilenet_weights)
    ctx = RunContext(seed=args.seed, quick=args.quick, out=args.out)
    results = {}
    if args.part in ("part10", "all"):
        results["part10"] = part10(config, ctx)
    if args.part in ("part11", "all"):
        results["part11"] = part11(Part11Config(), config, ctx)
    return results


if __name__ == "__main__":
    deepnn_io.run_cli(main)
