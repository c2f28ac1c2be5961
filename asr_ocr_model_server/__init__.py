"""ASR/OCR model server: speech-to-text (Whisper) and image-to-text (OCR) models."""
