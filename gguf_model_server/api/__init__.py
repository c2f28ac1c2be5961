"""The GGUF server's HTTP APIs, one folder per API family (router + protocol + serving), on
the shared generation serving in ``generation.py``."""
