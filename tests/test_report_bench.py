"""The bench scripts (run by hand, never trained here): importing them runs and loads nothing."""
import subprocess
import sys
from pathlib import Path

PROJECT = Path(__file__).resolve().parents[1]


def test_bench_scripts_import_without_running_or_loading_tensorflow():
    code = ("import importlib.util, sys\n"
            "for name in ('train_speed', 'features_speed'):\n"
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
                           ("bench/features_speed.py", "--backbones")):
        done = subprocess.run([sys.executable, script, "--help"], cwd=PROJECT,
                              capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, done.stderr
        assert option in done.stdout and "--quick" in done.stdout
