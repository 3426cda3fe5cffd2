"""Build the report, REPORT.md and deepnn.tex (and deepnn.pdf), from results/ and images/.

The prose lives once in Jinja2 templates (``templates/<section>.j2``), rendered with ``fmt``
"md" into REPORT.md and "tex" into deepnn.tex through ``templates/macros.j2``. Numbers come from
``results/*.json`` (the reference report's and the requirements from templates/reference.toml).
A section whose results are missing says "not run" and the command. A trial folder is quoted
with the default run's number beside each of its own, under a banner of what differs.

    python report.py                     # REPORT.md, deepnn.tex, deepnn.pdf (with pdflatex)
    python report.py --out runs/quick    # the report of a trial folder
    python report.py --run-all [--quick] [--seed S] [--with-bench]   # run every part first
"""
import argparse
import ast
import csv
import importlib
import json
import operator
import os
import re
import shutil
import statistics
import struct
import subprocess
import sys
import tempfile
import time
import tomllib
import traceback
from itertools import count
from pathlib import Path

import jinja2

from apparatus import runs
from apparatus.facedata import DEFAULT_ACTORS
from apparatus.inputs import write_text  # atomic: a full disk leaves the old report

PROJECT_DIR = Path(__file__).resolve().parent
TEMPLATES = PROJECT_DIR / "templates"

# ======================================================================== What the report holds

# (template, results file stem or None, heading, the command that makes the results)
SECTIONS = (
    ("summary", None, "Ours, the reference report and the requirements", ""),
    ("part1", "digits_part1", "Part 1: the MNIST digits", "python digits.py part1"),
    ("part2", "digits_part2", "Part 2: the 784-10 softmax network", "python digits.py part2"),
    ("part3", "digits_part3", "Part 3: the gradient and its check", "python digits.py part3"),
    ("part4", "digits_part4", "Part 4: mini-batch training", "python digits.py part4"),
    ("part5", "digits_part5", "Part 5: logistic vs linear regression", "python digits.py part5"),
    ("part6", "digits_part6", "Part 6: the cost of backpropagation", "python digits.py part6"),
    ("faces", "get_all_imgs", "The FaceScrub dataset", "python get_all_imgs.py"),
    ("part7", "faces_part7", "Part 7: a tanh network on faces", "python faces.py part7"),
    ("part8", "faces_part8", "Part 8: where weight decay pays", "python faces.py part8"),
    ("part9", "faces_part9", "Part 9: hidden units of two actors", "python faces.py part9"),
    ("part10", "deepfaces_part10", "Part 10: pretrained features", "python deepfaces.py part10"),
    ("part11", "deepfaces_part11", "Part 11: what the units see", "python deepfaces.py part11"),
    ("bench_train", "bench_train_speed", "Appendix A: training speed",
     "python bench/train_speed.py"),
    ("bench_features", "bench_features_speed", "Appendix B: feature speed",
     "python bench/features_speed.py"),
)

# --run-all: (what, script and arguments)
STEPS = (("digits (Parts 1-6)", ["digits.py", "all"]), ("face datasets", ["get_all_imgs.py"]),
         ("faces (Parts 7-9)", ["faces.py", "all"]), ("deepfaces (Parts 10-11)", ["deepfaces.py"]))
IN_PROCESS = ("faces.py", "deepfaces.py")  # run here, one after the other: one TensorFlow import
BENCH_STEPS = (("benchmark: training speed", ["bench/train_speed.py"]),
               ("benchmark: feature extraction", ["bench/features_speed.py"]))

# ========================================================================== Reading the results

def load_results(out_dir: Path) -> tuple[dict[str, dict], dict[str, str]]:
    """({stem: record} of every readable results/*.json, {stem: why} of the damaged ones); a CSV
    results/<stem>_<name>.csv beside a record becomes its list of rows record[name]
    (digits_part3_gradcheck.csv -> "gradcheck")."""
    results, damaged = {}, {}
    for path in sorted((out_dir / "results").glob("*.json")):
        try:
            record = json.loads(path.read_text())
            if not isinstance(record, dict):
                raise ValueError("not a JSON object")
            results[path.stem] = dict(record, source_file=f"results/{path.name}")
        except (OSError, ValueError) as err:  # its section says so and how to make it again
            damaged[path.stem] = f"results/{path.name} is damaged: {err}"
            print(f"warning: {damaged[path.stem]}", file=sys.stderr)
    for path in sorted((out_dir / "results").glob("*.csv")):
        stem, _, name = path.stem.rpartition("_")
        if stem in results:
            number = r"-?\d+(\.\d+)?(e[-+]?\d+)?"  # a cell that spells one; "76/2" stays text
            results[stem][name] = [{k: json.loads(v) if re.fullmatch(number, v) else v
                                    for k, v in row.items()}
                                   for row in csv.DictReader(path.read_text().splitlines())]
    return results, damaged


def is_trial(record: dict) -> bool:
    """A run with anything but the default settings (a trial folder's report says what)."""
    return bool(record.get("trial") or record.get("quick") or record.get("overrides")
                or record.get("seed", runs.DEFAULT_SEED) != runs.DEFAULT_SEED)


def pick(record: dict, path: str, default=KeyError):
    """The value at ``path`` ("settings.l2") in ``record``, else ``default``."""
    value = record
    for key in path.split("."):
        value = value.get(key, KeyError) if isinstance(value, dict) else KeyError
    if value is KeyError and default is KeyError:  # the section says "not run" and what it lacks
        raise KeyError(path)
    return default if value is KeyError else value


def actors_of(record: dict, results: dict) -> list | None:
    """A record's actor set, else that of the record its command also wrote (Part 8 keeps none)."""
    return record.get("actors") or next((r["actors"] for r in results.values() if r.get("actors")
                                         and r.get("command") == record.get("command")), None)


def function_source(path: Path, name: str) -> str | None:
    """The source of the function ``name`` defined in ``path``, or None."""
    try:
        text = path.read_text()
        nodes = ast.walk(ast.parse(text))
    except (OSError, SyntaxError, ValueError):
        return None
    return next(("\n".join(text.splitlines()[node.lineno - 1:node.end_lineno]) for node in nodes
                 if isinstance(node, (ast.FunctionDef, ast.ClassDef)) and node.name == name), None)

# ===================================================== Formatting numbers for one output format

TEX_SPECIAL = {c: "\\" + c for c in "&%$#_{}"} | {"\\": r"\textbackslash{}",
                                                  "~": r"\textasciitilde{}", "^": r"\^{}"}


def filters(fmt: str) -> dict:
    """Jinja filters that write numbers and text for Markdown ("md") or LaTeX ("tex")."""
    tex = fmt == "tex"

    def sci(x):  # 2.7e-09 -> $2.7 \times 10^{-9}$, 1e-07 -> $10^{-7}$, 0.11 stays 0.11
        if 1e-3 <= abs(x) < 1e3:
            return f"{x:.2g}"
        mantissa, exponent = f"{x:.1e}".split("e")
        return ("$" + (mantissa + r" \times " if mantissa != "1.0" else "")
                + f"10^{{{int(exponent)}}}$")

    def pct(x, digits=4):  # significant digits: 0.9262 -> 92.62%, 0.85 -> 85%, 1.314 -> 131%
        text = f"{100 * x:.{max(0, digits - len(str(int(abs(100 * x)))))}f}"
        return (text.rstrip("0").rstrip(".") if "." in text else text) + (r"\%" if tex else "%")

    return {"pct": pct, "sci": sci, "mean": statistics.fmean, "std": statistics.pstdev,
            "num": lambda x: f"{x:,}" if isinstance(x, int) else f"{x:.3g}",
            "secs": lambda x: f"{x:.3g} s", "points": lambda x: f"{x:.1f} points",
            "t": lambda s: "".join(TEX_SPECIAL.get(c, c) for c in str(s)) if tex else str(s)}


def beside_default(results: dict, defaults: dict, f: dict):
    """For a trial's templates: ``was(stem, path(s), kind)``, the default run's value(s) as
    " (default six: 87.2%)" ("" for a record that is no trial, or a count of other actors), and
    ``unlike(stem)``: "other actors" or "other settings" where its targets do not apply, else ""."""
    def unlike(stem):
        r, d = results.get(stem) or {}, defaults.get(stem) or {}
        return "" if not is_trial(r) else "other actors" if actors_of(r, results) != actors_of(
            d, defaults) else "other settings" if r.get("settings") != d.get("settings") else ""

    def was(stem, paths, kind="pct"):
        d, label = defaults.get(stem) or {}, "default " + ("run" if "digits" in stem else "six")
        values = [pick(d, p, None) for p in ([paths] if isinstance(paths, str) else paths)]
        return "" if not is_trial(results.get(stem) or {}) or None in values or (
            kind == "num" and unlike(stem) == "other actors") else (
            f" ({label}: {' / '.join(map(f[kind], values))})")
    return was, unlike


# ==================================================================================== Rendering

def environment(fmt: str, results: dict, out_dir: Path, source_dir: Path,
                defaults: dict) -> jinja2.Environment:
    """A Jinja environment for one format: filters, the macros as ``k``, the data as globals."""
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(TEMPLATES), trim_blocks=True,
                             lstrip_blocks=True, undefined=jinja2.StrictUndefined,
                             keep_trailing_newline=True)
    env.filters.update(filters(fmt))
    # a figure's path when its file exists, else None (the macro then says it is missing)
    env.filters["image"] = lambda name: (lambda p: p if (out_dir / p).is_file() else None)(
        name if name.endswith(".png") else f"images/{name}.png")
    # width / height of a PNG, from its header (side-by-side figures get equal heights)
    env.filters["aspect"] = lambda path: operator.truediv(
        *struct.unpack(">II", (out_dir / path).read_bytes()[16:24]))
    data = tomllib.loads((TEMPLATES / "reference.toml").read_text())
    was, unlike = beside_default(results, defaults, env.filters)
    env.globals.update(fmt=fmt, figno=count(1).__next__, R=results, REF=data["comparison"],
                       have=lambda *keys: all(k in results for k in keys), was=was,
                       unlike=unlike, DROPPED=data["dropped"], pick=pick, f=env.filters,
                       trial=any(map(is_trial, results.values())),
                       actors_of=lambda r: actors_of(r, results), DEFAULT_ACTORS=[*DEFAULT_ACTORS],
                       source=lambda file, name: function_source(source_dir / file, name))
    env.globals["k"] = env.get_template("macros.j2").make_module()
    return env


def render_section(env: jinja2.Environment, results: dict, spec: tuple, damaged: dict) -> str:
    """One section: its heading, then its template, or why it cannot be shown."""
    template, key, heading, command = spec
    k, record = env.globals["k"], results.get(key)
    text = k.h(1, heading)
    if key and record is None:
        return text + k.not_run(command, damaged.get(key, f"no results/{key}.json"))
    try:
        return text + env.get_template(f"{template}.j2").render(r=record)
    except (jinja2.UndefinedError, LookupError, TypeError, ValueError) as err:
        # a results file of another version lacks what the prose needs: say so, do not crash
        why = str(err).replace("'", "")
        return text + k.not_run(command, f"results/{key}.json lacks a value the text needs: {why}")


def prose_words(tex: str) -> int:
    """Words of running text in deepnn.tex: outside tables, figures and their captions,
    listings, math and provenance lines."""
    body = tex.partition(r"\begin{document}")[2]
    body = re.sub(r"\\begin\{(center|figure|lstlisting|align\*)\}.*?\\end\{\1\}", " ", body,
                  flags=re.S)
    body = re.sub(r"\\provenance\{.*\}$", " ", body, flags=re.M)
    body = re.sub(r"\$[^$]*\$", " ", body)
    body = re.sub(r"\\[A-Za-z]+\*?", " ", body)
    return sum(1 for word in body.split() if re.search("[A-Za-z]", word))


def compile_pdf(tex_path: Path) -> tuple[str, int | None]:
    """pdflatex in a temporary folder, the PDF moved beside ``tex_path``: (what happened, pages)."""
    if shutil.which("pdflatex") is None:
        return "pdflatex not installed: wrote deepnn.tex only (see README.md)", None
    with tempfile.TemporaryDirectory(dir=tex_path.parent, prefix=".pdflatex-") as tmp:
        try:
            done = subprocess.run(["pdflatex", "-interaction=nonstopmode", "-halt-on-error",
                                   f"-output-directory={tmp}", tex_path.name],
                                  cwd=tex_path.parent, capture_output=True, text=True, timeout=300,
                                  env={**os.environ, "max_print_line": "10000"})  # no wrapping
        except (OSError, subprocess.TimeoutExpired) as err:
            return f"pdflatex failed ({err})", None
        if done.returncode != 0:
            return "pdflatex failed:\n" + "\n".join(done.stdout.splitlines()[-12:]), None
        pages = int(re.search(r"Output written on .*?\((\d+) pages?", done.stdout, re.S)[1])
        pdf = tex_path.with_suffix(".pdf")
        os.replace(Path(tmp) / pdf.name, pdf)
    return f"wrote {pdf} ({pages} pages)", pages


def build_report(out_dir: Path, source_dir: Path = PROJECT_DIR, pdf: bool = True) -> dict:
    """Write <out>/REPORT.md and <out>/deepnn.tex (and deepnn.pdf); say what was written. A trial
    folder's numbers stand beside those of the default run (the project's results/)."""
    out_dir = Path(out_dir)
    results, damaged = load_results(out_dir)
    trials = [r for r in results.values() if is_trial(r)]
    defaults = {k: r for k, r in (load_results(PROJECT_DIR)[0] if trials else {}).items()
                if not is_trial(r)}
    missing = [(spec[2], spec[3]) for spec in SECTIONS
               if trials and spec[1] and spec[1] not in results and spec[1] not in damaged]
    shown = out_dir.relative_to(PROJECT_DIR) if out_dir.is_relative_to(PROJECT_DIR) else out_dir
    written = {"md": out_dir / "REPORT.md", "tex": out_dir / "deepnn.tex"}
    for fmt, path in written.items():
        env = environment(fmt, results, out_dir, source_dir, defaults)
        sections = [env.get_template("trial.j2").render(trials=trials, missing=missing,
                                                        out=str(shown))] * bool(trials)
        sections += [render_section(env, results, spec, damaged) for spec in SECTIONS
                     if (spec[2], spec[3]) not in missing]
        text = env.get_template("report.j2").render(sections=sections)
        write_text(path, re.sub(r"\n{3,}", "\n\n", text))  # the macros' blank lines, collapsed
    note, pages = compile_pdf(written["tex"]) if pdf else ("PDF not asked for", None)
    return written | {"pdf": note, "pages": pages, "words": prose_words(text)}

# ==================================================================================== --run-all

class StepFailed(RuntimeError):
    pass


def run_all(steps, seed: int, quick: bool, out_dir: Path | None, cwd: Path = PROJECT_DIR) -> float:
    """Run each step with ``--seed S [--quick] [--out DIR]``; StepFailed at the first failure."""
    start = time.perf_counter()
    for index, (what, argv) in enumerate(steps, 1):
        command = [sys.executable, *argv, "--seed", str(seed), *(["--quick"] if quick else []),
                   *(["--out", str(out_dir)] if out_dir else [])]
        shown = " ".join(["python", *command[1:]])
        print(f"[{index}/{len(steps)}] {what}: {shown}", flush=True)
        step_start = time.perf_counter()
        code = (run_here(argv[0], command[2:]) if argv[0] in IN_PROCESS and cwd == PROJECT_DIR
                else subprocess.run(command, cwd=cwd).returncode)
        seconds = time.perf_counter() - step_start
        if code != 0:
            raise StepFailed(f"step {index}/{len(steps)} ({what}) failed with exit code {code} "
                             f"after {seconds:.1f} s: {shown}")
        print(f"[{index}/{len(steps)}] {what}: done in {seconds:.1f} s "
              f"(total {time.perf_counter() - start:.1f} s)", flush=True)
    total = time.perf_counter() - start
    print(f"all {len(steps)} steps done in {total:.1f} s ({total / 60:.1f} min)", flush=True)
    return total


def run_here(script: str, argv) -> int:
    """A script's main in this process (its exit code): importing TensorFlow takes seconds.
    sys.argv is the script's meanwhile, as its results record the command line."""
    saved, sys.argv = sys.argv, [script, *argv]
    try:
        runs.main_guard(lambda: importlib.import_module(Path(script).stem).main(argv))
    except SystemExit as stop:
        return stop.code if isinstance(stop.code, int) else 1
    except Exception:  # a bug: its traceback, and the step fails as a process would
        traceback.print_exc()
        return 1
    finally:
        sys.argv = saved
    return 0


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, help="folder of results/ and images/, and of the "
                        "report (default: the project; runs/<tag>/ for a trial)")
    parser.add_argument("--run-all", action="store_true", help="first run every part in order")
    parser.add_argument("--with-bench", action="store_true", help="--run-all: and the benchmarks")
    parser.add_argument("--seed", type=int, default=runs.DEFAULT_SEED, help="--run-all: their seed")
    parser.add_argument("--quick", action="store_true", help="--run-all: a smoke run (a trial)")
    parser.add_argument("--no-pdf", action="store_true", help="do not run pdflatex")
    args = parser.parse_args(argv)
    if args.seed < 0:
        raise runs.UserError(f"--seed {args.seed}: use a seed of 0 or more")
    # a trial's report goes where the scripts put the trial: runs/quick-seed1/ and the like
    out_dir = (args.out or runs.Run("report.py", args.seed, args.quick).out).resolve()
    runs.check_writable(out_dir)
    if args.run_all:
        steps = STEPS + (BENCH_STEPS if args.with_bench else ())
        try:
            run_all(steps, args.seed, args.quick, out_dir if out_dir != PROJECT_DIR else None)
        except StepFailed as err:
            print(f"error: {err}. The results of the steps before it are kept.", file=sys.stderr)
            return 1
    start = time.perf_counter()
    written = build_report(out_dir, pdf=not args.no_pdf)
    print(f"wrote {written['md']} and {written['tex']} ({written['words']} words of prose) "
          f"in {time.perf_counter() - start:.2f} s; {written['pdf']}")
    return 0


if __name__ == "__main__":
    runs.main_guard(lambda: sys.exit(main()))
