"""GGUF model server: named GGUF language models through llama-cpp-python."""
