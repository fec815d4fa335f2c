"""The relay: the Quest headset protocol, sessions and the streaming turn."""
