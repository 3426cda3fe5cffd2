"""report.py on a folder of generated results and images: every part, not run, quick, LaTeX."""
import json
import struct
import subprocess
import sys
import textwrap
import time
import zlib
from pathlib import Path

import pytest

import report

PROJECT = Path(__file__).resolve().parents[1]
MISSING = "faces_part9"  # the one section the fixture leaves out


def tiny_png(path: Path) -> None:
    """A valid 1x1 grey PNG written by hand (no matplotlib: keeps the test in milliseconds)."""
    def chunk(kind, data):
        return (struct.pack(">I", len(data)) + kind + data
                + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF))
    png = (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 1, 1, 8, 0, 0, 0, 0))
           + chunk(b"IDAT", zlib.compress(b"\x00\x80")) + chunk(b"IEND", b""))
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(png)


METRICS = {
    "digits_part1": {"train_count": 60000, "test_count": 10000},
    "digits_part3": {"softmax_max_rel_error": 3.1e-9, "tanh_max_rel_error": 2.2e-8},
    "digits_part4": {"softmax_test_accuracy": 0.9263, "tanh_test_accuracy": 0.9831,
                     "tanh_seconds_per_epoch": 0.41},
    "digits_part5": {"noise_linear_test_accuracy": 0.4410, "noise_logistic_test_accuracy": 0.8377},
    "get_all_imgs": {"kept_total": 1008, "rows_total": 1252},
    "faces_part7": {"test_accuracy": 0.9111, "validation_accuracy": 0.90, "train_accuracy": 1.0},
    "deepfaces_part10": {"test_accuracy": 0.9833, "error_rate_reduction": 0.1234,
                         "train_accuracy": 1.0, "validation_accuracy": 0.99},
    "bench_train_speed": {"sklearn_over_numpy_ratio": 2.5, "keras_over_numpy_ratio": 3.4,
                          "sklearn_minus_numpy_accuracy_points": -0.1,
                          "keras_minus_numpy_accuracy_points": 0.5},
}


def write_record(out: Path, stem: str, quick=False, **extra) -> None:
    record = {"script": stem.split("_part")[0] + ".py", "part": stem, "seed": 7,
              "command": f"python {stem}.py --seed 7" + (" --quick" if quick else ""),
              "quick": quick, "git_commit": "abc1234", "settings": {"epochs": 20, "lr": 0.01},
              "timings": {"seconds": 12.5, "train": 3.25},
              "metrics": METRICS.get(stem, {"some_metric": 1.5}),
              "figures": [f"images/{stem}_curves.png"], **extra}
    (out / "results").mkdir(parents=True, exist_ok=True)
    (out / "results" / f"{stem}.json").write_text(json.dumps(record))
    tiny_png(out / "images" / f"{stem}_curves.png")


@pytest.fixture
def results_dir(tmp_path):
    for section in report.SECTIONS:
        if section.key == MISSING:
            continue
        extra = {}
        if section.key == "digits_part3":
            extra["finite_differences"] = [
                {"network": "tanh", "param": "W1", "coordinate": "(3, 4)", "analytic": 0.51234,
                 "numeric": 0.51235, "rel_error": 1e-9},
                {"network": "tanh", "param": "b0", "coordinate": "(7,)", "analytic": 0.0,
                 "numeric": 0.0, "rel_error": 0.0}]
            extra["gradcheck_table"] = "results/digits_part3_gradcheck.csv"
            (tmp_path / "results").mkdir(exist_ok=True)
            (tmp_path / "results" / "digits_part3_gradcheck.csv").write_text(
                "network,array,index,analytic,numeric,rel_error\n"
                "softmax,W,3/4,0.25,0.25,1e-12\n"
                "tanh,W0,100/7,0.0031415,0.0031416,2e-9\n")
        if section.key == "faces_part7":
            extra["hidden_sweep"] = [
                {"hidden_units": 300, "train_accuracy": 1.0, "validation_accuracy": 0.8765,
                 "test_accuracy": 0.8712},
                {"hidden_units": 600, "train_accuracy": 1.0, "validation_accuracy": 0.8456,
                 "test_accuracy": 0.8654}]
        if section.key == "digits_part6":
            extra["grid"] = [{"N": 1, "K": 8, "brand_new_column": 4.5}]
            extra["notes"] = {"formula": "max(0, W0 * x * sign)", "shape": [7, 7, 1024]}
        write_record(tmp_path, section.key, quick=(section.key == "digits_part4"), **extra)
    tiny_png(tmp_path / "images" / "digits_part1_unlisted_extra.png")
    return tmp_path


def section_text(markdown: str, heading: str) -> str:
    start = markdown.index(f"## {heading}")
    end = markdown.find("\n## ", start + 1)
    return markdown[start:end if end > 0 else None]


def test_every_part_has_a_section_and_the_missing_one_is_not_run(results_dir):
    written = report.build_report(results_dir, pdf=False)
    markdown = written["markdown"].read_text()
    for section in report.SECTIONS:
        assert f"## {section.heading}" in markdown
    missing = next(s for s in report.SECTIONS if s.key == MISSING)
    text = section_text(markdown, missing.heading)
    assert "Not run" in text and f"`{missing.command}`" in text
    present = section_text(markdown, report.SECTIONS[0].heading)
    assert "Not run" not in present
    assert "seed 7" in present and "abc1234" in present and "`epochs`" in present
    # the handout's order: Part 1 before the datasets, before Part 7, before Part 10, benches last
    order = [markdown.index(f"## {s.heading}") for s in report.SECTIONS]
    assert order == sorted(order)


def test_reference_numbers_sit_beside_ours(results_dir):
    markdown = report.build_report(results_dir, pdf=False)["markdown"].read_text()
    part5 = section_text(markdown, "Part 5: multinomial logistic vs linear regression")
    assert "43.54%" in part5 and "82.92%" in part5   # the report we reproduce
    assert "44.1%" in part5 and "83.77%" in part5    # ours, from the generated results
    part3 = section_text(markdown, "Part 3: the gradient, checked by finite differences")
    assert "0.98419 / 0.98434" in part3 and "0.000477 / 0.000534" in part3
    assert "0.51234 / 0.51235" in part3              # our W1 row found in the results' table
    assert "0.0031415 / 0.0031416" in part3          # our W0 row, from the CSV it names
    assert "**Table `results/digits_part3_gradcheck.csv`**" in part3 and "| 100/7 |" in part3
    part7 = section_text(markdown, "Part 7: a tanh network on 60x60 faces")
    for number in ("92.2%", "82.2%", "85.0%", "83.9%", "83.3%", "100.0%"):
        assert number in part7
    assert "87.12%" in part7 and "86.54%" in part7   # our 300- and 600-unit test accuracies
    part10 = section_text(markdown, "Part 10: pretrained activations as face features")
    assert "97.8%" in part10 and "77.2%" in part10 and "76.7%" in part10
    # error-rate reduction 12.34% against the handout's >= 30%: flagged as not met
    row = next(line for line in part10.splitlines() if "error-rate reduction" in line)
    assert "12.34%" in row and "30.0%" in row and "**no**" in row
    bench = section_text(markdown, "Benchmark: training speed against scikit-learn and Keras")
    row = next(line for line in bench.splitlines() if "scikit-learn seconds" in line)
    assert "2.50x" in row and "| yes |" in row
    row = next(line for line in bench.splitlines() if "scikit-learn test accuracy" in line)
    assert "within ± 0.3" in row and "| yes |" in row     # -0.1 points: equal accuracy
    row = next(line for line in bench.splitlines() if "Keras test accuracy" in line)
    assert "**no**" in row                                # 0.5 points apart: not equal


def test_quick_results_are_flagged_not_quoted(results_dir):
    markdown = report.build_report(results_dir, pdf=False)["markdown"].read_text()
    part4 = section_text(markdown, "Part 4: training by mini-batch gradient descent")
    assert "Warning" in part4 and "not be quoted" in part4
    row = next(line for line in part4.splitlines() if "softmax network, test accuracy" in line)
    assert "not quotable" in row and "| yes |" not in row
    summary = section_text(markdown, "Summary")
    assert "quick run (not quotable)" in summary
    part1 = section_text(markdown, "Part 1: the MNIST dataset")
    assert "Warning" not in part1


def test_figures_tables_and_unknown_keys_are_rendered(results_dir):
    (results_dir / "images" / "digits_part2_curves.png").unlink()  # listed but gone
    markdown = report.build_report(results_dir, pdf=False)["markdown"].read_text()
    part1 = section_text(markdown, "Part 1: the MNIST dataset")
    assert "![curves](images/digits_part1_curves.png)" in part1
    assert "(images/digits_part1_unlisted_extra.png)" in part1
    assert "60,000" in part1
    assert "digits_part2_curves.png` is listed but missing" in markdown
    part6 = section_text(markdown, "Part 6: backpropagation against one gradient at a time")
    assert "| N | K | brand_new_column |" in part6 and "| 1 | 8 | 4.5 |" in part6
    # text from the data is shown literally: its asterisks are no emphasis
    assert "max(0, W0 \\* x \\* sign)" in part6
    tex = (results_dir / "deepnn.tex").read_text()
    assert "max(0, W0 * x * sign)" in tex and "\\emph{ x }" not in tex


def test_unreadable_results_file_is_reported_not_fatal(results_dir):
    (results_dir / "results" / "digits_part5.json").write_text("{not json")
    markdown = report.build_report(results_dir, pdf=False)["markdown"].read_text()
    part5 = section_text(markdown, "Part 5: multinomial logistic vs linear regression")
    assert "could not be read" in part5 and "python digits.py part5" in part5


def test_latex_has_the_same_sections_figures_and_listings(results_dir, tmp_path):
    source = tmp_path / "src"
    source.mkdir()
    (source / "digits.py").write_text(textwrap.dedent('''
        import numpy as np

        def softmax(o):
            """Row-wise softmax of N x 10 logits."""
            e = np.exp(o - o.max(axis=1, keepdims=True))
            return e / e.sum(axis=1, keepdims=True)
        '''))
    report.build_report(results_dir, source_dir=source, pdf=False)
    tex = (results_dir / "deepnn.tex").read_text()
    assert tex.startswith("\\documentclass") and tex.rstrip().endswith("\\end{document}")
    for section in report.SECTIONS:
        assert report.latex_inline(section.heading) in tex
    assert "\\includegraphics" in tex and "{images/digits_part1_curves.png}" in tex
    assert "\\begin{lstlisting}" in tex and "def softmax(o):" in tex
    assert "is defined in \\texttt{faces.py} yet" in tex   # a listing whose source is absent
    assert tex.count("\\begin{longtable}") == tex.count("\\end{longtable}")
    assert "43.54\\%" in tex and "Not run." in tex


def test_pdflatex_absent_is_said_not_fatal(results_dir, monkeypatch):
    monkeypatch.setattr(report.shutil, "which", lambda name: None)
    written = report.build_report(results_dir, pdf=True)
    assert "pdflatex is not on PATH" in written["pdf"]
    assert written["tex"].exists() and not (results_dir / "deepnn.pdf").exists()


def test_report_never_imports_tensorflow_and_is_fast(results_dir):
    code = ("import sys, report; report.main(['--out', sys.argv[1], '--no-pdf']); "
            "heavy = sorted(m for m in sys.modules if m.split('.')[0] in "
            "('tensorflow', 'keras', 'sklearn', 'torch', 'digits', 'faces', 'deepfaces')); "
            "assert not heavy, heavy")
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", code, str(results_dir)], cwd=PROJECT,
                          capture_output=True, text=True, timeout=60)
    seconds = time.perf_counter() - start
    assert done.returncode == 0, done.stderr
    assert "wrote" in done.stdout and (results_dir / "REPORT.md").exists()
    assert seconds < 10  # usually ~0.2 s; training anything would take far longer


def test_run_all_runs_steps_in_order_and_stops_at_a_failure(tmp_path, capsys):
    log = tmp_path / "argv.log"
    ok = tmp_path / "ok.py"
    ok.write_text(f"import sys\nopen({str(log)!r}, 'a').write(' '.join(sys.argv[1:]) + '\\n')\n")
    bad = tmp_path / "bad.py"
    bad.write_text("import sys\nsys.exit(3)\n")
    steps = [("first", [str(ok), "all"], ("seed", "quick", "out")),
             ("second", [str(ok)], ("quick",)),
             ("broken", [str(bad)], ()),
             ("never", [str(ok), "never"], ())]
    with pytest.raises(report.StepFailed) as err:
        report.run_all(steps, seed=5, quick=True, out_dir=tmp_path / "o", cwd=tmp_path)
    assert "broken" in str(err.value) and "exit code 3" in str(err.value)
    calls = log.read_text().splitlines()
    assert calls == [f"all --seed 5 --quick --out {tmp_path / 'o'}", "--quick"]
    printed = capsys.readouterr().out
    assert "[1/4] first" in printed and "[2/4] second: done in" in printed
    assert "[4/4]" not in printed


def test_run_all_prints_the_total_time(tmp_path, capsys):
    ok = tmp_path / "ok.py"
    ok.write_text("print('fine')\n")
    total = report.run_all([("only", [str(ok)], ())], seed=0, quick=False, out_dir=None,
                           cwd=tmp_path)
    assert total >= 0 and "all 1 steps done in" in capsys.readouterr().out


@pytest.mark.parametrize("value, text", [(0.922, "92.2%"), (0.4354, "43.54%"), (1.0, "100.0%"),
                                         (0.85, "85.0%"), (0.98765, "98.77%")])
def test_percent_format(value, text):
    assert report.fmt_percent(value) == text


@pytest.mark.parametrize("name, value, text", [
    ("best_iteration", 1225, "1,225"),            # 'iteration' holds 'ratio': read word by word
    ("keras_over_numpy_ratio", 3.2, "3.20x"),
    ("tanh_seconds_per_epoch", 0.41, "0.41 s"),
    ("error_rate_reduction", 0.857, "85.7%"),
    ("gain_points_mean", 6.1, "6.1"),             # points are not a fraction
    ("tanh_max_rel_error", 2.66e-9, "2.66e-09"),
])
def test_metric_format(name, value, text):
    assert report.fmt_value(name, value) == text


def test_long_table_keeps_rows_of_every_group():
    rows = [{"array": name, "i": i, "analytic": 0.1 * i} for name in ("W0", "b0", "W1")
            for i in range(30)]                   # 90 rows, more than the report shows
    _, headers, body = report.dict_table(rows)
    assert headers == ["array", "i", "analytic"]
    shown = [r[0] for r in body[:-1]]
    assert {"W0", "b0", "W1"} <= set(shown) and len(shown) <= report.MAX_TABLE_ROWS
    assert body[-1][0].startswith(f"... {90 - len(shown)} more rows")


def test_long_numeric_list_is_summarised_not_dumped():
    seconds = [0.9, 0.5, 0.7] + [0.6] * 27
    text = report.fmt_value("tanh_epoch_seconds", seconds)
    assert text.startswith("30 values: first 0.9 s, last 0.6 s")
    assert "median 0.6 s" in text and "range 0.5 s to 0.9 s" in text
    assert report.fmt_value("x_seconds", [0.5, 0.7]) == "0.5 s, 0.7 s"  # short lists stay whole


def test_latex_table_columns_fit_the_line_with_their_padding():
    tex = report.to_latex([("table", ["a", "b", "c"], [["1", "2", "3"]])])
    assert r"p{\dimexpr0.330\linewidth-2\tabcolsep\relax}" in tex
    assert report.latex_escape("a_b") == r"a\_\allowbreak{}b"
