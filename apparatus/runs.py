"""One run of a script: settings, seed, where outputs go, figures and results files.

Settings. Each part has a frozen dataclass of settings, a range beside each field that has one
(``hidden_units: int = setting(300, ge=1)``) and ``QUICK``, the values of a ``--quick`` run. The
effective settings: defaults, then ``QUICK`` when ``--quick``, then each ``--set name=value``
(a Python literal: ``600``, ``1e-3``, ``(300,600)``, ``True``), checked against the limits.

Outputs. The full default run writes the project's ``images/`` and ``results/``; any other run
(``--quick``, ``--set``, another seed or actor set) is a trial, written under ``runs/<tag>/``
unless ``--out DIR`` says where. Each part writes ``results/<script>_<part>.json``.
"""
from __future__ import annotations

import argparse
import ast
import dataclasses
import json
import os
import re
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np

from apparatus import inputs
from apparatus.inputs import PROJECT_DIR, UserError

DEFAULT_SEED = 0
RUNS_DIR = PROJECT_DIR / "runs"


# ==== Settings: defaults, the --quick preset, --set overrides =============================

def parse_overrides(pairs: list[str]) -> dict[str, object]:
    """``["hidden_units=600", "l2=1e-3"]`` -> ``{"hidden_units": 600, "l2": 0.001}``."""
    out = {}
    for pair in pairs:
        name, sep, text = pair.partition("=")
        if not sep or not all(w.isidentifier() for w in name.strip().split(".")):
            raise UserError(f"--set {pair!r}: write name=value, e.g. --set hidden_units=600")
        try:
            out[name.strip()] = ast.literal_eval(text.strip())
        except (ValueError, SyntaxError):
            out[name.strip()] = text.strip()  # a bare word is a string: --set optimizer=sgd
    return out


def coerce(owner, name: str, value):
    """``value`` in the type of ``owner.name`` (a number given for a tuple -> a 1-tuple)."""
    default = getattr(owner, name, None)
    annotation = next((str(f.type) for f in dataclasses.fields(owner) if f.name == name), "")
    if value is None and "None" in annotation:  # patience: int | None
        return None
    if isinstance(default, tuple):
        return tuple(value) if isinstance(value, (tuple, list)) else (value,)
    if dataclasses.is_dataclass(default) and not isinstance(value, type(default)):
        example = dataclasses.fields(default)[0].name
        raise UserError(f"--set {name}={value!r}: {name} is a group of settings; set one of them "
                        f"by name, e.g. --set {name}.{example}={getattr(default, example)!r}")
    if isinstance(default, bool) and not isinstance(value, bool):
        raise UserError(f"--set {name}={value!r}: give True or False")
    if isinstance(default, bool) or default is None:
        return value
    if isinstance(default, float) and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if isinstance(default, (int, float, str)) and type(value) is not type(default):
        raise UserError(f"--set {name}={value!r}: give a value of type "
                        f"{type(default).__name__}, like its default {default!r}")
    return value


def setting_names(cls) -> set[str]:
    """Names ``--set`` accepts: the fields, and ``field.sub`` inside a nested settings object."""
    names = set()
    for f in dataclasses.fields(cls):
        names.add(f.name)
        if dataclasses.is_dataclass(f.type) or dataclasses.is_dataclass(getattr(cls, f.name, 0)):
            names |= {f"{f.name}.{sub.name}" for sub in dataclasses.fields(getattr(cls, f.name))}
    return names


def make_settings(cls, quick: bool = False, overrides: dict | None = None, part: str = ""):
    """The effective settings of one part: defaults, ``cls.QUICK`` if quick, then overrides
    (``tanh.epochs=5`` changes one field of the nested settings ``tanh``), all at once (a class
    that checks one setting against another sees them together), then :func:`check_limits`."""
    settings = dataclasses.replace(cls(), **(getattr(cls, "QUICK", {}) if quick else {}))
    known, changes = setting_names(cls), {}
    for name, value in (overrides or {}).items():
        if name in getattr(cls, "SWEPT", {}):  # a trainer's scalar that this part sweeps
            raise UserError(f"--set {name}: {part or cls.__name__} sweeps {cls.SWEPT[name]} "
                            f"instead (e.g. --set \"{cls.SWEPT[name]}=({value!r},)\"); run the "
                            f"parts that use {name} on their own")
        if name not in known:
            continue  # a setting of another part of the same run
        outer, _, inner = name.partition(".")
        if inner:
            nested = changes.get(outer, getattr(settings, outer))
            changes[outer] = dataclasses.replace(nested, **{inner: coerce(nested, inner, value)})
        else:
            changes[outer] = coerce(settings, outer, value)
    settings = dataclasses.replace(settings, **changes)
    check_limits(settings)
    return settings


@dataclasses.dataclass(frozen=True)
class Limit:
    """The values one setting admits: a range (``ge``/``gt`` its lower end, ``lt``/``le`` its
    upper, as in pydantic) or ``choices``. For a tuple of values: each, and at least one; None
    (``patience: int | None``) always passes."""
    ge: float | None = None
    gt: float | None = None
    lt: float | None = None
    le: float | None = None
    choices: tuple = ()

    def admits(self, value) -> bool:
        values = value if isinstance(value, tuple) else (value,)
        if self.choices:
            return all(v in self.choices for v in values)
        return bool(values) and all(v is None or (
            isinstance(v, (int, float)) and not isinstance(v, bool)
            and (self.ge is None or v >= self.ge) and (self.gt is None or v > self.gt)
            and (self.lt is None or v < self.lt) and (self.le is None or v <= self.le))
            for v in values)

    def __str__(self) -> str:  # ">= 0 and < 1", "adam | sgd"
        if self.choices:
            return " | ".join(map(str, self.choices))
        return " and ".join(f"{op} {bound:g}" for op, bound in (
            (">=", self.ge), (">", self.gt), ("<", self.lt), ("<=", self.le)) if bound is not None)


def setting(default, **limit):
    """A settings field with its range beside it: ``momentum: float = setting(0.9, ge=0, lt=1)``,
    ``optimizer: str = setting("adam", choices=("adam", "sgd"))`` (see Limit)."""
    return dataclasses.field(default=default, metadata={"limit": Limit(**limit)})


def limit_of(cls, name: str) -> Limit | None:
    """The limit of field ``name``: a subclass that only changes the default keeps its base's."""
    for klass in type(cls).__mro__ if not isinstance(cls, type) else cls.__mro__:
        f = getattr(klass, "__dataclass_fields__", {}).get(name)
        if f is not None and "limit" in f.metadata:
            return f.metadata["limit"]
    return None


def check_limits(settings, prefix: str = "") -> None:
    """Each field's value against its limit, before any work; nested settings too."""
    for f in dataclasses.fields(settings):
        value, limit = getattr(settings, f.name), limit_of(settings, f.name)
        if dataclasses.is_dataclass(value):
            check_limits(value, f"{prefix}{f.name}.")
        elif limit is not None and not limit.admits(value):
            wanted = (f"one of {', '.join(map(str, limit.choices))}" if limit.choices else
                      f"one or more numbers, each {limit}" if isinstance(value, tuple) else
                      f"a number {limit}")
            raise UserError(f"--set {prefix}{f.name}={value!r}: give {wanted}")


# ==== The run =============================================================================

def git_commit() -> str | None:
    """The short commit of the code, with "-dirty" when a tracked .py file differs from it."""
    try:
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=PROJECT_DIR,
                              capture_output=True, text=True, timeout=5)
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no", "--",
                                "*.py", "templates"], cwd=PROJECT_DIR, capture_output=True,
                               text=True, timeout=5)
    except (OSError, subprocess.SubprocessError):
        return None
    mark = "-dirty" if dirty.stdout.strip() else ""
    return None if head.returncode else head.stdout.strip() + mark


@dataclasses.dataclass
class Run:
    """What every part of a script gets: the seed, the trial flags and where outputs go."""
    script: str                      # "digits.py", "bench/train_speed.py"
    seed: int = DEFAULT_SEED
    quick: bool = False
    overrides: dict = dataclasses.field(default_factory=dict)   # --set name=value
    tags: tuple = ()                 # other non-default options (e.g. the actor set)
    out: Path | None = None          # None: the project for a default run, else runs/<tag>/
    command: str = ""
    parts: tuple = ()                # the parts this run does, in order (their checks may ask)
    made: dict = dataclasses.field(default_factory=dict, repr=False)  # for later parts: once a run

    def __post_init__(self):
        self.out = Path(self.out or (RUNS_DIR / self.tag if self.trial else PROJECT_DIR))

    @property
    def trial(self) -> bool:
        return bool(self.quick or self.overrides or self.seed != DEFAULT_SEED or self.tags)

    @property
    def tag(self) -> str:
        """A folder name that says what makes the run a trial: ``quick-seed1-l2=0.001``."""
        words = (["quick"] if self.quick else []) + (
            [f"seed{self.seed}"] if self.seed != DEFAULT_SEED else []) + list(self.tags) + [
            f"{k}={v}" for k, v in sorted(self.overrides.items())]
        return re.sub(r"[^A-Za-z0-9=.,_+-]", "", "-".join(words)) or "default"

    def settings(self, cls):
        """The effective settings of a part; prints those that differ from the defaults (the
        --quick preset and --set values) and where the outputs go, as the part starts."""
        settings = make_settings(cls, self.quick, self.overrides)
        changed = [line.split(" [")[0] for line, default in
                   zip(describe(settings), describe(cls())) if line != default]
        print(f"settings: {'overriding ' + ', '.join(changed) if changed else 'the defaults'}"
              f"; outputs in {self.out}")
        return settings

    def rng(self, *stream: int) -> np.random.Generator:
        """The NumPy generator of one stream of this run (e.g. one per part)."""
        return np.random.default_rng([self.seed, *stream])

    def figure(self, fig, name: str, dpi: int = 120) -> str:
        """Save a matplotlib figure as ``<out>/images/<name>.png``, close it; the relative path."""
        import matplotlib.pyplot as plt
        with inputs.atomic_path(self.out / "images" / f"{name}.png") as tmp:
            fig.savefig(tmp, dpi=dpi, bbox_inches="tight", format="png")
        plt.close(fig)
        return f"images/{name}.png"

    def record(self, part: str | None, settings, metrics: dict, figures: list[str],
               seconds: float, timings: dict | None = None, **extra) -> Path:
        """Write ``<out>/results/<script>_<part>.json`` atomically; print where."""
        record = {"script": self.script, "part": part, "command": self.command or
                  f"python {self.script} {part or ''}".strip(), "seed": self.seed,
                  "quick": self.quick, "trial": self.trial, "overrides": self.overrides,
                  "git_commit": git_commit(), "settings": jsonable(settings),
                  "timings": {"seconds": round(float(seconds), 3), **(timings or {})},
                  "metrics": metrics, "figures": figures, **extra}
        path = results_path(self.script, part, self.out)
        inputs.write_text(path, json.dumps(jsonable(record), indent=2) + "\n")
        print(f"wrote {path}")
        return path


def read_results_like(run: Run, script: str, part: str | None, **same) -> dict | None:
    """Another part's record in this run's folder if it was made with this run's seed and
    ``--quick`` and records the same ``same`` values (``actors=[...]``); else None."""
    record = read_results(script, part, run.out) or {}
    same = {"seed": run.seed, "quick": run.quick, **same}
    return record if record and all(record.get(k) == jsonable(v) for k, v in same.items()) else None


def results_path(script: str, part: str | None, out: Path | str = PROJECT_DIR) -> Path:
    """results/digits_part4.json, results/get_all_imgs.json, results/bench_train_speed.json"""
    stem = "_".join(Path(script).with_suffix("").parts)
    return Path(out) / "results" / (f"{stem}_{part}.json" if part else f"{stem}.json")


def read_results(script: str, part: str | None, out: Path | str = PROJECT_DIR) -> dict | None:
    """The results record of one part, or None when that part has not been run there."""
    path = results_path(script, part, out)
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        return None
    except ValueError as err:
        raise inputs.InputFormatError(f"{path}: not valid JSON ({err}). Re-run "
                                      f"python {script} {part or ''}") from err


def jsonable(value):
    """Dataclasses, tuples, paths and numpy values as plain JSON values."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        value = dataclasses.asdict(value)
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if isinstance(value, (np.generic, np.ndarray)):
        return value.tolist()
    return str(value) if isinstance(value, Path) else value


def seed_tensorflow(seed: int) -> None:
    """Seed Python, NumPy's global generator and TensorFlow; make TensorFlow's ops deterministic."""
    import tensorflow as tf
    tf.keras.utils.set_random_seed(seed)
    tf.config.experimental.enable_op_determinism()


# ==== The command line ====================================================================

def describe(settings, prefix: str = ""):
    """``name=default [range]`` of each setting, nested ones as ``group.name``."""
    for f in dataclasses.fields(settings):
        value = getattr(settings, f.name)
        if f.name in getattr(settings, "SWEPT", {}):
            continue  # this part sweeps it under another name
        if dataclasses.is_dataclass(value):
            yield from describe(value, f"{prefix}{f.name}.")
            continue
        rule = limit_of(settings, f.name)
        yield f"{prefix}{f.name}={value!r}" + (f" [{rule}]" if rule else "")


def parser(doc: str, parts: dict, settings: dict | None = None) -> argparse.ArgumentParser:
    """argparse with ``part`` (one of ``parts`` or ``all``), --seed, --quick, --set and --out;
    the help ends with the settings (``settings``, else each :class:`Part`'s), defaults, ranges."""
    classes = {n: settings_class(c) for n, c in (settings or parts).items() if settings_class(c)}
    epilog = "\n".join(textwrap.fill(  # lines break between settings, never inside one
        f"{name}: " + ", ".join(item.replace(" ", "\0") for item in describe(cls())), width=100,
        subsequent_indent="    ", break_on_hyphens=False).replace("\0", " ")
        for name, cls in classes.items())
    p = argparse.ArgumentParser(
        description=doc.strip().split("\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=epilog and "settings for --set NAME=VALUE (default [range]; each is explained "
                          "beside its field in the script):\n" + epilog)
    if parts:
        p.add_argument("part", nargs="?", default="all", choices=["all", *parts],
                       help="which part to run (default: all)")
    p.add_argument("--seed", type=int, default=DEFAULT_SEED,
                   help=f"seed of every random draw (default {DEFAULT_SEED})")
    p.add_argument("--quick", action="store_true",
                   help="a small run in seconds (a trial: written under runs/quick/)")
    p.add_argument("--set", action="append", default=[], metavar="NAME=VALUE",
                   help="change one setting, e.g. --set hidden_units=600 (repeatable)")
    p.add_argument("--out", type=Path, default=None,
                   help="folder for images/ and results/ (default: the project for a default "
                        "run, runs/<tag>/ for a trial)")
    return p


@dataclasses.dataclass(frozen=True)
class Part:
    """One row of a script's table of parts, run by :func:`run_parts`, checked by :func:`start`."""
    work: object                     # work(run, settings, *context) -> {"metrics", "figures", ...}
    settings: type | None = None     # its settings dataclass
    check: object = None             # check(settings, run, *context): UserError before any part


def settings_class(entry):
    return entry.settings if isinstance(entry, Part) else entry


def start(script: str, args, parts: dict, tags: tuple = (), context: tuple = ()
          ) -> tuple[Run, list[str]]:
    """The Run and the parts to run, after every check: each ``--set`` name a field of a part
    that will run (``parts``: name -> :class:`Part`, or a settings class), every part's settings
    made and checked (types, ranges, then the part's ``check`` with ``context``)."""
    names = list(parts) if getattr(args, "part", "all") == "all" else [args.part]
    if args.seed < 0:
        raise UserError(f"--seed {args.seed}: use a seed of 0 or more")
    overrides = parse_overrides(args.set)
    classes = {n: settings_class(parts[n]) for n in names if settings_class(parts.get(n))}
    fields = set().union(*(setting_names(cls) for cls in classes.values()))
    unknown = sorted(set(overrides) - fields)
    if unknown:
        raise UserError(f"--set {', '.join(unknown)}: no such setting in {', '.join(names)}. "
                        f"Settings: {', '.join(sorted(fields)) or 'none'}")
    run = Run(script, args.seed, args.quick, overrides, tags, args.out,
              command=" ".join(["python", script] + sys.argv[1:]), parts=tuple(names))
    made = {n: make_settings(cls, args.quick, overrides, n) for n, cls in classes.items()}
    for name, settings in made.items():  # a bad value stops now, not after earlier parts ran
        if getattr(parts[name], "check", None):
            parts[name].check(settings, run, *context)
    check_writable(run.out)
    return run, names


def run_parts(run: Run, parts: dict, names: list[str], *context) -> dict:
    """Each part in turn: its settings (overrides printed), its work, and its results record
    with the time it took, all here; the metrics of each part by name."""
    done = {}
    for name in names:
        print(f"===== {run.script} {name} (seed {run.seed}{', quick' if run.quick else ''}) =====")
        part = parts[name]
        settings = run.settings(part.settings) if part.settings else None
        clock = time.perf_counter()
        out = dict(part.work(run, settings, *context))
        run.record(name, out.pop("settings", settings), out["metrics"], out.pop("figures", []),
                   time.perf_counter() - clock, out.pop("timings", None),
                   **{k: v for k, v in out.items() if k != "metrics"})
        done[name] = out["metrics"]
    return done


def check_writable(folder: Path) -> None:
    """Stop before any work when ``folder`` cannot be made or written (nothing is created yet)."""
    existing = next(p for p in [folder, *folder.parents] if p.exists())
    if not existing.is_dir() or not os.access(existing, os.W_OK | os.X_OK):
        raise UserError(f"--out {folder}: cannot write there ({existing} is "
                        f"{'not a folder' if not existing.is_dir() else 'not writable'}). "
                        "Choose a folder you can write to.")


def import_tensorflow():
    """TensorFlow, imported with file descriptor 2 silenced for the moment it loads: its C++
    libraries print notices as they load ("I0000 ... oneDNN") that no environment setting stops.
    Python's streams are not touched and no thread is started; later, TensorFlow logs as usual."""
    if "tensorflow" in sys.modules:
        return sys.modules["tensorflow"]
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")  # later C++ messages: fatal ones only
    sys.stderr.flush()
    saved, null = os.dup(2), os.open(os.devnull, os.O_WRONLY)
    os.dup2(null, 2)
    try:
        import tensorflow as tf
        tf.constant(0.0) + 1.0  # the devices are made now, with their notices
    finally:
        os.dup2(saved, 2)
        os.close(saved), os.close(null)
    return tf


def main_guard(main) -> None:
    """Run ``main()``; a UserError, running out of memory or Ctrl-C ends in one line and exit
    code 2 or 130."""
    t0 = time.perf_counter()
    try:
        main()
    except UserError as err:
        print(f"error: {err}", file=sys.stderr)
        raise SystemExit(2) from None
    except KeyboardInterrupt:
        print(f"\ninterrupted after {time.perf_counter() - t0:.0f} s; finished outputs are kept",
              file=sys.stderr)
        raise SystemExit(130) from None
    except Exception as err:  # NumPy's MemoryError, TensorFlow's ResourceExhaustedError
        if not isinstance(err, MemoryError) and type(err).__name__ != "ResourceExhaustedError":
            raise
        what = re.sub(r"\{\{.*?\}\}\s*| on /job:.*", "", str(err).split("\n")[0])[:300]
        print(f"error: out of memory ({what}). Make the settings smaller (--set) or try --quick; "
              "finished outputs are kept", file=sys.stderr)
        raise SystemExit(2) from None
