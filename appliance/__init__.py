"""The box itself: config, CLI, the camera-worker runtime and (later) analytics and alerts."""
