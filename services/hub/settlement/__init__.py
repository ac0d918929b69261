"""settle-at-treatment: the hospital-facing service. The rules engine is `domain/engine.py`."""
