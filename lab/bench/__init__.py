"""Benchmarks: the vision pipeline, the analytics engine, the dashboard and the alert engine.

Each measures the box against a peer or a target (``footfall bench …``,
``footfall alerts bench``; ``python -m lab.bench.choose_detector`` for the detector sweep).
"""
