"""The apparatus: what the five coursework scripts need around the lesson, and none of the lesson.

* ``inputs``    finding the fixed inputs (``data/``, then ``$DEEPNN_DATA``), checking their sha256,
                downloading them with pooch, the restricted unpickler, atomic ``.npz``/text writes.
* ``runs``      one run of a script: the settings dataclass of a part with ``--quick`` and
                ``--set name=value`` applied, the seed, where outputs go (a trial writes under
                ``runs/<tag>/``), figures, and ``results/<script>_<part>.json``.
* ``digitdata`` MNIST and ``snapshot50.pkl`` for digits.py, checked and read once per run.
* ``facedata``  the face datasets of one actor set and their duplicate-aware split (faces.py and
                deepfaces.py both use them).

Importing this package does nothing else: no stream is changed and no thread started. The
scripts load TensorFlow through ``runs.import_tensorflow``, which keeps its loading notices quiet.
"""
