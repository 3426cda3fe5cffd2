"""The bench scripts (run by hand, never trained here): importing them runs and loads nothing;
the step-by-step epoch of the training benchmark is the trainer's epoch."""
import importlib.util
import subprocess
import sys
from pathlib import Path

import numpy as np

import digits

PROJECT = Path(__file__).resolve().parents[1]


def test_bench_scripts_import_without_running_or_loading_tensorflow():
    code = ("import importlib.util, sys\n"
            "for name in ('train_speed', 'features_speed', 'step_speed'):\n"
            "    spec = importlib.util.spec_from_file_location(name, f'bench/{name}.py')\n"
            "    module = importlib.util.module_from_spec(spec)\n"
            "    spec.loader.exec_module(module)\n"
            "    assert callable(module.main), name\n"
            "heavy = [m for m in sys.modules if m.split('.')[0] in ('tensorflow', 'keras', "
            "'sklearn')]\n"
            "assert not heavy, heavy\n"
            "print('ok')\n")
    done = subprocess.run([sys.executable, "-c", code], cwd=PROJECT, capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "ok"


def test_bench_help_names_its_options():
    for script, option in (("bench/train_speed.py", "--epochs"),
                           ("bench/features_speed.py", "--backbones"),
                           ("bench/step_speed.py", "--set")):
        done = subprocess.run([sys.executable, script, "--help"], cwd=PROJECT,
                              capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, done.stderr
        assert option in done.stdout and "--quick" in done.stdout


def test_the_step_by_step_epoch_ends_at_the_weights_of_the_trainers_epoch():
    """bench/train_speed.py times our epoch step by step with a copy of train_network's and
    tanh_backward's lines: on the same batches it must reach the very same weights, or it would
    time something else than what the lesson trains."""
    spec = importlib.util.spec_from_file_location("train_speed", PROJECT / "bench/train_speed.py")
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    rng = np.random.default_rng(0)
    X = rng.random((230, 784), dtype=np.float32)  # 4 batches of 50, the last 30 rows dropped
    y = rng.integers(0, 10, 230)
    params = {"W0": 0.05 * rng.standard_normal((784, 16), dtype=np.float32),
              "b0": 0.1 * rng.standard_normal(16, dtype=np.float32),
              "W1": 0.1 * rng.standard_normal((16, 10), dtype=np.float32),
              "b1": np.zeros(10, np.float32)}
    s = bench.Bench(batch_size=50)
    arm = bench.NumpyArm(params, X, y, s, seed=3, threads=None)
    seconds = bench.step_by_step(arm)
    trained = {k: v.copy() for k, v in params.items()}
    digits.train_network(trained, digits.tanh_backward, X, digits.one_hot(y), digits.SGDSettings(
        epochs=1, batch_size=50, schedule="constant", learning_rate=s.learning_rate,
        momentum=s.momentum), np.random.default_rng(3))
    for k in params:
        assert not np.array_equal(trained[k], params[k]), k  # the epoch moved every array
        np.testing.assert_array_equal(arm.params[k], trained[k], err_msg=k)
    assert len(seconds) == 8 and all(t >= 0 for t in seconds.values())
