"""The apparatus package: inputs (search path, sha256, downloads, safe pickles), runs, face data."""
import functools
import hashlib
import http.server
import io
import os
import pickle
import subprocess
import sys
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import numpy as np
import pytest

from apparatus import facedata, inputs, runs
from apparatus.inputs import InputFormatError, MissingInputError, UserError
from apparatus.runs import setting


@pytest.fixture
def data_dirs(tmp_path, monkeypatch):
    """A project data/ and two DEEPNN_DATA folders, all empty, in tmp_path."""
    dirs = [tmp_path / n for n in ("data", "shared1", "shared2")]
    for d in dirs:
        d.mkdir()
    monkeypatch.setattr(inputs, "DATA_DIR", dirs[0])
    monkeypatch.setenv(inputs.DATA_ENV, os.pathsep.join(map(str, dirs[1:])))
    return dirs


@pytest.fixture
def served(tmp_path):
    """An HTTP server on 127.0.0.1 serving the folder tmp_path/www; yields its base URL."""
    www = tmp_path / "www"
    www.mkdir()
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(www))
    handler.log_message = lambda *a: None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield www, f"http://127.0.0.1:{server.server_address[1]}/"
    server.shutdown()


# ---------------------------------------------------------------- inputs -------------

def test_search_path_is_data_then_each_env_folder(data_dirs):
    assert inputs.search_dirs() == [d.resolve() for d in data_dirs]
    (data_dirs[2] / "x.txt").write_text("2")
    assert inputs.locate("x.txt") == data_dirs[2] / "x.txt"
    (data_dirs[1] / "x.txt").write_text("1")
    assert inputs.locate("x.txt") == data_dirs[1] / "x.txt"


def test_a_copy_with_the_wrong_sha256_is_passed_over(data_dirs, monkeypatch):
    good = b"the real file"
    monkeypatch.setitem(inputs.REGISTRY, "f.bin", (None, (hashlib.sha256(good).hexdigest(),)))
    (data_dirs[0] / "f.bin").write_bytes(b"truncated")       # a damaged copy in data/ first
    (data_dirs[2] / "f.bin").write_bytes(good)
    assert inputs.find_input("f.bin") == data_dirs[2] / "f.bin"
    (data_dirs[2] / "f.bin").write_bytes(b"also bad")
    with pytest.raises(MissingInputError) as err:
        inputs.find_input("f.bin")
    assert "wrong sha256" in str(err.value) and str(data_dirs[0] / "f.bin") in str(err.value)


def test_missing_input_message_names_file_folders_and_address(data_dirs):
    with pytest.raises(MissingInputError) as err:
        inputs.find_input("snapshot50.pkl", download=False)
    text = str(err.value)
    assert "snapshot50.pkl" in text and str(data_dirs[1]) in text
    assert "guerzhoy" in text and "--offline" in text


def test_download_checks_the_sha256(data_dirs, served, monkeypatch):
    www, url = served
    (www / "f.bin").write_bytes(b"payload")
    monkeypatch.setitem(inputs.REGISTRY, "f.bin", (url + "f.bin",
                                                   (hashlib.sha256(b"payload").hexdigest(),)))
    path = inputs.find_input("f.bin")
    assert path == data_dirs[0] / "f.bin" and path.read_bytes() == b"payload"
    path.unlink()
    (www / "f.bin").write_bytes(b"replaced by the host")
    with pytest.raises(MissingInputError, match="failed"):
        inputs.find_input("f.bin")
    assert list(data_dirs[0].iterdir()) == []                # nothing half-written kept


class Boom:
    def __reduce__(self):
        return (os.system, ("echo owned",))


def test_restricted_unpickler_loads_arrays_and_refuses_code(tmp_path):
    weights = {"W0": np.arange(6, dtype=np.float32).reshape(2, 3), "b0": [np.float64(1.5)]}
    (tmp_path / "ok.pkl").write_bytes(pickle.dumps(weights, protocol=2))
    loaded = inputs.load_pickle(tmp_path / "ok.pkl")
    np.testing.assert_array_equal(loaded["W0"], weights["W0"])
    (tmp_path / "evil.pkl").write_bytes(pickle.dumps({"x": Boom()}))
    with pytest.raises(InputFormatError, match="refused"):
        inputs.load_pickle(tmp_path / "evil.pkl")
    with pytest.raises(InputFormatError):
        inputs.safe_unpickle(io.BytesIO(pickle.dumps(weights)[:20]), "cut.pkl")


def test_npy_object_loader_matches_numpy_and_checks_plain_arrays(tmp_path):
    weights = {"conv1": [np.ones((2, 2, 3, 4), np.float32), np.zeros(4, np.float32)]}
    np.save(tmp_path / "w.npy", np.array(weights, dtype=object), allow_pickle=True)
    loaded = inputs.load_npy_object(tmp_path / "w.npy")
    np.testing.assert_array_equal(loaded["conv1"][0], weights["conv1"][0])
    np.save(tmp_path / "plain.npy", np.arange(100.0))
    np.testing.assert_array_equal(inputs.load_npy_object(tmp_path / "plain.npy"), np.arange(100.0))
    (tmp_path / "cut.npy").write_bytes((tmp_path / "plain.npy").read_bytes()[:-80])
    with pytest.raises(InputFormatError, match="truncated"):
        inputs.load_npy_object(tmp_path / "cut.npy")


def test_atomic_write_keeps_the_old_file_when_writing_fails(tmp_path):
    target = tmp_path / "REPORT.md"
    inputs.write_text(target, "old")
    with pytest.raises(RuntimeError), inputs.atomic_path(target) as tmp:
        tmp.write_text("half")
        raise RuntimeError("disk full")
    assert target.read_text() == "old" and [p.name for p in tmp_path.iterdir()] == ["REPORT.md"]
    assert target.stat().st_mode & 0o777 == 0o644


def test_npz_roundtrip_refuses_objects_and_names_a_damaged_file(tmp_path):
    inputs.save_npz(tmp_path / "c.npz", a=np.arange(3), s=np.array(["x", "y"]))
    assert inputs.load_npz(tmp_path / "c.npz")["s"].tolist() == ["x", "y"]
    with pytest.raises(ValueError, match="object"):
        inputs.save_npz(tmp_path / "o.npz", a=np.array([{}], dtype=object))
    (tmp_path / "bad.npz").write_bytes(b"PK\x03\x04 not a zip")
    with pytest.raises(InputFormatError, match="bad.npz"):
        inputs.load_npz(tmp_path / "bad.npz")


# ---------------------------------------------------------------- runs ---------------

@dataclass(frozen=True)
class Part:
    hidden_units: tuple = (100, 300)   # a swept setting
    l2: float = 1e-4
    iterations: int = 1200
    optimizer: str = "adam"
    QUICK: ClassVar[dict] = {"iterations": 60}


def test_settings_take_the_quick_preset_then_overrides():
    s = runs.make_settings(Part, quick=True,
                           overrides=runs.parse_overrides(["hidden_units=600", "l2=1", "optimizer=sgd"]))
    assert s == Part(hidden_units=(600,), l2=1.0, iterations=60, optimizer="sgd")
    assert runs.make_settings(Part) == Part()
    with pytest.raises(UserError, match="give a value of type int"):
        runs.make_settings(Part, overrides={"iterations": "many"})
    with pytest.raises(UserError, match="name=value"):
        runs.parse_overrides(["hidden_units"])


@dataclass(frozen=True)
class Limited:
    units: tuple = setting((8, 16), ge=1)
    rate: float = setting(0.1, gt=0)
    momentum: float = setting(0.9, ge=0, lt=1)
    patience: int | None = setting(8, ge=1)
    optimizer: str = setting("adam", choices=("adam", "sgd"))
    flag: bool = True


@dataclass(frozen=True)
class Outer:
    inner: Limited = Limited()
    lower: float = 0.0
    upper: float = 1.0

    def __post_init__(self):  # a check across two settings
        if self.lower > self.upper:
            raise UserError("lower above upper")


@pytest.mark.parametrize("pair, words", [
    ("units=(8, 0)", r"units=\(8, 0\): give one or more numbers, each >= 1"),
    ("units=()", r"units=\(\): give one or more numbers"),
    ("units=('a',)", "each >= 1"),
    ("rate=0", "rate=0.0: give a number > 0"),
    ("momentum=1", "momentum=1.0: give a number >= 0 and < 1"),
    ("patience=0", "patience=0: give a number >= 1"),
    ("optimizer=rmsprop", "give one of adam, sgd"),
    ("flag=yes", "flag='yes': give True or False"),
    ("flag=1", "flag=1: give True or False"),
])
def test_a_setting_out_of_its_limits_is_refused_by_name(pair, words):
    with pytest.raises(UserError, match=words):
        runs.make_settings(Limited, overrides=runs.parse_overrides([pair]))


def test_help_lists_each_settings_default_and_range_nested_ones_by_their_dotted_name():
    text = runs.parser("Demo.", {"part1": Outer, "part2": None}).format_help()
    assert "part1: inner.units=(8, 16) [>= 1], inner.rate=0.1 [> 0]," in text
    assert "inner.optimizer='adam' [adam | sgd]" in text and "upper=1.0" in text
    assert "part2" not in text.split("settings for --set")[1]  # a part without settings
    assert all(len(line) <= 100 for line in text.splitlines())


def test_limits_pass_none_where_allowed_and_reach_nested_settings():
    s = runs.make_settings(Limited, overrides=runs.parse_overrides(["patience=None"]))
    assert s.patience is None
    with pytest.raises(UserError, match=r"inner=0: inner is a group .* --set inner.units="):
        runs.make_settings(Outer, overrides=runs.parse_overrides(["inner=0"]))
    with pytest.raises(UserError, match=r"--set inner.rate=-1.0: give a number > 0"):
        runs.make_settings(Outer, overrides=runs.parse_overrides(["inner.rate=-1"]))
    # overrides land together: each alone would break the check across the two
    both = runs.make_settings(Outer, overrides=runs.parse_overrides(["lower=2", "upper=3"]))
    assert (both.lower, both.upper) == (2.0, 3.0)


def start(tmp_path, *argv, parts={"part1": Part}):
    args = runs.parser("doc", parts).parse_args(list(argv))
    return runs.start("demo.py", args, parts)


def test_start_checks_options_before_any_work(tmp_path):
    with pytest.raises(UserError, match="no such setting"):
        start(tmp_path, "--set", "hiden_units=3", "--out", str(tmp_path))
    with pytest.raises(UserError, match="seed"):
        start(tmp_path, "--seed", "-1", "--out", str(tmp_path))
    (tmp_path / "afile").write_text("")
    with pytest.raises(UserError, match="cannot write"):
        start(tmp_path, "--out", str(tmp_path / "afile" / "sub"))


def test_a_trial_goes_to_its_own_run_folder(tmp_path):
    run, names = start(tmp_path, "part1", "--quick", "--seed", "2", "--set", "l2=0.5")
    assert names == ["part1"] and run.trial
    assert run.out == runs.RUNS_DIR / "quick-seed2-l2=0.5"
    default, _ = start(tmp_path)
    assert not default.trial and default.out == runs.PROJECT_DIR


def test_record_then_read_results(tmp_path):
    run = runs.Run("demo.py", seed=3, out=tmp_path)
    run.record("part1", Part(), {"test_accuracy": np.float32(0.5)}, ["images/x.png"], 1.23456)
    record = runs.read_results("demo.py", "part1", tmp_path)
    assert record["metrics"] == {"test_accuracy": 0.5} and record["trial"] is True
    assert record["settings"]["hidden_units"] == [100, 300] and record["timings"]["seconds"] == 1.235
    assert runs.read_results("demo.py", "part2", tmp_path) is None


def test_main_guard_turns_a_user_error_into_exit_2(capsys):
    def main():
        raise MissingInputError("Input file 'x' was not found.")
    with pytest.raises(SystemExit) as done:
        runs.main_guard(main)
    assert done.value.code == 2 and capsys.readouterr().err == "error: Input file 'x' was not found.\n"


# ---------------------------------------------------------------- face data ----------

def faces(n_per_actor=12, actors=("A One", "B Two"), seed=0):
    """Random 20x20 faces; rows 0/1 and 1/2 of each actor are near-copies (a chain of three)."""
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, (n_per_actor * len(actors), 20, 20)).astype(np.uint8)
    for start in range(0, len(images), n_per_actor):
        images[start + 1] = np.clip(images[start].astype(int) + 2, 0, 255)
        images[start + 2] = np.clip(images[start + 1].astype(int) + 2, 0, 255)
    return {"images": images, "labels": np.repeat(np.arange(len(actors)), n_per_actor),
            "actors": np.array(actors), "face_ids": np.arange(len(images)) * 7 + 1}


def test_near_copies_form_one_group_and_stay_in_one_split(tmp_path):
    data = faces()
    groups = facedata.duplicate_groups(data["images"], side=8)
    assert groups[0] == groups[1] == groups[2] and len(np.unique(groups)) == len(groups) - 4
    split, record = facedata.get_split(data, seed=1, n_test=4, n_val=2, folder=tmp_path)
    where = {name: set(rows) for name, rows in split.items()}
    assert sum(len(v) for v in where.values()) == len(data["labels"])
    for members in ({0, 1, 2}, {12, 13, 14}):
        assert sum(bool(members & rows) for rows in where.values()) == 1
    assert record["duplicate_groups"] == 2
    for actor in (0, 1):
        assert np.sum(data["labels"][split["test"]] == actor) == 4
    again, _ = facedata.get_split(data, seed=1, n_test=4, n_val=2, folder=tmp_path)
    assert all(np.array_equal(split[k], again[k]) for k in facedata.SPLITS)
    assert facedata.split_path(data["actors"], 1, tmp_path).exists()


def test_an_actor_with_too_few_faces_is_named(tmp_path):
    with pytest.raises(UserError, match=r"hold out 8 test .*: A One \(12\), B Two \(12\)"):
        facedata.get_split(faces(), seed=0, n_test=8, n_val=6, folder=tmp_path)


def test_an_actor_without_faces_is_named_even_when_a_saved_split_exists(tmp_path):
    """An actor no download reached has no label at all: a check over the labels present
    would pass them by, and the nets would train on one class fewer than they name."""
    data = faces(actors=("A One", "B Two", "C Three"))
    facedata.get_split(data, seed=0, n_test=4, n_val=2, folder=tmp_path)  # saved
    keep = data["labels"] < 2  # a rebuild that found none of C Three's photos
    fewer = {**{k: data[k][keep] for k in ("images", "labels", "face_ids")},
             "actors": data["actors"]}
    with pytest.raises(UserError, match=r"C Three \(0\)\. Fetch more"):
        facedata.get_split(fewer, seed=0, n_test=4, n_val=2, folder=tmp_path)
    assert facedata.quotas(fewer["labels"], quick=True, n_actors=3) == (1, 1)  # then refused


def test_a_split_of_one_actor_is_refused(tmp_path):
    with pytest.raises(UserError, match="one actor .A One.: the networks tell actors apart"):
        facedata.get_split(faces(actors=("A One",)), seed=0, n_test=4, n_val=2, folder=tmp_path)


def test_an_actor_whose_photos_are_all_one_photo_is_named(tmp_path):
    data = faces(n_per_actor=20)
    data["images"][:20] = data["images"][0]  # twenty copies of one photo: one group
    with pytest.raises(UserError, match="A One has 20 faces in too few distinct photos"):
        facedata.get_split(data, seed=0, n_test=4, n_val=2, folder=tmp_path)


def test_a_split_of_another_build_is_refused():
    record = {"face_ids": {"train": [1], "val": [8], "test": [15]}}
    with pytest.raises(InputFormatError, match="another build"):
        facedata.rows_of(np.array([1, 8, 15, 22]), record)


def test_datasets_are_named_by_actor_set_and_checked(tmp_path):
    data = faces()
    name = facedata.dataset_name(data["actors"], (20, 20), "gray")
    assert name == "faces_one-two_20x20_gray.npz"
    path = facedata.save_faces(tmp_path / name, data["images"], data["labels"], data["actors"],
                               data["face_ids"], ["0" * 64] * len(data["labels"]))
    loaded = facedata.load_faces(tuple(data["actors"]), (20, 20), "gray", path=path)
    np.testing.assert_array_equal(loaded["images"], data["images"])
    with pytest.raises(InputFormatError, match="not"):
        facedata.load_faces(("A One", "C Three"), (20, 20), "gray", path=path)
    facedata.save_faces(path, data["images"], data["labels"] + 1, data["actors"],
                        data["face_ids"], ["0" * 64] * len(data["labels"]))
    with pytest.raises(InputFormatError, match="labels outside"):
        facedata.load_faces(tuple(data["actors"]), (20, 20), "gray", path=path)
    with pytest.raises(UserError):
        facedata.parse_actors("A One, A One")


@dataclass(frozen=True)
class Nested:
    inner: Part = Part()
    other: Part = Part(l2=0.0)


def test_a_dotted_name_sets_one_field_of_nested_settings(tmp_path):
    s = runs.make_settings(Nested, overrides={"inner.iterations": 5, "other.hidden_units": 7})
    assert s.inner == Part(iterations=5) and s.other == Part(hidden_units=(7,), l2=0.0)
    run, _ = start(tmp_path, "--set", "other.l2=2", "--out", str(tmp_path), parts={"p": Nested})
    assert run.settings(Nested).other.l2 == 2.0
    with pytest.raises(UserError, match="no such setting"):
        start(tmp_path, "--set", "other.nope=2", "--out", str(tmp_path), parts={"p": Nested})


def test_a_tensorflow_script_prints_no_native_log_lines():
    import subprocess
    import sys
    done = subprocess.run([sys.executable, "faces.py", "--help"], cwd=runs.PROJECT_DIR,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and "--actors" in done.stdout
    noise = [line for line in done.stderr.splitlines()
             if line[:5] in ("I0000", "W0000", "E0000") or "cuda" in line.lower()]
    assert not noise, noise


def test_running_out_of_memory_is_one_line_and_exit_2_other_faults_keep_their_traceback(capsys):
    class ResourceExhaustedError(Exception):  # as TensorFlow names it
        pass

    def fail(err):
        raise err
    for err in (MemoryError("Unable to allocate 74.5 GiB"), ResourceExhaustedError(
            "{{function_node __wrapped__Fill}} OOM when allocating tensor with shape[3600,9] "
            "and type float on /job:localhost/replica:0/task:0/device:CPU:0 by allocator")):
        with pytest.raises(SystemExit) as stop:
            runs.main_guard(lambda: fail(err))
        message = capsys.readouterr().err
        assert stop.value.code == 2 and message.count("\n") == 1, message
        assert message.startswith("error: out of memory (") and "--quick" in message
        assert "function_node" not in message and "/job:" not in message
    with pytest.raises(ZeroDivisionError):  # a bug is not dressed up as a user error
        runs.main_guard(lambda: 1 / 0)


def test_importing_the_scripts_starts_no_thread_and_changes_no_stream():
    """Importing apparatus and each script (TensorFlow loads with them) leaves the process as it
    was: the same threads, sys.stderr the same object, file descriptor 2 the same file."""
    code = ("import os, sys, threading\n"
            "before = (threading.active_count(), sys.stderr, os.fstat(2).st_ino)\n"
            "import apparatus, digits, faces, deepfaces, myalexnet, get_all_imgs\n"
            "after = (threading.active_count(), sys.stderr, os.fstat(2).st_ino)\n"
            "assert before == after, (before, after)\n"
            "print('same')\n")
    done = subprocess.run([sys.executable, "-c", code], cwd=Path(runs.__file__).parents[1],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0 and done.stdout.strip() == "same", done.stderr[-2000:]
    assert "I0000" not in done.stderr and "absl" not in done.stderr  # the notices stay quiet


def test_a_part_prints_the_settings_it_overrides_and_where_outputs_go(capsys, tmp_path):
    @dataclass(frozen=True)
    class Demo:
        rate: float = 0.1
        units: int = 8
        QUICK: ClassVar[dict] = {"units": 2}

    run = runs.Run("demo.py", quick=True, overrides={"rate": 0.5}, out=tmp_path)
    assert run.settings(Demo) == Demo(rate=0.5, units=2)
    line = capsys.readouterr().out.strip()
    assert line == f"settings: overriding rate=0.5, units=2; outputs in {tmp_path}"
    runs.Run("demo.py", out=tmp_path).settings(Demo)
    assert capsys.readouterr().out.startswith("settings: the defaults;")
