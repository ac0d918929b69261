"""The simulated day: the hub's main job, run against the real services."""
