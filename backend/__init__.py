"""IRG Motion backend: motion features, models, the interleaved loop, the ZeroMQ service and the CLI."""
