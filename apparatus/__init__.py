"""The apparatus: what the five coursework scripts need around the lesson, and none of the lesson.

* ``inputs``    finding the fixed inputs (``data/``, then ``$DEEPNN_DATA``), checking their sha256,
                downloading them with pooch, the restricted unpickler, atomic ``.npz``/text writes.
* ``runs``      one run of a script: the settings dataclass of a part with ``--quick`` and
                ``--set name=value`` applied, the seed, where outputs go (a trial writes under
                ``runs/<tag>/``), figures, and ``results/<script>_<part>.json``.
* ``facedata``  the face datasets of one actor set and their duplicate-aware split (faces.py and
                deepfaces.py both use them).

Importing this package quietens TensorFlow's C++ log lines before TensorFlow is ever loaded.
"""
import os

# "I0000", "W0000", "E0000 ... cuInit" lines are TensorFlow's C++ log on a machine without a GPU;
# level 3 keeps only fatal ones (Python errors and warnings are not affected).
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
