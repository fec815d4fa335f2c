"""One headset, in parts a newcomer can name:

- ``character``: which character the headset shows, its rig, its session and its animation;
- ``inputs``: the headset's body streams read for a turn (and kept bounded);
- ``runner``: the turn runner: plays a turn's reply to the headset, barge-in, apologies,
  history and the turn report;
- ``publisher``: the 30 fps ``aiStream`` frame publisher, idle or answering;
- ``link``: the headset's WebSocket, wiring the parts together.
"""

from relay.headset.link import HeadsetLink

__all__ = ["HeadsetLink"]
