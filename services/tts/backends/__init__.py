"""Text-to-speech backends (Piper, eSpeak NG, Coqui XTTS-v2), one module each."""
