"""Text-to-speech backends (Piper, eSpeak NG, Coqui XTTS-v2) and the unit vocoder (SoundStorm +
SpeechTokenizer), one module each, implementing the interfaces of ``base``."""
