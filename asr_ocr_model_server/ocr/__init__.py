"""Image-to-text backends."""
