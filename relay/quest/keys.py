"""Redis keys of the headset protocol, in a headset's database (plain names, as the Unity client
reads and writes them), and the relay's own report key beside them."""

# Headset -> relay: the user's body at 30 Hz while the user talks.
USER_STREAM = "userStream"
# Headset -> relay: a snapshot of the character's current pose.
CHARACTER_POSE_STREAM = "aifbStream"
# Relay -> headset: one entry per character frame at 30 fps (body and face).
CHARACTER_STREAM = "aiStream"
# Headset -> relay: the Unity character id.
CHAR_ID = "char_id"
# Relay -> headset: the aiStream id where the character's answer started.
CHANGE_ID = "change_id"
# The last turn's outcome and per-stage times in milliseconds from the WAV's arrival, for the
# headset simulator and operators (JSON), and how long it is kept.
LAST_TURN = "solami:last_turn"
LAST_TURN_TTL_S = 3600
