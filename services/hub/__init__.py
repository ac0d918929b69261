"""Cross-region settlement clearing hub."""
