"""Bad inputs and faults: a section per class of fault, each test named for what it proves.

The standard: a user error is one message that names the file or option and says what to do,
exit code 2, never a traceback; nothing already computed or downloaded is lost; every input is
checked before use. Files are small and synthetic, written into tmp_path; network faults come
from a server on 127.0.0.1 that the test starts and stops (conftest.py's ``server``).

Parts of some classes are tested beside the code they concern (``test_elsewhere`` below checks
that those tests still exist):
- the run's --timeout budget: test_get_all_imgs.py::test_run_budget_fails_the_rest_at_once
- atomic_path when the code inside fails: test_apparatus.py::
     test_atomic_write_keeps_the_old_file_when_writing_fails
- MobileNet weights absent or corrupt: test_deepfaces.py::
     test_missing_or_damaged_mobilenet_weights_say_what_to_do
- a feature cache with NaN, a wrong shape or other pixels is made again: test_deepfaces.py::
     test_a_stale_or_invalid_cache_is_made_again
- a bad original in data/uncropped does not hide a verified one further along DEEPNN_DATA:
     test_get_all_imgs.py::test_verified_copy_further_along_wins
"""
import ast
import dataclasses
import importlib.util
import os
import pickle
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

import deepfaces
import digits
import faces
import get_all_imgs as gai
import myalexnet
from apparatus import digitdata, facedata, inputs, runs
from apparatus.inputs import InputFormatError, MissingInputError, UserError
from fakes import PNG, build, line, sha, write_mnist, write_snapshot

PROJECT = runs.PROJECT_DIR
TWO = ("Ann Alpha", "Bob Beta")  # the synthetic actor set of fakes.build


def dead_url() -> str:
    """A port on 127.0.0.1 that nobody listens on: connections are refused at once."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{s.getsockname()[1]}"


def digest(path: Path) -> str | None:
    return sha(path.read_bytes()) if path.exists() else None


def faces_npz(path: Path, change=None, n=6) -> Path:
    """A small 20x20 gray face dataset of two actors, ``change(arrays)`` applied before saving."""
    arrays = {"images": np.zeros((n, 20, 20), np.uint8), "labels": np.arange(n) % 2,
              "actors": np.array(TWO), "face_ids": np.arange(n) + 1,
              "sha256": np.array(["0" * 64] * n)}
    if change:
        change(arrays)
    return inputs.save_npz(path, **arrays)


# ---- No network and no cache ---------------------------------------------------------------

def test_no_network_and_no_cache_keeps_the_dataset(project, tmp_path, capsys):
    """Every download refused and nothing cached: exit 2 with a message, the datasets there
    untouched. (Offline, and a smaller build: test_get_all_imgs.py::
    test_smaller_or_empty_dataset_is_refused.)"""
    url, data = dead_url(), tmp_path / "data"
    project([line("Ann Alpha", 1, f"{url}/a.png", sha(PNG))],
            [line("Bob Beta", 2, f"{url}/b.png", sha(PNG))])
    paths = [facedata.save_faces(data / facedata.dataset_name(TWO, (16, 24), mode),
                                 np.zeros((2, 16, 24) + extra, np.uint8), [0, 1], TWO, [1, 2],
                                 ["0" * 64] * 2) for mode, extra in (("rgb", (3,)), ("gray", ()))]
    before = [digest(p) for p in paths]
    with pytest.raises(SystemExit) as stop:
        runs.main_guard(lambda: build(tmp_path, "--dest", str(data)))
    err = capsys.readouterr().err
    assert stop.value.code == 2 and "no network and no cache" in err and "holds 2 faces" in err
    assert [digest(p) for p in paths] == before and not (tmp_path / "out").exists()


# ---- Another actor set never takes the default names ---------------------------------------

def test_another_actor_set_never_takes_the_default_names(project, tmp_path, monkeypatch):
    project([line("Ann Alpha", 1, "http://h/a.png", sha(PNG))],
            [line("Bob Beta", 2, "http://h/b.png", sha(PNG))])
    for name in ("alpha_1.png", "beta_2.png"):
        (tmp_path / "data" / "uncropped" / name).write_bytes(PNG)
    monkeypatch.setattr(runs, "RUNS_DIR", tmp_path / "runs")
    default = tmp_path / "data" / facedata.dataset_name(facedata.DEFAULT_ACTORS)
    default.write_bytes(b"the six actors' dataset")
    committed = [PROJECT / "results" / "get_all_imgs.json",
                 PROJECT / "images" / "get_all_imgs_contact_sheet.png"]
    before = [digest(p) for p in [default, *committed]]
    gai.main(["--offline", "--actors", ",".join(TWO)])  # no --out: where a user's run writes
    assert (tmp_path / "data" / "faces_alpha-beta_60x60_gray.npz").is_file()
    assert (tmp_path / "data" / "faces_alpha-beta_227x227_rgb.npz").is_file()
    assert (tmp_path / "runs" / "actors-alpha-beta" / "results" / "get_all_imgs.json").is_file()
    assert [digest(p) for p in [default, *committed]] == before
    assert facedata.split_path(TWO, 0, tmp_path).name == "faces_alpha-beta_split_seed0.json"


# ---- Downloads: a deadline per file, a bounded run, Ctrl-C ---------------------------------

def test_a_dead_or_trickling_network_ends_the_run_in_seconds(server, project, tmp_path):
    server["/slow.png"] = (200, PNG, 0.2)  # a byte every 0.2 s: 15 minutes for the file
    url = dead_url()
    project([line("Ann Alpha", i, server["base"] + "/slow.png", sha(PNG)) for i in (1, 2)],
            [line("Bob Beta", i, f"{url}/b.png", sha(PNG)) for i in (3, 4)])
    t0 = time.monotonic()
    with pytest.raises(UserError, match="0 of 4 originals found: no download worked") as err:
        build(tmp_path, "--set", "file_deadline=1.0")
    assert time.monotonic() - t0 < 5  # the 1 s deadline per file, not the 15 minute body
    assert "deadline" in str(err.value) and "ConnectionError" in str(err.value)
    assert list((tmp_path / "data" / "uncropped").iterdir()) == []  # no partial file kept


def start_downloading(server, project, tmp_path) -> subprocess.Popen:
    """get_all_imgs.py in a subprocess, stopped in the middle of trickling downloads."""
    server["/slow.png"] = (200, PNG, 0.05)
    project([line("Ann Alpha", i, server["base"] + "/slow.png", sha(PNG)) for i in range(8)])
    hashes = {n: inputs.REGISTRY[n][1] for n in gai.LIST_FILES}
    code = ("import faulthandler, signal, sys; from apparatus import inputs, runs\n"
            "import get_all_imgs as g\n"
            "faulthandler.register(signal.SIGUSR1, all_threads=True)  # a hang shows its stacks\n"
            # Ctrl-C as in a terminal: a runner started in the background (nohup, cmd &) hands
            # its children SIGINT ignored, and Python then installs no KeyboardInterrupt
            "signal.signal(signal.SIGINT, signal.default_int_handler)\n"
            f"inputs.DATA_DIR = inputs.Path({str(tmp_path / 'data')!r})\n"
            f"for n, h in {hashes!r}.items(): inputs.REGISTRY[n] = (None, h)\n"
            "runs.main_guard(lambda: g.main(sys.argv[1:]))")
    proc = subprocess.Popen([sys.executable, "-c", code, "--actors", "Ann Alpha", "--out",
                             str(tmp_path / "out")], cwd=PROJECT, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "DEEPNN_DATA": "", "MPLBACKEND": "Agg"})
    cache = tmp_path / "data" / "uncropped"
    for _ in range(200):  # until the downloads are under way (their .part files appear)
        if list(cache.glob(".*.part")) or proc.poll() is not None:
            break
        time.sleep(0.05)
    assert list(cache.glob(".*.part")), "the downloads never started"
    return proc


def test_ctrl_c_during_downloads_ends_within_2_s_with_exit_130(server, project, tmp_path):
    proc = start_downloading(server, project, tmp_path)
    t0 = time.monotonic()
    proc.send_signal(signal.SIGINT)
    try:
        _, err = proc.communicate(timeout=10)
    except subprocess.TimeoutExpired:  # where it hangs: every thread's stack, then the kill
        proc.send_signal(signal.SIGUSR1)
        time.sleep(1)
        proc.kill()
        pytest.fail("no exit 10 s after Ctrl-C; its threads:\n" + proc.communicate()[1][-6000:])
    finally:
        proc.kill()  # no-op when it has ended, as it should have
    assert proc.returncode == 130 and time.monotonic() - t0 < 2
    assert "Traceback" not in err and "interrupted" in err


# ---- Outputs are written atomically --------------------------------------------------------

def test_a_write_that_fails_keeps_the_old_file(tmp_path, monkeypatch):
    target = inputs.write_text(tmp_path / "results.json", "old")

    def disk_full(self, text, **kwargs):  # half written, then the disk is full
        with open(self, "w") as f:
            f.write(text[: len(text) // 2])
        raise OSError(28, "No space left on device")
    monkeypatch.setattr(Path, "write_text", disk_full)
    with pytest.raises(OSError, match="No space"):
        inputs.write_text(target, "new and longer")
    assert target.read_text() == "old" and [p.name for p in tmp_path.iterdir()] == [target.name]
    for script in sorted(PROJECT.glob("*.py")):  # every script writes through the two above
        assert unguarded_writes(script) == [], script.name


def unguarded_writes(path: Path) -> list[str]:
    """Calls in ``path`` that write a file outside ``with ...atomic_path(...)`` and not through
    inputs.write_text: open(..., "w"/"a"/"x"), .write_text/.write_bytes, savefig, np.save*."""
    found = []

    def visit(node, guarded):
        if isinstance(node, ast.With):
            guarded |= any("atomic_path" in ast.unparse(i.context_expr) for i in node.items)
        if isinstance(node, ast.Call) and not guarded:
            func = ast.unparse(node.func)
            mode = next((ast.unparse(a) for a in node.args[1:2]), "") + "".join(
                ast.unparse(k.value) for k in node.keywords if k.arg == "mode")
            if (func == "open" and re.search("[wax]", mode) or func not in (
                    "inputs.write_text", "write_text") and re.search(
                    r"\.(write_text|write_bytes|savefig|save|savez|savez_compressed)$", func)):
                found.append(f"line {node.lineno}: {ast.unparse(node)[:60]}")
        for child in ast.iter_child_nodes(node):
            visit(child, guarded)
    visit(ast.parse(path.read_text()), False)
    return found


# ---- A trial never writes over the committed results ---------------------------------------

def test_a_trial_never_writes_over_the_committed_results(fake_inputs, tmp_path, monkeypatch):
    monkeypatch.setattr(runs, "RUNS_DIR", tmp_path / "runs")
    committed = [PROJECT / "results" / "digits_part1.json",
                 PROJECT / "images" / "digits_part1_samples.png"]
    before = [digest(p) for p in committed]
    for argv, folder in ((["--quick"], "quick"), (["--seed", "1"], "seed1")):
        digits.main(["part1", *argv])  # no --out: where a user's trial writes
        assert runs.read_results("digits.py", "part1", tmp_path / "runs" / folder)["trial"]
        assert (tmp_path / "runs" / folder / "images" / "digits_part1_samples.png").is_file()
    assert [digest(p) for p in committed] == before


# ---- Fixed inputs are checked by sha256 ----------------------------------------------------

def test_a_truncated_input_is_refused_and_does_not_hide_a_good_one(project, tmp_path,
                                                                     monkeypatch):
    project([line("Ann Alpha", 1, "http://h/a.png", sha(PNG))])  # registers the list's sha256
    data, shared = tmp_path / "data", tmp_path / "shared"
    listed = data / gai.LIST_FILES[0]
    good = listed.read_bytes()
    listed.write_bytes(good[:20])  # cut off: the download stopped half-way
    with pytest.raises(MissingInputError, match="wrong sha256") as err:
        gai.read_lists(data, offline=True)
    assert str(listed) in str(err.value)
    shared.mkdir()
    (shared / listed.name).write_bytes(good)
    monkeypatch.setenv("DEEPNN_DATA", str(shared))
    assert inputs.find_input(listed.name, download=False) == shared / listed.name


# ---- Arrays are checked before use ---------------------------------------------------------

def mnist_value(value):
    def change(mat):
        mat["train2"] = mat["train2"].astype(np.float64)
        mat["train2"][1, 100] = value
    return lambda path: digitdata.load_mnist(write_mnist(path, np.random.default_rng(0), 3, 2,
                                                         change))


def faces_change(change):
    return lambda path: facedata.load_faces(TWO, (20, 20), "gray", path=faces_npz(path, change))


def snapshot_nan(path):
    nan_b0 = lambda o: o["b0"].__setitem__(7, np.nan)  # noqa: E731
    return digitdata.load_snapshot(write_snapshot(path, np.random.default_rng(0), nan_b0))


@pytest.mark.parametrize("name, load, words", [
    ("mnist_all.mat", mnist_value(np.nan), "train2.*not whole numbers"),
    ("mnist_all.mat", mnist_value(0.5), "train2.*not whole numbers"),
    ("mnist_all.mat", mnist_value(256.0), "train2.*not whole numbers"),
    ("snapshot50.pkl", snapshot_nan, "b0.*NaN"),
    ("faces.npz", faces_change(lambda a: a.update(labels=a["labels"] + 1)), "labels outside 0..1"),
    ("faces.npz", faces_change(lambda a: a.update(labels=a["labels"][:-1])),
     "6 images but 5 labels"),
    ("faces.npz", faces_change(lambda a: a.update(face_ids=a["face_ids"] * 0)),
     "face ids are not unique"),
    ("faces.npz", faces_change(lambda a: a.update(actors=a["actors"][:1])), "labels outside 0..0"),
], ids=["mnist-nan", "mnist-fraction", "mnist-256", "snapshot-nan", "faces-label-range",
        "faces-lengths", "faces-duplicate-ids", "faces-too-few-names"])
def test_arrays_are_checked_before_use(tmp_path, name, load, words):
    with pytest.raises(InputFormatError, match=words) as err:
        load(tmp_path / name)
    assert str(tmp_path / name) in str(err.value)  # the message names the file


# ---- The restricted loaders refuse a pickle of nested shared lists at once -----------------

def shared_nesting(depth: int = 30, kind=list):
    """[x, x] of [x, x] of ...: a few bytes pickled, 2**depth leaves unfolded."""
    x = kind([0])
    for _ in range(depth):
        x = kind([x, x])
    return x


def run_with_timeout(code: str, timeout: float) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code], cwd=PROJECT, capture_output=True,
                          text=True, timeout=timeout)


def test_nested_shared_lists_are_refused_in_well_under_a_second(tmp_path):
    nested = shared_nesting()
    snapshot = tmp_path / "snapshot50.pkl"
    snapshot.write_bytes(pickle.dumps({k: nested for k in digitdata.SNAPSHOT_SHAPES}, protocol=2))
    alexnet = tmp_path / "bvlc_alexnet.npy"
    np.save(alexnet, np.array({"conv1": [nested, nested]}, dtype=object), allow_pickle=True)
    assert snapshot.stat().st_size < 300 and alexnet.stat().st_size < 500
    code = ("import time, myalexnet\nfrom apparatus import digitdata, inputs\n"
            f"for load, path in ((digitdata.load_snapshot, {str(snapshot)!r}),\n"
            f"                   (myalexnet.load_weights, {str(alexnet)!r})):\n"
            "    t0 = time.perf_counter()\n"
            "    try:\n"
            "        load(path)\n"
            "    except inputs.InputFormatError as err:\n"
            "        print(f'{time.perf_counter() - t0:.3f}', str(err)[:70].replace(' ', '_'))\n")
    done = run_with_timeout(code, 10)  # without the type check: hours, and memory without end
    times = [float(word.split()[0]) for word in done.stdout.splitlines()]
    assert done.returncode == 0 and len(times) == 2 and max(times) < 0.5, done.stdout + done.stderr


def test_a_dict_key_of_nested_shared_tuples_is_refused_at_once(tmp_path):
    # written by hand: building {key: 1} here would hash the key, which is what takes hours
    body = pickle.dumps(shared_nesting(40, tuple), protocol=2)[2:-1]
    (tmp_path / "key.pkl").write_bytes(b"\x80\x02}" + body + b"K\x01s.")  # {key: 1}
    code = (f"from apparatus import inputs\ntry: inputs.load_pickle({str(tmp_path / 'key.pkl')!r})"
            "\nexcept inputs.InputFormatError: pass\n")
    assert run_with_timeout(code, 3).returncode == 0


# ---- Command-line values are checked before any work ---------------------------------------

@pytest.mark.parametrize("script, argv, words", [
    (digits, ["part1", "--seed", "-1"], "--seed -1"),
    (digits, ["part3", "--set", "no_such=1"], "no_such: no such setting"),
    (digits, ["part3", "--set", "n_coords=abc"], "give a value of type int"),
    (digits, ["part1", "--out", "{file}"], "cannot write there"),
    (gai, ["--timeout", "0"], "--timeout 0.0"),
    (gai, ["--actors", "Ann Alpah"], r"'Ann Alpah' \(close: Ann Alpha\)"),
    (gai, ["--set", "outputs=((0, 5, 'gray'),)"], "sides >= 1"),
    (gai, ["--set", "download_workers=0"], "download_workers=0: give a number >= 1"),
    (digits, ["part4", "--set", "tanh.epochs=0"], "tanh.epochs=0: give a number >= 1"),
    (digits, ["all", "--set", "tanh.schedule=linear"], "give one of cosine, constant"),
    (digits, ["part5", "--set", "report_noise=3"], "report_noise=3.0: not among noise_scales"),
    (faces, ["part7", "--set", "shifts=((1,),)"], r"shifts=\(\(1,\),\): give \(dy, dx\) pairs"),
    (deepfaces, ["part10", "--set", "subset=(0, 4)"], "give .training, validation. faces"),
    (faces, ["part9", "--set", "actors=()"], r"actors=\(\): part9 draws one or more actors"),
    (digits, ["part4", "--set", "tanh=0"], "tanh is a group of settings"),
], ids=["negative-seed", "unknown-set", "bad-set-type", "out-is-a-file", "timeout-0",
        "unknown-actor", "bad-set-value", "set-below-its-range", "set-nested-below-its-range",
        "set-not-a-choice", "set-against-another-setting", "set-of-bad-shape",
        "set-of-bad-pair", "set-empty-names", "set-a-group-whole"])
def test_a_bad_option_is_one_line_and_exit_2(project, tmp_path, capsys, script, argv, words):
    project([line("Ann Alpha", 1, "http://h/a.png", sha(PNG))])
    (tmp_path / "afile").write_text("")
    argv = [a.replace("{file}", str(tmp_path / "afile")) for a in argv]
    out = [] if "--out" in argv else ["--out", str(tmp_path / "out")]
    with pytest.raises(SystemExit) as stop:
        runs.main_guard(lambda: script.main(argv + out + ["--offline"] * (script is gai)))
    err = capsys.readouterr().err
    assert stop.value.code == 2 and err.startswith("error: ") and err.count("\n") == 1
    assert re.search(words, err) and not (tmp_path / "out").exists()


def test_every_setting_has_a_range_and_every_preset_is_within_it():
    """A number field without a limit lets -5 hidden units through to a traceback (or an abort
    inside TensorFlow); the defaults and the --quick presets must pass their own limits."""
    benches = [load_bench(name).Bench
               for name in ("train_speed", "features_speed", "step_speed")]
    classes = [runs.settings_class(p) for script in (digits, faces, deepfaces)
               for p in getattr(script, "PARTS", getattr(script, "SETTINGS", {})).values()]
    classes += [gai.Build, digits.SGDSettings, *benches]
    for cls in [c for c in classes if c is not None]:
        numbers = {f.name for f in dataclasses.fields(cls)
                   if f.type in ("int", "float", "int | None", int, float)}
        missing = {name for name in numbers if runs.limit_of(cls, name) is None}
        assert not missing, f"{cls.__name__}: no range for {missing}"
        for quick in (False, True):
            runs.make_settings(cls, quick)


def load_bench(name: str):
    spec = importlib.util.spec_from_file_location(name, Path(digits.__file__).parent / "bench"
                                                  / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_report_with_an_out_that_is_a_file_is_one_line_and_exit_2(tmp_path, capsys):
    import report
    (tmp_path / "afile").write_text("")
    with pytest.raises(SystemExit) as stop:
        runs.main_guard(lambda: report.main(["--no-pdf", "--out", str(tmp_path / "afile")]))
    err = capsys.readouterr().err
    assert stop.value.code == 2 and err.startswith("error: ") and err.count("\n") == 1


def test_a_truncated_alexnet_npy_is_one_line_and_exit_2_in_a_real_process(tmp_path):
    np.save(tmp_path / "whole.npy", np.arange(1000.0))
    (tmp_path / myalexnet.WEIGHTS_FILE).write_bytes((tmp_path / "whole.npy").read_bytes()[:600])
    (tmp_path / "photo.jpg").write_bytes(PNG)  # a readable picture: the weights are the fault
    code = ("import sys; from apparatus import inputs, runs; import myalexnet\n"
            f"inputs.DATA_DIR = inputs.Path({str(tmp_path / 'empty')!r})\n"
            "runs.main_guard(lambda: myalexnet.main(sys.argv[1:]))")
    done = subprocess.run([sys.executable, "-c", code, str(tmp_path / "photo.jpg")], cwd=PROJECT,
                          capture_output=True, text=True, timeout=60,
                          env={**os.environ, "DEEPNN_DATA": str(tmp_path)})
    assert done.returncode == 2 and "Traceback" not in done.stderr, done.stderr
    assert re.fullmatch(r"error: \S+bvlc_alexnet.npy: truncated .*fresh copy\.\n", done.stderr)


# ---- A run killed mid-download leaves .part files; the next run removes them ---------------

def test_stale_part_files_of_a_killed_run_are_removed_by_the_next(server, project, tmp_path):
    proc = start_downloading(server, project, tmp_path)
    proc.kill()  # SIGKILL: nothing of the run's own clean-up runs
    proc.communicate(timeout=10)
    cache = tmp_path / "data" / "uncropped"
    assert list(cache.glob(".*.part")) and not list(cache.glob("alpha_*"))
    with pytest.raises(UserError, match="0 of 8 originals found"):
        build(tmp_path, "--offline", actors="Ann Alpha")
    assert list(cache.iterdir()) == []


# ---- Keras's mnist.npz is a second source of MNIST -----------------------------------------

def keras_mnist(path: Path, x: dict, y: dict) -> Path:
    """mnist.npz as Keras ships it: x_train (N, 28, 28) uint8, y_train (N,) uint8, x_test, y_test"""
    np.savez(path, **{f"x_{s}": x[s].reshape(-1, 28, 28) for s in x},
             **{f"y_{s}": y[s].astype(np.uint8) for s in y})
    return path


def interleaved(x, y, rng):
    """The rows of (x, y), grouped by label, dealt out in random label order: each label's rows
    keep their order, as the stable sort by label expects."""
    shuffled = rng.permutation(y)
    out = np.empty_like(x)
    for d in range(10):
        out[shuffled == d] = x[y == d]
    return out, shuffled


def test_keras_mnist_npz_serves_when_mnist_all_mat_is_absent(tmp_path, monkeypatch):
    rng = np.random.default_rng(0)
    x = {s: rng.integers(0, 256, (n, 784), dtype=np.uint8) for s, n in (("train", 30),
                                                                         ("test", 10))}
    y = {"train": rng.permutation(np.arange(30) % 10), "test": rng.permutation(10)}
    shared = tmp_path / "shared"
    shared.mkdir()
    keras_mnist(shared / "mnist.npz", x, y)
    monkeypatch.setattr(inputs, "DATA_DIR", tmp_path / "data")
    monkeypatch.setenv("DEEPNN_DATA", str(shared))
    monkeypatch.setattr(inputs, "download_input", lambda *a, **k: pytest.fail("a download"))
    data = digitdata.load_mnist()
    for s in x:  # by digit, each digit's rows in their order in the file
        want = np.concatenate([x[s][y[s] == d] for d in range(10)])
        np.testing.assert_array_equal(data[f"{s}_x"], want)
        np.testing.assert_array_equal(data[f"{s}_y"], np.sort(y[s]))
        assert data[f"{s}_x"].dtype == np.uint8 and data[f"{s}_y"].dtype == np.int64
    monkeypatch.setitem(inputs.REGISTRY, "mnist_all.mat", (None, ()))  # any .mat is good here
    write_mnist(shared / "mnist_all.mat", rng, 2, 1)
    assert len(digitdata.load_mnist()["train_y"]) == 20  # a good mnist_all.mat comes first
    keras_mnist(tmp_path / "float.npz", {"train": x["train"] / 255.0, "test": x["test"]}, y)
    with pytest.raises(InputFormatError, match="float.npz: x_train, y_train are not uint8"):
        digitdata.load_mnist(tmp_path / "float.npz")


def test_real_mnist_npz_round_trips(real_data, tmp_path):
    data = digitdata.load_mnist(real_data("mnist_all.mat"))
    rng, x, y = np.random.default_rng(1), {}, {}
    for s in ("train", "test"):
        x[s], y[s] = interleaved(data[f"{s}_x"], data[f"{s}_y"], rng)
    again = digitdata.load_mnist(keras_mnist(tmp_path / "mnist.npz", x, y))
    for key, value in data.items():
        np.testing.assert_array_equal(again[key], value)


# ---- Classes tested beside their code ------------------------------------------------------

def test_elsewhere_the_tests_this_file_names_still_exist():
    named = re.findall(r"(test_\w+\.py)::\s*(test_\w+)", __doc__.replace("::\n     ", "::"))
    assert len(named) == 5
    for file, test in named:
        assert f"def {test}(" in (Path(__file__).parent / file).read_text(), (file, test)
