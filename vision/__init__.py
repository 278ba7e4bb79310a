"""Everything between a camera and an anonymous floor trajectory point.

This is the only package that touches pixels or imports a deep-learning runtime.
Frames never leave it: what it emits are :class:`vision.types.TrackPoint` rows.
"""
