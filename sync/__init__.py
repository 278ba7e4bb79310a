"""Pushing aggregate tables (never trajectories) from the box to the hub."""
