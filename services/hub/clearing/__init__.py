"""interregion-clearing: daily multilateral netting between pools and each bureau's clearing file. The netting is domain/netting.py."""
