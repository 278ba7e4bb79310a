"""The lab: what measures or demonstrates the box but is not the box.

The store simulator (:mod:`lab.sim`), the accuracy harness (:mod:`lab.accuracy`), the
benchmarks (:mod:`lab.bench`), live replay of a simulated store (:mod:`lab.replay`), MOT
evaluation (:mod:`lab.mot_eval`) and the demo (:mod:`lab.demo`). It is its own small
distribution, ``footfall-lab`` (``lab/pyproject.toml``), installed by a dev checkout's
``make venv``; the box never imports it (``make lint`` checks that), and the ``footfall``
commands that need it import it lazily. It reads ``examples/`` and ``tests/fixtures/`` from
the checkout it lives in.
"""

from pathlib import Path

#: the checkout the lab lives in (its examples, its test fixtures)
CHECKOUT = Path(__file__).resolve().parent.parent
#: the example store configs and simulated stores
EXAMPLES = CHECKOUT / "examples"
#: the demo store: vtest.avi's camera, calibration and zones
DEMO_STORE = EXAMPLES / "vtest.yaml"
