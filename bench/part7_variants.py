"""Benchmark: the Part 7 variants we tried to raise the accuracy, measured against Part 7's setting.

Each variant changes one or two of Part 7's settings (faces.py), keeping Part 7's hidden units.
Per seed (its split, initial weights and batch order) the variant and Part 7's setting are trained
and scored on the validation faces, never the test faces. The report's "tried and dropped" table:
each variant's validation accuracy (mean +- sd over the seeds) and its gain over Part 7's.

    python bench/part7_variants.py             # 5 seeds, ~3.5 min on 2 cores
"""
import json
import sys
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from statistics import fmean, stdev
from typing import ClassVar

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the project: faces, apparatus

from apparatus import facedata, inputs, runs  # noqa: E402

PART7_RESULT = Path(__file__).resolve().parents[1] / "results" / "faces_part7.json"

# name -> (what it changes, in the report's words; the changed Part 7 settings)
VARIANTS = {
    "input_noise_0.5": ("Gaussian input noise, std 0.5", {"input_noise": 0.5}),
    "input_noise_1.0": ("Gaussian input noise, std 1.0", {"input_noise": 1.0}),
    "dropout_0.3": ("dropout on the hidden units, rate 0.3", {"dropout": 0.3}),
    "dropout_0.5": ("dropout on the hidden units, rate 0.5", {"dropout": 0.5}),
    "sgd": ("SGD with momentum 0.9, learning rate 0.01, instead of Adam",
            {"optimizer": "sgd", "learning_rate": 0.01}),
    "adam_3e-3": ("Adam with learning rate 3e-3 instead of 5e-4", {"learning_rate": 3e-3}),
    "init_scale_1": ("initial weight scale 1.0 instead of 0.5 (times Glorot's)",
                     {"init_scale": 1.0}),
    "l2_1e-3": ("weight decay 1e-3 instead of 1e-4", {"l2": 1e-3}),
    "no_shifts": ("no shifted training copies", {"shifts": ()}),
    "no_flip": ("no mirrored training copies", {"flip": False}),
}


@dataclass(frozen=True)
class Bench:
    n_seeds: int = runs.setting(5, ge=2)  # splits and initialisations: a mean and a spread
    variants: tuple = tuple(VARIANTS)  # which of VARIANTS to train
    QUICK: ClassVar[dict] = {"n_seeds": 2, "variants": ("dropout_0.5", "no_flip")}

    def __post_init__(self):
        if not self.variants or not set(self.variants) <= set(VARIANTS):
            raise inputs.UserError(f"--set variants={self.variants!r}: choose among "
                                   f"{', '.join(VARIANTS)}")


def part7_hidden_units() -> int:  # Part 7's choice, from its committed result
    try:
        return int(json.loads(PART7_RESULT.read_text())["metrics"]["hidden_units"])
    except (OSError, ValueError, KeyError) as err:
        raise inputs.UserError(f"{PART7_RESULT}: no Part 7 result ({err}); run "
                               "python faces.py part7 first") from None


def validation_accuracy(faces, part7, changes: dict, seed: int, quick: bool) -> float:
    """Part 7's network with ``changes`` trained on the split of ``seed``: its validation score."""
    s = replace(part7, **changes)
    data, split, _ = facedata.load_split(facedata.DEFAULT_ACTORS, seed, quick)
    X, y, split_aug = faces.augmented_features(data["images"], data["labels"], split, s.flip,
                                               s.shifts)
    params, _ = faces.train_net(X, y, {**split_aug, "test": split["test"][:0]},  # no test rows
                                faces.train_settings(s), seed)
    return faces.accuracy(params, X[split["val"]], y[split["val"]])


def main(argv=None) -> dict:
    args = runs.parser(__doc__, {}, settings={"bench": Bench}).parse_args(argv)
    run, _ = runs.start("bench/part7_variants.py", args, {"bench": Bench})
    s = run.settings(Bench)
    import faces  # TensorFlow loads here, after the options are checked
    part7 = replace(runs.make_settings(faces.Part7, run.quick),
                    hidden_units=part7_hidden_units() if not run.quick else 16)
    seeds = list(range(run.seed, run.seed + s.n_seeds))
    t0, rows, metrics = time.perf_counter(), [], {}
    for name in ("baseline", *s.variants):  # the baseline first: the others are paired with it
        what, changes = VARIANTS.get(name, ("Part 7's setting", {}))
        val = [validation_accuracy(faces, part7, changes, seed, run.quick) for seed in seeds]
        print(f"  {name:16s} validation " + " ".join(f"{a:.3f}" for a in val), flush=True)
        gain = [a - b for a, b in zip(val, rows[0]["val_per_seed"] if rows else val)]  # same seeds
        rows.append({"variant": name, "what": what, "changes": changes, "val_mean": fmean(val),
                     "val_sd": stdev(val), "gain_mean": fmean(gain), "gain_sd": stdev(gain),
                     "val_per_seed": val})
        metrics |= {f"{name}_{k}": rows[-1][k] for k in ("val_mean", "gain_mean")}
    metrics["best_gain_mean"] = max(r["gain_mean"] for r in rows[1:])
    run.record(None, {**asdict(s), "hidden_units": part7.hidden_units, "seeds": seeds},
               metrics, [], time.perf_counter() - t0, rows=rows)
    return metrics


if __name__ == "__main__":
    runs.main_guard(main)
