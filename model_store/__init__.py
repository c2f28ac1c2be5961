"""Model files both servers serve, shipped as byte pieces inside pinned PyPI packages.

- ``assembly``: the packages, pieces and recorded size/sha256 of a model file; joining it once,
  atomically, into the cache and verifying it.
- ``embedded``: the embedded models the GGUF server serves by default (Gemma 3 270M, Qwen 0.5B).
- ``packs``: optional packs of larger models, for both servers (``fleet``).
- ``gguf_size``: a GGUF file's expected size, read from its header (checks joined pack files).
- ``__main__``: ``python -m model_store embedded | list | install PACK``.

Nothing here imports either server, and importing this package imports nothing else.
"""
