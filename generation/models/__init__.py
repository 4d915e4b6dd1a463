"""Models: checkpoints found and loaded (one cache per worker), their schedulers, LoRAs and
embeddings (checked strictly before they are stored), and the tiny random models of the tests."""
