"""For developers and tests only: the local launcher of Kafka, Redis and PostgreSQL. No service imports
it (an import contract holds them to it); the `hub` CLI and its simulated day do."""
