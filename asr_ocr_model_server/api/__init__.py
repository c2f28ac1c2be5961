"""The ASR/OCR server's HTTP APIs, one folder per API family (router + protocol + serving), on the
shared upload serving in ``uploads.py``."""
