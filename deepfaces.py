"""Parts 10-11 of CSC411 (Winter 2017) Project 2: activations of a pretrained network as features.

* Part 10 -- the actors' faces (227x227 RGB crops) go through a network trained on ImageNet; the
  activations of one of its layers, chosen on validation, are the input of faces.py's tanh
  network (the same trainer and split as Part 7, so the same test faces). Learning curves, the
  test accuracy, and the error-rate reduction against Part 7 (1 - error here / there). The chosen
  layer and its network go to ``results/deepfaces_part10_head.npz``.
* Part 11 -- for the most useful hidden unit of each actor in that network, where on the face
  (which cells of the feature grid) its input comes from, over the actor's mean face and over
  the training faces that drive it most.

Backbones: Keras's ImageNet MobileNet v1 (default), or with ``--backbone alexnet`` the handout's
AlexNet (myalexnet.py) at conv4. Features are cached in data/. After ``python get_all_imgs.py``:
    python deepfaces.py                         # part10 then part11; part10 | part11 | all
    python deepfaces.py part10 --set layer_sweep=conv_pw_13_relu --set hidden_units=32
"""
import hashlib
import json
import time
from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from apparatus import facedata, inputs, runs
from apparatus.inputs import UserError
from apparatus.runs import setting

tf = runs.import_tensorflow()  # quiet: its C++ libraries' loading notices

import myalexnet  # noqa: E402
from faces import (TrainSettings, accuracy, hidden, plot_learning_curves,  # noqa: E402
                   train_net, train_settings, unit_usefulness)

SIZE = (227, 227)      # the RGB crops of get_all_imgs.py (AlexNet's input side)
MOBILENET_FILE = "mobilenet_1_0_224_imagenet.weights.h5"
MOBILENET_SIDE = 224   # MobileNet's native input side (a multiple of 32)
# Layers tried as features: MobileNet's last 14x14 blocks keep where on the face things are at
# about 16 px; conv_pw_13 is the last, most ImageNet-specific block. AlexNet: the handout's conv4.
CANDIDATES = {"mobilenet": ("conv_pw_9_relu", "conv_pw_11_relu", "conv_pw_13_relu"),
              "alexnet": ("conv4",)}
HEAD_FILE = "deepfaces_part10_head.npz"  # in results/: Part 10's chosen layer and network


# ==== Settings ============================================================================

@dataclass(frozen=True)
class Part10(TrainSettings):
    layer_sweep: tuple = ()  # feature layers, chosen on validation; (): CANDIDATES
    extract_batch: int = setting(32, ge=1)  # images per forward pass: ~100 MB activations
    flip: bool = True  # add mirrored training faces (extracted once, cached)
    subset: tuple = ()  # training, validation faces per actor (): all; test: all
    hidden_units: int = 64  # ImageNet features separate the actors almost linearly
    l2: float = 1e-4  # a little decay: tens of thousands of inputs, ~740 faces
    learning_rate: float = 1e-4  # ~lr * sum|x| per step on a unit: 1e-3 saturates tanh
    batch_size: int = 32
    iterations: int = 2000  # validation still creeps up after 1500
    eval_every: int = 25
    patience: int | None = 30  # 750 iterations without a better validation: stop
    QUICK: ClassVar[dict] = dict(subset=(8, 4), hidden_units=16, iterations=40, eval_every=10,
                                 train_eval_every=10, patience=None)

    def __post_init__(self):
        if self.subset and not (len(self.subset) == 2 and all(
                isinstance(n, int) and not isinstance(n, bool) and n >= 1 for n in self.subset)):
            raise UserError(f"--set subset={self.subset!r}: give (training, validation) faces "
                            "per actor, each >= 1, e.g. \"subset=(8, 4)\", or () for all")


@dataclass(frozen=True)
class Part11:  # what it draws; the network and its training settings: Part 10's HEAD_FILE
    n_top: int = setting(4, ge=1)  # training faces shown per unit
    n_top_score: int = setting(10, ge=1)  # faces over which "same actor" is measured for the metric


# ==== The backbones (uint8 RGB faces -> activations of some layers), the feature cache ====

def pool_factor(shape: tuple) -> int:  # 2x2 cells averaged on maps >= 14 wide: fewer inputs
    return 2 if len(shape) == 3 and shape[0] >= 14 and shape[0] % 2 == 0 else 1


def avg_pool(a, shape: tuple):
    p = pool_factor(shape)
    return tf.nn.avg_pool2d(a, p, p, "VALID") if p > 1 else a  # p x p cells -> their mean


def mobilenet(layers):
    """Keras's MobileNet cut at ``layers``: (extract, {layer: map shape}, weights id)."""
    import keras
    try:  # the sha256-checked file; Keras's own download is never tried
        weights = inputs.find_input(MOBILENET_FILE)
    except inputs.MissingInputError as err:  # a copy with another sha256 is a damaged file
        kind = inputs.InputFormatError if inputs.locate(MOBILENET_FILE) else type(err)
        raise kind(f"{err}\nIts sha256: {inputs.REGISTRY[MOBILENET_FILE][1][0]}. Or use "
                   "--backbone alexnet.") from None
    base = keras.applications.MobileNet(alpha=1.0, include_top=False, weights=weights,
                                        input_shape=(MOBILENET_SIDE, MOBILENET_SIDE, 3))
    try:
        outputs = [base.get_layer(name).output for name in layers]
    except ValueError as err:  # Keras's message lists the layers
        raise UserError(f"--set layer_sweep: {err}") from None
    model = keras.Model(base.input, outputs)
    shapes = {n: tuple(int(d) for d in out.shape[1:]) for n, out in zip(layers, outputs)}

    @tf.function(input_signature=[tf.TensorSpec([None, *SIZE, 3], tf.uint8)])
    def extract(batch):  # as the weights expect: antialiased resize to 224, then x / 127.5 - 1
        x = tf.image.resize(tf.cast(batch, tf.float32), (MOBILENET_SIDE, MOBILENET_SIDE),
                            antialias=True)
        acts = model(keras.applications.mobilenet.preprocess_input(x), training=False)
        acts = acts if isinstance(acts, (list, tuple)) else [acts]
        return [avg_pool(a, shapes[n]) for a, n in zip(acts, layers)]

    return extract, shapes, f"{weights.name}:{inputs.sha256_file(weights)}"


def alexnet(layers):  # myalexnet's AlexNet cut at ``layers``: as mobilenet()
    path = myalexnet.find_weights()
    shapes = {n: myalexnet.layer_shapes(stop_at=n)[n] for n in layers}
    nets = []

    def extract(batch):  # RGB -> BGR, ImageNet mean removed (myalexnet.preprocess), then the net
        if not nets:  # the weights are read at the first batch: a cached run never needs them
            weights = myalexnet.load_weights(path, max(layers, key=myalexnet.LAYER_NAMES.index))
            nets.extend(myalexnet.make_extractor(weights, stop_at=n) for n in layers)
        x = tf.constant(myalexnet.preprocess(batch))
        return [avg_pool(net(x), shapes[n]) for net, n in zip(nets, layers)]

    return extract, shapes, f"{path.name}:{inputs.sha256_file(path)}"


def features_of(backbone: str, layers, images, run: runs.Run, settings: Part10, actors) -> dict:
    """{layer: float16 (N, h, w, c)} of every image: a layer's cache in data/ when its key (sha256
    of the pixels, weights, layer and pool), shape and values are right, else one backbone pass."""
    runs.seed_tensorflow(run.seed)  # deterministic ops
    extract, shapes, weights_id = (alexnet if backbone == "alexnet" else mobilenet)(layers)
    pixels = hashlib.sha256(np.ascontiguousarray(images)).hexdigest()  # the bytes, uncopied
    folder = facedata.QUICK_DIR if run.quick else inputs.DATA_DIR
    caches, found, speeds, extracted = {}, {}, [], 0
    for n in layers:
        pool = pool_factor(shapes[n])
        path = folder / f"features_{backbone}_{n}_pool{pool}_{facedata.actors_tag(actors)}.npz"
        key = hashlib.sha256(f"{pixels} {weights_id} {n} {pool}".encode()).hexdigest()[:16]
        caches[n] = path, key
        try:
            z = inputs.load_npz(path) if path.exists() else {}
        except inputs.InputFormatError:
            z = {}  # damaged: made again
        f = z.get("features")
        if (str(z.get("key")) == key and getattr(f, "shape", ()) == (
                len(images), *[d // pool for d in shapes[n][:2]], *shapes[n][2:])
                and np.isfinite(f).all()):
            found[n] = f
            speeds.append(float(z["images_per_second"]))
    if len(found) < len(layers):
        from tqdm import tqdm
        print(f"{backbone} ({weights_id}): extracting {', '.join(layers)} of {len(images)} faces")
        extract(images[:1])  # trace the graph outside the timing
        start, step = time.perf_counter(), settings.extract_batch
        batches = [[a.numpy().astype(np.float16) for a in extract(images[i:i + step])]
                   for i in tqdm(range(0, len(images), step), f"{backbone} features",
                                 unit="batch", leave=False, disable=None)]
        extracted, speeds = len(images), [len(images) / (time.perf_counter() - start)]
        for n, rows, (path, key) in zip(layers, zip(*batches), caches.values()):
            found[n] = np.concatenate(rows)
            inputs.save_npz(path, compress=False, key=np.array(key), features=found[n],
                            images_per_second=np.float64(speeds[0]))  # zlib: slow, saves little
    print(f"features of {len(images)} faces: {extracted} extracted now, the rest from the cache")
    return {"features": found, "extracted": extracted, "images_per_second": min(speeds),
            "layer_shapes": shapes, "weights": weights_id,
            "cache": {n: str(c[0]) for n, c in caches.items()}}


# ==== Parts: the faces and split, the classifier on top, Part 10, Part 11 =================

def prepare(run: runs.Run, actors, backbone: str, settings: Part10, layers) -> dict:
    """The RGB faces in the split, mirrored training faces after them (split "train" holds both,
    "train_eval" the real ones), and their features. Made once a run: Part 11 after Part 10 takes
    Part 10's (the same seed, actors, backbone, subset and mirrors)."""
    key = ("deepfaces.prepare", backbone, settings.subset, settings.flip)
    if not set(layers) <= set(run.made.get(key, {}).get("features", ())):
        run.made[key] = faces_and_features(run, actors, backbone, settings, layers)
    return run.made[key]


def faces_and_features(run: runs.Run, actors, backbone: str, settings: Part10, layers) -> dict:
    data = facedata.load_faces(actors, SIZE, "rgb", run.quick)
    record = facedata.load_split(actors, run.seed, run.quick)[2]
    split = facedata.rows_of(data["face_ids"], record)
    if settings.subset:  # a few training and validation faces per actor; the test set whole
        rng = run.rng(10)
        for name, n in zip(("train", "val"), settings.subset):
            split[name] = np.sort(np.concatenate([rng.permutation(split[name][
                data["labels"][split[name]] == a])[:n] for a in range(len(actors))]))
    used = np.sort(np.concatenate(list(split.values())))
    split = {k: np.searchsorted(used, v) for k, v in split.items()}  # rows among the used
    images, labels = data["images"][used], data["labels"][used].astype(np.int64)
    train, n = split["train"], len(images)
    mirrored = images[train][:, :, ::-1] if settings.flip else images[:0]
    print(f"{n} faces of {len(actors)} actors; split train {len(train)} / val "
          f"{len(split['val'])} / test {len(split['test'])} (seed {run.seed}, as faces.py's)")
    return {"images": images, "face_ids": data["face_ids"][used],
            "groups": record.get("groups", []),
            "labels": np.concatenate([labels, labels[train][:len(mirrored)]]),
            "split": dict(split, train=np.concatenate([train, n + np.arange(len(mirrored))]),
                          train_eval=train),
            **features_of(backbone, layers, np.concatenate([images, mirrored]), run, settings,
                          actors)}


def scaled(features, rms: float) -> np.ndarray:
    """(N, h, w, c) features -> X (N, h*w*c) float32 divided by Part 10's RMS."""
    X = features.reshape(len(features), -1).astype(np.float32)
    return np.divide(X, np.float32(rms), out=X)


def train_on_layer(features, labels, split: dict, settings: TrainSettings, seed: int) -> dict:
    """faces.py's trainer on one layer's features, flattened and divided by their RMS over the
    training rows (one scalar: a per-feature standardisation would blow up the rarely active
    features of sparse ReLU maps); accuracies on the real faces of each split."""
    squares = features[split["train"]].reshape(len(split["train"]), -1).astype(np.float32)
    rms = float(np.sqrt(np.mean(np.square(squares, out=squares)))) or 1.0
    del squares
    X = tf.constant(scaled(features, rms))  # on TensorFlow's side once: training, accuracies
    params, history = train_net(X, labels, split, settings, seed)
    acc = {name: accuracy(params, tf.gather(X, split[key]), labels[split[key]])
           for name, key in (("train", "train_eval"), ("val", "val"), ("test", "test"))}
    return {"params": params, "history": history, "D": X.shape[1], "rms": rms, "accuracy": acc,
            "val_cost": history["val_cost"][history["iteration"].index(history["best_iteration"])]}


def part10(run: runs.Run, settings: Part10, actors, backbone: str) -> dict:
    """Features of a pretrained network -> faces.py's tanh network; layer chosen on validation."""
    layers = settings.layer_sweep or CANDIDATES[backbone]
    prep = prepare(run, actors, backbone, settings, layers)
    split, nets, seconds = prep["split"], {}, {}
    for layer in layers:
        features, clock = prep["features"][layer], time.perf_counter()
        nets[layer] = r = train_on_layer(features, prep["labels"], split,
                                         train_settings(settings), run.seed)
        seconds[f"train_{layer}_seconds"] = round(time.perf_counter() - clock, 2)
        print(f"  {layer:18s} {str(features.shape[1:]):16s} validation {r['accuracy']['val']:.4f}"
              f" (cost {r['val_cost']:.4f}) training {r['accuracy']['train']:.4f} "
              f"({seconds[f'train_{layer}_seconds']:.1f} s)")
    # the best validation accuracy; ties: the lower validation cost. The test set is not looked at
    layer = max(nets, key=lambda n: (nets[n]["accuracy"]["val"], -nets[n]["val_cost"]))
    best, shape, acc = nets[layer], prep["features"][layer].shape[1:], nets[layer]["accuracy"]
    inputs.save_npz(run.out / "results" / HEAD_FILE, layer=np.array(layer), rms=best["rms"],
                    seed=run.seed, quick=run.quick, actors=np.array(actors), backbone=backbone,
                    settings=json.dumps(runs.jsonable(settings)), **best["params"])
    # Part 7 of the same run folder (seed, --quick, actors), if on the same test faces
    p7 = runs.read_results_like(run, "faces.py", "part7", actors=actors)
    before = (p7["metrics"].get("test_accuracy") if p7 and p7["metrics"].get("n_test")
              == len(split["test"]) else None)  # the split follows the seed and the actors
    reduction = None if before is None or before >= 1 else 1 - (1 - acc["test"]) / (1 - before)
    print(f"chosen on validation: {backbone} {layer}; test accuracy {acc['test']:.4f}; " + (
        f"Part 7 {before:.4f}: error-rate reduction {reduction:.1%}" if reduction is not None else
        f"no Part 7 result on these test faces in {run.out}/results: no error-rate reduction"))
    fig = plot_learning_curves(best["history"], f"Part 10: {backbone} {layer} {shape} -> "
                               f"{settings.hidden_units} tanh -> {len(actors)} (test accuracy "
                               f"{acc['test']:.3f})")
    metrics = {"test_accuracy": acc["test"], "validation_accuracy": acc["val"],
               "train_accuracy": acc["train"], "part7_test_accuracy": before,
               "error_rate_reduction": reduction,
               "extract_images_per_second": prep["images_per_second"],
               "images_extracted_now": prep["extracted"], "feature_dimension": best["D"],
               "best_iteration": best["history"]["best_iteration"], "n_test": len(split["test"]),
               **{f"validation_accuracy_{n}": r["accuracy"]["val"] for n, r in nets.items()},
               **{f"test_accuracy_{n}": r["accuracy"]["test"] for n, r in nets.items()}}
    layer_shape = prep["layer_shapes"][layer]
    return {"metrics": metrics, "figures": [run.figure(fig, "deepfaces_part10_curves")],
            "timings": seconds, "backbone": backbone, "layer": layer, "feature_shape": list(shape),
            "layer_shape": list(layer_shape), "pool": pool_factor(layer_shape),
            "actors": list(actors), "cache": prep["cache"], "weights": prep["weights"],
            "feature_rms": best["rms"], "split": {k: len(v) for k, v in split.items()}}


def check_head(settings, run: runs.Run, actors, backbone: str) -> None:
    """Before any part runs: Part 10's HEAD_FILE is there, unless part10 runs first and makes it."""
    if "part10" not in run.parts:
        read_head(settings, run, actors, backbone)


def read_head(settings, run: runs.Run, actors, backbone: str) -> dict:
    """Part 10's HEAD_FILE of this run's seed, --quick, actors and backbone; else a UserError
    with the command that makes it."""
    path = run.out / "results" / HEAD_FILE
    head = inputs.load_npz(path) if path.exists() else {}
    made = [head.get(k, np.array(None)).tolist() for k in ("seed", "quick", "actors", "backbone")]
    if made == [run.seed, run.quick, list(actors), backbone]:
        return head
    options = {"--quick": run.quick, f"--seed {run.seed}": run.seed != runs.DEFAULT_SEED,
               f"--backbone {backbone}": backbone != "mobilenet",
               f'--actors "{",".join(actors)}"': tuple(actors) != facedata.DEFAULT_ACTORS,
               f"--out {run.out}": run.out != inputs.PROJECT_DIR}
    what = "missing" if not head else ("of another run (seed {}, quick {}, actors {}, backbone {})"
                                       .format(*made))
    command = " ".join(["python deepfaces.py part10", *(o for o, on in options.items() if on)])
    raise UserError(f"{path}: Part 10's network, which part11 draws, is {what}. Make it with: "
                    f"{command}")


def contribution_map(x: np.ndarray, w: np.ndarray, grid_shape: tuple) -> np.ndarray:
    """Where a unit's input comes from: features x (D,), incoming weights w (D,) -> (h, w). Cell
    (i, j) = sum over channels c of x[i, j, c] * w[i, j, c]: the cells add up to x @ w."""
    return (x * w).reshape(grid_shape).sum(axis=-1)


def overlay(ax, image, heat, title: str) -> None:
    """A face under a signed map (bilinear; red raises the unit's input), limits +-max|map|."""
    lim = max(float(np.abs(heat).max()), 1e-12)
    ax.imshow(image)
    ax.imshow(heat, cmap="RdBu_r", alpha=0.6, extent=(0, image.shape[1], image.shape[0], 0),
              interpolation="bilinear", vmin=-lim, vmax=lim)
    ax.set_title(title, fontsize=8, pad=2)
    ax.set(xticks=[], yticks=[])


def part11(run: runs.Run, settings: Part11, actors, backbone: str) -> dict:
    """Where the most useful hidden unit of each actor looks, and the faces that drive it most."""
    head = read_head(settings, run, actors, backbone)  # W0, b0, W1, b1 and what made them
    layer, W0, b0, W1 = str(head["layer"]), head["W0"], head["b0"], head["W1"]
    trained = Part10(**{k: tuple(v) if isinstance(v, list) else v
                        for k, v in json.loads(str(head["settings"])).items()})
    prep = prepare(run, actors, backbone, trained, [layer])
    labels, split, features = prep["labels"], prep["split"], prep["features"][layer]
    X = scaled(features, float(head["rms"]))  # as Part 10
    train, grid = split["train_eval"], features.shape[1:]
    H_act = hidden(head, X[train]).numpy()
    pre = X[train] @ W0 + b0  # pre-activations: unlike tanh they do not saturate, so they rank

    import matplotlib.pyplot as plt
    fig, axes = plt.subplots(len(actors), 1 + settings.n_top, squeeze=False,  # ~7 pt printed
                             figsize=(1.2 * (1 + settings.n_top), 1.35 * len(actors) + 0.5),
                             layout="constrained")
    # FaceScrub holds some photos twice (the split's near-duplicate groups): show a photo once
    group_of = {fid: g for g, members in enumerate(prep["groups"]) for fid in members}
    units, same_actor, centre_share = {}, [], []
    centre = np.zeros(grid[:2], bool)
    centre[grid[0] // 4:grid[0] - grid[0] // 4, grid[1] // 4:grid[1] - grid[1] // 4] = True
    for a, actor in enumerate(actors):
        ranked = np.argsort(unit_usefulness(H_act, labels[train], W1, a))[::-1]
        u = units[actor] = int(next(j for j in ranked if int(j) not in units.values()))
        sign = np.sign(W1[u, a]) or 1.0  # more input, more evidence for a
        own = train[labels[train] == a]
        mean_map = contribution_map(X[own].mean(axis=0), W0[:, u] * sign, grid)
        centre_share.append(float(np.abs(mean_map)[centre].sum() / np.abs(mean_map).sum()))
        overlay(axes[a, 0], prep["images"][own].mean(axis=0) / 255.0, mean_map,
                f"{actor.split()[-1]}: unit {u}")
        drive = pre[:, u] * sign
        top = np.argsort(drive)[::-1]
        same_actor.append(float(np.mean(labels[train][top[:settings.n_top_score]] == a)))
        twins = [group_of.get(int(prep["face_ids"][train[t]]), -1 - int(t)) for t in top]
        shown = top[np.sort(np.unique(twins, return_index=True)[1])][:settings.n_top]
        for col, t in enumerate(shown, start=1):  # each photo's first copy in the ranking
            r = train[t]
            overlay(axes[a, col], prep["images"][r], contribution_map(X[r], W0[:, u] * sign, grid),
                    f"{actors[labels[r]].split()[-1]} {drive[t]:+.1f}")
    fig.suptitle(f"Part 11: per actor, the unit on {layer} {grid} that most raises the actor's "
                 "output. Colour: where its input comes from (red raises it); column 1 over the "
                 "actor's mean face, then the photos that drive it most", fontsize=8, wrap=True)
    figures = [run.figure(fig, "deepfaces_part11_units")]

    # every unit: its mean input map over all training faces, signed towards its favourite actor
    n, cols = W0.shape[1], min(8, W0.shape[1])
    fig, axes = plt.subplots(-(-n // cols), cols, figsize=(1.4 * cols, 1.5 * -(-n // cols)),
                             squeeze=False)
    mean_face, mean_x = prep["images"][train].mean(axis=0) / 255.0, X[train].mean(axis=0)
    favourite = W1.argmax(axis=1)
    for ax in axes.ravel()[n:]:
        ax.axis("off")
    for j, ax in zip(range(n), axes.ravel()):
        overlay(ax, mean_face, contribution_map(mean_x, W0[:, j] * np.sign(W1[j, favourite[j]]),
                                                grid), f"{j}: +{actors[favourite[j]].split()[-1]}")
    fig.suptitle(f"Part 11: every hidden unit's mean input map on the {grid[0]}x{grid[1]} grid, "
                 "over the mean training face (red raises the output of the actor named)",
                 fontsize=8, wrap=True)
    fig.tight_layout(rect=(0, 0, 1, 1 - 0.5 / fig.get_figheight()))
    figures.append(run.figure(fig, "deepfaces_part11_all_units"))

    metrics = {"test_accuracy": accuracy(head, X[split["test"]], labels[split["test"]]),
               "top_faces_same_actor_fraction": float(np.mean(same_actor)),
               "input_share_central_region": float(np.mean(centre_share)),
               "central_region_area_share": float(centre.mean()),
               **{f"unit_{facedata.actors_tag([a])}": u for a, u in units.items()}}
    print(f"units {units}; top faces of the same actor {np.mean(same_actor):.2f}; input from "
          f"the central {centre.mean():.0%} of the grid: {np.mean(centre_share):.0%}")
    return {"metrics": metrics, "figures": figures, "backbone": backbone, "layer": layer,
            "feature_shape": list(grid), "part10_settings": trained}


# ==== Command line ========================================================================

PARTS = {"part10": runs.Part(part10, Part10), "part11": runs.Part(part11, Part11, check_head)}


def main(argv=None) -> dict:
    p = runs.parser(__doc__, PARTS)
    p.add_argument("--backbone", choices=("mobilenet", "alexnet"), default="mobilenet",
                   help="the pretrained network (default mobilenet)")
    facedata.add_actors_option(p)
    args = p.parse_args(argv)
    tags = facedata.actors_tags(args.actors) + (
        () if args.backbone == "mobilenet" else (f"backbone-{args.backbone}",))
    run, names = runs.start("deepfaces.py", args, PARTS, tags=tags,
                            context=(args.actors, args.backbone))
    return runs.run_parts(run, PARTS, names, args.actors, args.backbone)


if __name__ == "__main__":
    runs.main_guard(main)
