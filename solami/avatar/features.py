"""The layout of the SOLAMI per-frame motion feature (315 dims), which the motion tokenizers
read and write (``services.motion.features`` computes it from SMPL-X and back).

====  =====  ===============================================================================
dims  slice  content
====  =====  ===============================================================================
2     0:2    root xz velocity (m/frame) in the heading frame of the frame
1     2      root height (m)
6     3:9    global orient, 6D (first two matrix columns)
126   9:135  21 body joints, 6D, local
180   135:   30 hand joints (left then right), 6D, local
====  =====  ===============================================================================

The body tokenizer reads dims 0:135, the hand tokenizer 135:315.
"""

FEATURE_DIMS = 315
BODY_FEATURE_DIMS = 135
HAND_FEATURE_DIMS = 180
# The relative transform of the user in the character's frame: cos/sin of the turn and the
# offset (the transform tokenizer's input).
TRANSFORM_DIMS = 5
