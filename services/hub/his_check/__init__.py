"""A HIS vendor's kit: the conformance client and the scenario `hub his-check` runs with it."""
