"""Time rates every part shares."""

# Body motion and face animation frames per second (SMPL-X clips, LiveLinkFace channels, the
# headset's aiStream and userStream).
FPS = 30
# Motion frames per body/hand VQ-VAE token (the tokenizers downsample time by 4).
FRAMES_PER_TOKEN = 4
# SpeechTokenizer RVQ units per second of speech (one per 20 ms).
UNIT_RATE_HZ = 50
