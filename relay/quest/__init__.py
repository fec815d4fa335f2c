"""The Quest headset side of motion: Unity stream fields <-> SMPL-X, character rigs and face.

- ``coords``: the headset's ``userStream`` / ``aifbStream`` entries to Y-up SMPL-X and back.
- ``rig``: SMPL-X retargeted onto a character rig as ``aiStream`` body fields.
- ``face``: LiveLinkFace channels as ``aiStream`` ARKit blendshape fields.
- ``clips``: the original relay's Unity animation clips (``<Char>_<Name>.json``) as SMPL-X.

Frames (all right-handed unless named Unity):

- Y-up: the model side. SMPL-X ``poses`` (T, 165) axis-angle and ``trans`` (T, 3) pelvis
  position in metres, +Y up, a character at rest faces +Z.
- Z-up ("Blender"): what the original relay recorded from the headset; ``Z_UP_TO_Y_UP`` maps it
  to Y-up.
- Unity: left-handed, +Y up. A character's root position and rotations are local to the
  rig's root parent, whose frame is the Y-up frame mirrored in X.
"""
