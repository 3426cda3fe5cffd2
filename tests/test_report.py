"""report.py on a copy of the committed results: changed, missing, partial and quick results,
LaTeX that compiles within the page limit, and --run-all. Fast and offline (no pdflatex: ~3 s)."""
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import report

PROJECT = Path(__file__).resolve().parents[1]


@pytest.fixture
def out(tmp_path):
    """A folder with a copy of results/ and the figures (linked: they are only read)."""
    shutil.copytree(PROJECT / "results", tmp_path / "results")
    (tmp_path / "images").symlink_to(PROJECT / "images", target_is_directory=True)
    return tmp_path


def edit(out: Path, stem: str, metrics=None, **fields) -> None:
    """Change metrics and top-level fields of results/<stem>.json."""
    path = out / "results" / f"{stem}.json"
    record = json.loads(path.read_text())
    record["metrics"].update(metrics or {})
    record.update(fields)
    path.write_text(json.dumps(record))


def build(out: Path, **kwargs) -> tuple[str, str]:
    written = report.build_report(out, pdf=False, **kwargs)
    return written["md"].read_text(), written["tex"].read_text()


def section(text: str, heading: str) -> str:
    """The text from ``heading`` to the next heading (Markdown ## or LaTeX \\section*)."""
    start = text.index(heading)
    ends = [m.start() for m in re.finditer(r"\n## |\\section\*", text) if m.start() > start]
    return text[start:ends[0] if ends else None]


def test_every_section_of_the_committed_results_is_written(out):
    md, tex = build(out)
    assert "Not run" not in md and "Not run" not in tex and "Warning" not in md


def rewrite(out: Path, stem: str, old: str, change) -> None:
    """Apply ``change(record, settings)`` when the settings still hold ``old`` (the old layout)."""
    path = out / "results" / f"{stem}.json"
    record = json.loads(path.read_text())
    if old in record["settings"]:
        change(record, record["settings"])
        path.write_text(json.dumps(record))


def test_results_in_the_layout_of_the_rewritten_scripts_are_read_too(out):
    """Settings flat (no "train" table), split and actors beside them: the same report."""
    def part4(r, s):
        s["n_val"] = s.pop("n_validation")
        s["softmax"].pop("init"), s["tanh"].pop("init")

    def part7(r, s):
        r["settings"] = {**s["train"], "hidden_units": s["hidden_sweep"], "shifts": s["shifts"]}
        r["actors"], r["split"] = s["actors"], {k[2:]: v for k, v in s["split"].items()
                                                if k.startswith("n_")}

    def part8(r, s):
        r["settings"] = {**s["train"], "l2": s["lambdas"]}
        r["n_train_per_actor"] = s["n_train_per_actor"]
        r["per_lambda"] = {"W0_norm_mean": s["W0_norm_mean_per_lambda"]}

    def part10(r, s):
        r["settings"] = s["train"]
        r.update(backbone=s["backbone"], layer=s["layer"], feature_shape=s["feature_shape"],
                 split={"train_eval": s["split"]["n_train"], "val": s["split"]["n_val"]})

    rewrite(out, "digits_part3", "relative_error",
            lambda r, s: [s.pop(k) for k in ("weights_softmax", "relative_error")])
    rewrite(out, "digits_part4", "n_validation", part4)
    rewrite(out, "get_all_imgs", "actors", lambda r, s: r.update(actors=s.pop("actors")))
    rewrite(out, "faces_part7", "train", part7)
    rewrite(out, "faces_part8", "train", part8)
    rewrite(out, "faces_part9", "train",
            lambda r, s: r.update(settings={**s["train"], "actors": s["actors"]}))
    rewrite(out, "deepfaces_part10", "train", part10)
    rewrite(out, "deepfaces_part11", "train",
            lambda r, s: r.update(settings=s["train"], feature_shape=s["feature_shape"]))
    md, tex = build(out)
    assert "Not run" not in md and "Not run" not in tex


def test_changed_numbers_appear_formatted_in_both_outputs(out):
    edit(out, "faces_part7", {"test_accuracy": 0.7777})
    edit(out, "digits_part3", {"tanh_max_rel_error": 4.2e-8})
    edit(out, "digits_part4", {"softmax_test_accuracy": 0.9123})
    md, tex = build(out)
    assert "77.77%" in md and r"77.77\%" in tex
    assert r"$4.2 \times 10^{-8}$" in md and r"$4.2 \times 10^{-8}$" in tex
    assert "91.23%" in md and r"91.23\%" in tex
    # the comparison table says by how much a target is missed: 92.5% - 91.23% = 1.3 points
    assert "**not met: 1.3 points short**" in md and r"\textbf{not met: 1.3 points short}" in tex


def test_no_tracker_words_and_no_paths_outside_the_repository(out):
    md, tex = build(out)
    for text in (md, tex):
        assert not re.search(r"\bissues?\s*#?\d+", text, re.IGNORECASE)
        assert not re.search(r"(?<![\w.])/(home|work|tmp|usr|root)/", text)
        assert str(out) not in text


def test_a_missing_or_incomplete_results_file_says_not_run(out):
    (out / "results" / "faces_part9.json").unlink()
    edit(out, "faces_part8", {})
    record = json.loads((out / "results" / "faces_part8.json").read_text())
    del record["metrics"]["gain_points_mean"]
    (out / "results" / "faces_part8.json").write_text(json.dumps(record))
    (out / "results" / "digits_part6.json").write_text("{not json")
    md, tex = build(out)
    for heading, command in (("Part 9", "python faces.py part9"),
                             ("Part 8", "python faces.py part8"),
                             ("Part 6", "python digits.py part6")):
        assert "Not run" in section(md, f"## {heading}") and command in section(md, f"## {heading}")
        assert "Not run" in section(tex, rf"\section*{{{heading}")
    assert "Not run" not in section(md, "## Part 7")
    assert "results/digits_part6.json is damaged" in section(md, "## Part 6")  # not "no ..."
    assert "no results/faces_part9.json" in section(md, "## Part 9")
    row = next(line for line in md.splitlines() if "test gain of weight decay" in line)
    assert "| not run |" in row


def test_a_run_with_another_seed_is_quoted_beside_the_default_and_held_to_its_targets(out):
    edit(out, "digits_part4", {"softmax_test_accuracy": 0.9123}, seed=1, trial=True)
    default = json.loads((PROJECT / "results" / "digits_part4.json").read_text())["metrics"]
    md, tex = build(out)
    assert "A trial run." in md.split("## Ours")[0] and "seed 1" in md.split("## Ours")[0]
    row = next(line for line in md.splitlines() if "softmax net, test accuracy" in line)
    beside = report.filters("md")["pct"](default["softmax_test_accuracy"])
    assert f"91.23% (default run: {beside})" in row and "not met: 1.3 points short" in row
    assert "not quoted" not in md and "Warning" not in md and "not quoted" not in tex
    assert "(default run:" not in section(md, "## Part 3")  # a part of the default run itself


def test_the_latex_is_safe_and_the_prose_long_enough(out):
    md, tex = build(out)
    body = tex.partition(r"\begin{document}")[2]
    assert not re.search(r"(?<!\\)%", body)          # a bare % would comment out the rest
    assert tex.count("$") % 2 == 0 and md.count("$") % 2 == 0
    assert "def softmax(" in md and r"\begin{lstlisting}" in tex   # Part 2's listing, via ast
    assert report.prose_words(tex) >= 2500


def test_a_listing_whose_function_is_gone_is_left_out(out, tmp_path):
    source = tmp_path / "src"
    source.mkdir()
    (source / "digits.py").write_text("def something_else():\n    return 1\n")
    md, tex = build(out, source_dir=source)
    assert "def softmax(" not in md and r"\begin{lstlisting}" not in tex


def test_the_pdf_has_at_most_16_pages(out):
    if shutil.which("pdflatex") is None:
        pytest.skip("pdflatex not installed")
    written = report.build_report(out, pdf=True)
    assert written["pages"] is not None, written["pdf"]
    assert written["pages"] <= 16
    assert (out / "deepnn.pdf").exists() and not list(out.glob("*.aux"))


def test_writes_are_atomic(tmp_path, monkeypatch):
    path = tmp_path / "REPORT.md"
    path.write_text("old")

    def full_disk(*args):
        raise OSError("No space left on device")
    monkeypatch.setattr(report.os, "replace", full_disk)
    with pytest.raises(OSError):
        report.write_text(path, "new")
    assert path.read_text() == "old" and list(tmp_path.iterdir()) == [path]


def test_report_imports_no_training_code(out):
    code = ("import sys, report; report.main(['--out', sys.argv[1], '--no-pdf']); "
            "heavy = [m for m in sys.modules if m.split('.')[0] in "
            "('tensorflow', 'keras', 'sklearn', 'digits', 'faces', 'deepfaces')]; "
            "assert not heavy, heavy")
    done = subprocess.run([sys.executable, "-c", code, str(out)], cwd=PROJECT,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert "words of prose" in done.stdout


def test_run_all_passes_the_flags_and_stops_at_the_first_failure(tmp_path, capsys):
    log = tmp_path / "argv.log"
    ok = tmp_path / "ok.py"
    ok.write_text(f"import sys\nopen({str(log)!r}, 'a').write(' '.join(sys.argv[1:]) + '\\n')\n")
    bad = tmp_path / "bad.py"
    bad.write_text("import sys\nsys.exit(3)\n")
    steps = [("first", [str(ok), "all"]), ("broken", [str(bad)]), ("never", [str(ok)])]
    with pytest.raises(report.StepFailed, match=r"broken.*exit code 3"):
        report.run_all(steps, seed=5, quick=True, out_dir=tmp_path / "o", cwd=tmp_path)
    assert log.read_text().splitlines() == [f"all --seed 5 --quick --out {tmp_path / 'o'}"]
    printed = capsys.readouterr().out
    assert "[1/3] first: done in" in printed and "[3/3]" not in printed


def test_the_text_says_what_the_results_hold(out):
    """FaceScrub counts add up and name the failed downloads; Part 10 names its pooling;
    Part 9 names the standardised pixels; Appendix B's layer is the one Part 10 chose."""
    fetch = json.loads((out / "results" / "get_all_imgs.json").read_text())
    part10 = json.loads((out / "results" / "deepfaces_part10.json").read_text())
    md, _ = build(out)
    m = fetch["metrics"]
    failed = m["download_failed_total"] + m["missing_offline_total"]
    assert f"{failed:,} could not be obtained" in md
    for actor, a in fetch["per_actor"].items():
        cells = re.search(rf"\| {actor} \| ([\d,]+) \| ([\d,]+) \| ([\d,]+) \| ([\d,]+) \|", md)
        rows, lost, mismatch, kept = (int(c.replace(",", "")) for c in cells.groups())
        assert rows == a["rows"] == lost + mismatch + kept, actor
    assert "average-pooled over" in md and "weight on a raw" not in md
    assert "per-image standardised pixel" in md
    bench = json.loads((out / "results" / "bench_features_speed.json").read_text())
    if bench["settings"].get("mobilenet_layer") == part10["layer"]:
        assert f"`{part10['layer']}`" in section(md, "Appendix B")


def test_run_here_gives_a_scripts_exit_code_as_a_process_would(tmp_path, monkeypatch, capsys):
    """--run-all runs the TensorFlow scripts in its own process: their exit codes must be those
    the script would give on its own (0, 2 for a UserError, 1 for a bug, with its traceback)."""
    (tmp_path / "fine_script.py").write_text(
        "import sys\ndef main(argv):\n    print('ran', argv, 'as', sys.argv)\n")
    (tmp_path / "bad_input_script.py").write_text(
        "from apparatus.inputs import UserError\n"
        "def main(argv):\n    raise UserError('data/x.npz: damaged. Delete it.')\n")
    (tmp_path / "buggy_script.py").write_text("def main(argv):\n    return 1 / 0\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    assert report.run_here("fine_script.py", ["all", "--seed", "3"]) == 0
    # the command line its results record is its own, not report.py's
    assert "ran ['all', '--seed', '3'] as ['fine_script.py', 'all', '--seed', '3']" in (
        capsys.readouterr().out)
    assert sys.argv[0] != "fine_script.py"
    assert report.run_here("bad_input_script.py", []) == 2
    assert "error: data/x.npz: damaged" in capsys.readouterr().err
    assert report.run_here("buggy_script.py", []) == 1
    assert "ZeroDivisionError" in capsys.readouterr().err
