"""The spatial analytics engine: anonymous floor trajectories → store metrics.

Everything here is vectorised over whole windows (numpy, pandas, shapely, scipy);
nothing loops over points in Python. Definitions are in the README ("Metrics").
"""
