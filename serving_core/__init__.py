"""Shared loading core for the model servers: specs, registry, health, errors, settings."""
