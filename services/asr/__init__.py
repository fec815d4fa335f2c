"""The asr service: speech -> text (Whisper) and speech -> SpeechTokenizer units."""
