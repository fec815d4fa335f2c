"""The tts service: text -> speech and SpeechTokenizer units -> speech in character voices."""
