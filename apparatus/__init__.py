"""The apparatus: what the five coursework scripts need around the lesson, and none of the lesson.

* ``inputs``    finding the fixed inputs (``data/``, then ``$DEEPNN_DATA``), checking their sha256,
                downloading them with pooch, the restricted unpickler, atomic ``.npz``/text writes.
* ``runs``      one run of a script: the settings dataclass of a part with ``--quick`` and
                ``--set name=value`` applied, the seed, where outputs go (a trial writes under
                ``runs/<tag>/``), figures, and ``results/<script>_<part>.json``.
* ``facedata``  the face datasets of one actor set and their duplicate-aware split (faces.py and
                deepfaces.py both use them).

Importing this package quietens TensorFlow before TensorFlow is ever loaded: its log level, and,
when one of the project's scripts is the program, the notices its C++ libraries print as they
load (see ``runs.filter_native_logs``).
"""
import os
import sys
from pathlib import Path

# Level 3 keeps only fatal messages of TensorFlow's C++ log (Python errors and warnings still show).
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

if sys.argv and sys.argv[0] and Path(sys.argv[0]).resolve().parent in (
        Path(__file__).resolve().parents[1], Path(__file__).resolve().parents[1] / "bench"):
    from apparatus.runs import filter_native_logs
    filter_native_logs()
