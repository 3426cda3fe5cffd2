"""report.py on a trial folder: another actor set and a --set value, Parts 7-10 only. Its own
numbers are quoted with the default run's (the committed results/) beside them, the banner
says what differs, and nothing of the default six is shown as the trial's. Offline (~1 s)."""
import json
import re
import shutil
from pathlib import Path

import pytest

import report

PROJECT = Path(__file__).resolve().parents[1]
ACTORS = ["Alec Baldwin", "Bill Hader", "Steve Carell", "Kristin Chenoweth"]
PAIR = ["Alec Baldwin", "Steve Carell"]   # Part 9's setting `actors`, changed with --set
OWN = {"faces_part7": {"test_accuracy": 0.7654, "validation_accuracy": 0.8123},
       "faces_part8": {"gain_points_mean": 3.3}, "get_all_imgs": {"kept_total": 682},
       "deepfaces_part10": {"test_accuracy": 0.9345, "part7_test_accuracy": 0.7654}}


def committed(stem: str) -> dict:
    return json.loads((PROJECT / "results" / f"{stem}.json").read_text())


@pytest.fixture
def trial(tmp_path):
    """The committed face results, made over into a run of ACTORS with --set actors=PAIR."""
    (tmp_path / "results").mkdir()
    (tmp_path / "images").symlink_to(PROJECT / "images", target_is_directory=True)
    for stem in ("get_all_imgs", "faces_part7", "faces_part8", "faces_part9", "deepfaces_part10"):
        record = committed(stem)
        script = record["script"]
        record.update(trial=True, command=f"python {script} --actors {','.join(ACTORS)}")
        record["metrics"].update(OWN.get(stem, {}))
        if "actors" in record:
            record["actors"] = ACTORS
        if script == "faces.py":
            record["overrides"] = {"actors": PAIR}
        if stem == "deepfaces_part10":  # the chosen layer's row of the table, too
            record["metrics"][f"test_accuracy_{record['layer']}"] = OWN[stem]["test_accuracy"]
        if stem == "faces_part9":
            record["settings"]["actors"] = PAIR
            record["metrics"]["units_baldwin"] = record["metrics"].pop("units_drescher")
        (tmp_path / "results" / f"{stem}.json").write_text(json.dumps(record))
    return tmp_path


def test_a_trial_folder_quotes_its_own_numbers_beside_the_default_six(trial):
    written = report.build_report(trial, pdf=False)
    md, tex = written["md"].read_text(), written["tex"].read_text()
    pct = report.filters("md")["pct"]
    banner, body = md.split("## Ours")
    # the banner names both differences, and the parts left out with their commands
    assert "actor set " + ", ".join(ACTORS) in banner
    assert "`--set actors=('Alec Baldwin', 'Steve Carell')`" in banner
    assert f"`python faces.py part7" not in banner      # Part 7 ran: it is not listed
    assert f"`python digits.py part4 --seed 0 --out {trial}`" in banner
    assert "## Part 4" not in body and "Not run" not in md and "not quoted" not in md
    # Part 7 and Part 10 quote the trial's test accuracy and the default six's beside it
    for stem, heading in (("faces_part7", "## Part 7"), ("deepfaces_part10", "## Part 10")):
        text = md[md.index(heading):]
        own, default = OWN[stem]["test_accuracy"], committed(stem)["metrics"]["test_accuracy"]
        assert f"{pct(own)} (default six: {pct(default)})" in text
    assert r"76.54\% (default six: " in tex
    # no number of the default six as the trial's own, no target of theirs, no verdict
    for stem in ("faces_part7", "deepfaces_part10"):
        default = pct(committed(stem)["metrics"]["test_accuracy"])
        assert all(md[m.start() - 14:m.start()] == "(default six: "
                   for m in re.finditer(re.escape(default), md)), default
    assert "1,008" not in md and "| met |" not in md and "not met" not in md
    assert "for Alec Baldwin and" in md and "The two actors are Alec Baldwin and Steve Carell" in md
    row = next(line for line in md.splitlines() if "| 7 | test accuracy" in line)
    assert "no target: other actors" in row and ">= 90%" not in row.replace("$\\geq$", ">=")


def test_the_command_of_a_missing_part_keeps_the_actors_and_settings(trial):
    (trial / "results" / "faces_part8.json").unlink()
    md = report.build_report(trial, pdf=False)["md"].read_text()
    banner = md.split("## Ours")[0]
    assert ("`python faces.py part8 --actors \"Alec Baldwin,Bill Hader,Steve Carell,Kristin "
            f"Chenoweth\" --seed 0 --set \"actors=('Alec Baldwin', 'Steve Carell')\" --out {trial}`"
            ) in banner
    assert f"`python digits.py part4 --seed 0 --out {trial}`" in banner   # no actors, no --set
    assert "## Part 8" not in md and "| 8 |" not in md
