"""Facts about the character's body and face that every part shares, in one place each:

- ``skeleton``: SMPL-X joints, the ``poses``/``trans`` layout, kinematic chains, world frames;
- ``face``: the 61 LiveLinkFace channels and their names; ``face_npz``: face clip files;
- ``rates``: frame and unit rates; ``features``: the 315-dim motion feature layout;
- ``rotations``: rotation maths (scipy where it serves).

numpy and scipy only: the relay, the services and the command line import it alike.
"""
