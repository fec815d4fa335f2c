"""The motion service: SMPL-X <-> SOLAMI motion tokens, and text -> motion from a clip library."""

import os

# OpenMP worker threads that spin while they wait turn CPU contention with the other services
# of a small host into 20x slower inference (measured on 2 cores: 64-token decode 35 ms idle,
# 1.9 s with one core busy; 68 ms with passive waiting). The policy is read when torch loads,
# so it is chosen here, before any module of this package imports torch; an operator's own
# OMP_WAIT_POLICY wins.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
