"""Character rigs: SMPL-X motion retargeted to ``aiStream`` body fields, and back.

A rig is read from the SOLAMI rig data directory: ``bone_data/<Char>.json`` (Blender bones with
their parent and rest ``matrix_local`` in armature space, Z-up) and
``retargetmap/Smplx2<Char>.bmap`` (which SMPL-X joint drives which bone). ``Smplx`` is the SMPL-X
skeleton itself and needs no files.

Retargeting copies each SMPL-X joint's rotation away from rest, taken in the shared Y-up frame,
onto the bone it drives; a bone's rest orientation in that frame is
``BLENDER_TO_YUP @ matrix_local`` (SMPL-X's own rest is the identity there). Bones no joint
drives stay at rest, so a driven bone's change is taken relative to its nearest driven ancestor.
The headset applies a bone's rotation as ``localRotation``: rest-relative to the parent bone, or
to the rig's root parent (whose frame is the Y-up frame with X mirrored) for the root. The root's
``localPosition`` is the SMPL-X ``trans`` scaled by the ratio of the rig's rest pelvis height to
SMPL-X's. That is the ``aiStream`` convention only: the headset's ``aifbStream`` snapshot gives
the root's world position, which ``relay.quest.coords.pose_snapshot_to_smplx`` reads.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from relay.quest.characters import CHARACTERS, ECHO_CHAR_ID
from relay.quest.fields import (
    Entry,
    decode_entries,
    format_rows,
    parse_fields,
    parse_rotations,
    position_key,
    rotation_key,
)
from solami.avatar.rotations import (
    MIRROR_X,
    axis_angle_to_matrix,
    matrix_to_axis_angle,
    matrix_to_quat,
    mirror_quat_x,
    nearest_rotation,
    quat_to_matrix,
    rotation_x,
)
from solami.avatar.skeleton import (
    JOINT_INDEX,
    JOINT_NAMES,
    NUM_JOINTS,
    PARENTS,
    check_motion,
    global_rotations,
    local_rotations,
    rig_order,
)

SMPLX_CHAR_ID = "Smplx"

# Blender armature space (Z-up, rest characters face -Y) to the shared Y-up frame (face +Z).
BLENDER_TO_YUP = rotation_x(-90.0)
# The SMPL-X rig's rest pelvis position in its Blender armature space, metres
# (``bone_data/smplx.json``, bone ``pelvis``): the reference for scaling root translation.
SMPLX_REST_PELVIS_BLENDER_M = np.array([0.0011759, -0.0154571, 0.9744370])
# Extra gain on retargeted root translation, kept from the original relay (it lifts a
# character's root by 3 % of its height).
ROOT_TRANSLATION_GAIN = 1.03


def _text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError as exc:
        raise ValueError(f"rig file not found: {path}") from exc
    except OSError as exc:
        raise ValueError(f"cannot read rig file {path}: {exc}") from exc


def read_bmap(path: Path) -> dict[str, str]:
    """A ``.bmap`` remap file as ``{source bone: target bone}``.

    Each block starts with a ``%``-separated line whose first field is the target bone
    (``None`` or empty: unmapped) followed by the source bone on the next line. When two blocks
    name the same target, or one source appears twice, the later block wins, as in the
    original relay.
    """
    by_target: dict[str, str] = {}
    target: str | None = None
    awaiting_source = False
    for raw in _text(path).splitlines():
        line = raw.strip()
        if not line:
            continue
        if "%" in line:
            if awaiting_source and target:
                by_target[target] = target  # a block without a source line maps a bone to itself
            name = line.split("%", 1)[0].strip()
            target = None if name in ("", "None") else name
            awaiting_source = True
        elif awaiting_source:
            if target:
                by_target[target] = line
            awaiting_source = False
    if awaiting_source and target:
        by_target[target] = target
    return {source: target for target, source in by_target.items()}


@dataclasses.dataclass(frozen=True)
class _BoneData:
    names: tuple[str, ...]
    parents: np.ndarray  # (B,) parent index, -1 for a root
    matrix_local: np.ndarray  # (B, 4, 4) rest matrices in armature space
    armature: np.ndarray  # (4, 4) armature object matrix


def _read_bone_data(path: Path) -> _BoneData:
    try:
        data = json.loads(_text(path))
        bones = data["bones"]
        names = tuple(bones)
        index = {name: i for i, name in enumerate(names)}
        parents = np.array([index[b["parent"]] if b["parent"] else -1 for b in bones.values()])
        matrices = np.array([b["matrix_local"] for b in bones.values()], dtype=np.float64)
        armature = np.array(data["armature"]["armature_matrix"], dtype=np.float64)
    except (json.JSONDecodeError, KeyError, TypeError) as exc:
        raise ValueError(f"malformed bone data {path}: {exc!r}") from exc
    if matrices.shape != (len(names), 4, 4) or armature.shape != (4, 4):
        raise ValueError(f"malformed bone data {path}: matrices must be 4x4")
    if any(parent >= i for i, parent in enumerate(parents)):
        raise ValueError(f"malformed bone data {path}: a bone is listed before its parent")
    return _BoneData(names, parents, matrices, armature)


@dataclasses.dataclass(frozen=True, eq=False)
class Rig:
    """One character's skeleton and its SMPL-X retarget; build with ``Rig.load``."""

    char_id: str
    bone_names: tuple[str, ...]  # bones driven by SMPL-X, rig order, root first
    source_joints: tuple[str, ...]  # the SMPL-X joint driving each of ``bone_names``
    position_scale: float  # SMPL-X trans (m) -> root localPosition units
    rest_root_position: np.ndarray  # (3,) the root's rest position, Y-up
    _source: np.ndarray = dataclasses.field(repr=False)  # (K,) SMPL-X joint per bone
    _anchor: np.ndarray = dataclasses.field(repr=False)  # (K,) joint of nearest driven ancestor
    _parent_rest_inv: np.ndarray = dataclasses.field(repr=False)  # (K, 3, 3) parent rest, inverse
    _rest: np.ndarray = dataclasses.field(repr=False)  # (K, 3, 3) rest orientation, Y-up
    _chain: tuple[int, ...] = dataclasses.field(repr=False)  # all-bone indices on driven chains
    _chain_parent: tuple[int, ...] = dataclasses.field(repr=False)  # parent's chain slot or -1
    _chain_keys: tuple[str, ...] = dataclasses.field(repr=False)
    _chain_rest_local: np.ndarray = dataclasses.field(repr=False)  # (C, 3, 3)
    _chain_rest: np.ndarray = dataclasses.field(repr=False)  # (C, 3, 3)
    _driven_slot: np.ndarray = dataclasses.field(repr=False)  # (55,) chain slot per joint or -1

    @property
    def root_bone(self) -> str:
        return self.bone_names[0]

    @classmethod
    def load(cls, rig_dir: Path | None, char_id: str) -> Rig:
        """The rig of ``char_id`` from ``rig_dir`` (``bone_data/``, ``retargetmap/``).

        ``Smplx`` (and the echo character, shown on it) needs no directory. An unknown id or
        missing/malformed files raise ValueError.
        """
        if char_id not in CHARACTERS:
            raise ValueError(
                f"unknown character id {char_id!r}; expected one of {', '.join(CHARACTERS)}"
            )
        if char_id in (SMPLX_CHAR_ID, ECHO_CHAR_ID):
            return _smplx_rig()
        if rig_dir is None:
            raise ValueError(
                f"character {char_id!r} needs the rig data directory (SOLAMI_RIG_DATA) with "
                "bone_data/ and retargetmap/"
            )
        rig_dir = Path(rig_dir)
        bones = _read_bone_data(rig_dir / "bone_data" / f"{char_id}.json")
        bmap_path = rig_dir / "retargetmap" / f"Smplx2{char_id}.bmap"
        mapping = read_bmap(bmap_path)
        for source, target in mapping.items():
            if source not in JOINT_INDEX:
                raise ValueError(f"{bmap_path}: {source!r} is not an SMPL-X joint")
            if target not in bones.names:
                raise ValueError(f"{bmap_path}: bone {target!r} is not in the {char_id} rig")
        return _build(char_id, bones, mapping, bmap_path)

    def frames(self, poses: np.ndarray, trans: np.ndarray) -> list[dict[str, str]]:
        """Y-up SMPL-X ``poses`` (T, 165), ``trans`` (T, 3) as T ``aiStream`` body entries.

        Each entry has ``<root>_position`` ``"x,y,z"`` and ``<bone>_rotation`` ``"x,y,z,w"`` for
        every driven bone, in Unity's conventions.
        """
        poses, trans = check_motion(poses, trans)
        count = len(poses)
        world = global_rotations(axis_angle_to_matrix(poses.reshape(count, NUM_JOINTS, 3)))
        anchor = world[:, np.maximum(self._anchor, 0)]
        anchor[:, self._anchor < 0] = np.eye(3)
        moved = np.swapaxes(anchor, -1, -2) @ world[:, self._source]
        local = self._parent_rest_inv @ moved @ self._rest
        return self._entries(local, trans * self.position_scale)

    def rest_frame(self) -> dict[str, str]:
        """The rig's rest pose as one ``aiStream`` body entry (a safe fallback pose)."""
        local = (self._parent_rest_inv @ self._rest)[None]
        return self._entries(local, self.rest_root_position[None])[0]

    def to_smplx(self, entries: Sequence[Entry]) -> tuple[np.ndarray, np.ndarray]:
        """Entries in this rig's ``aiStream`` format back to Y-up SMPL-X ``(poses, trans)``.

        ``<root>_position`` is read as the ``localPosition`` ``frames`` writes (the inverse of
        ``frames``, for ``aiStream`` clips); an ``aifbStream`` snapshot's root position is a
        world position: read it with ``relay.quest.coords.pose_snapshot_to_smplx``. Bones an
        entry leaves out are taken at rest; SMPL-X joints driving no bone get no
        rotation of their own. Each entry needs ``<root>_position``; a malformed field raises
        ValueError naming it.
        """
        try:
            frames = decode_entries(entries)
            root_key = position_key(self.root_bone)
            positions = parse_fields(frames, [root_key], 3, required=[root_key])[0][:, 0]
            quats, given = parse_rotations(frames, self._chain_keys)
        except ValueError as exc:
            raise ValueError(f"{self.char_id} pose {exc}") from exc
        count = len(frames)
        local = np.broadcast_to(self._chain_rest_local, (count, *self._chain_rest_local.shape))
        local = np.where(given[..., None, None], quat_to_matrix(mirror_quat_x(quats)), local)
        world = np.empty_like(local)
        for slot, parent in enumerate(self._chain_parent):
            world[:, slot] = local[:, slot] if parent < 0 else world[:, parent] @ local[:, slot]
        moved = world @ np.swapaxes(self._chain_rest, -1, -2)
        joints = np.empty((count, NUM_JOINTS, 3, 3))
        for joint in range(NUM_JOINTS):
            slot = self._driven_slot[joint]
            if slot >= 0:
                joints[:, joint] = moved[:, slot]
            else:
                joints[:, joint] = np.eye(3) if joint == 0 else joints[:, PARENTS[joint]]
        poses = matrix_to_axis_angle(local_rotations(joints)).reshape(count, 3 * NUM_JOINTS)
        trans = positions @ MIRROR_X / self.position_scale
        return poses.astype(np.float32), trans.astype(np.float32)

    def _entries(self, local: np.ndarray, root: np.ndarray) -> list[dict[str, str]]:
        count, bones = local.shape[:2]
        rotations = format_rows(mirror_quat_x(matrix_to_quat(local)).reshape(-1, 4))
        positions = format_rows(root @ MIRROR_X)
        root_key = position_key(self.root_bone)
        keys = [rotation_key(bone) for bone in self.bone_names]
        frames = []
        for index in range(count):
            frame = {root_key: positions[index]}
            frame.update(zip(keys, rotations[index * bones : (index + 1) * bones], strict=True))
            frames.append(frame)
        return frames


def _build(char_id: str, bones: _BoneData, mapping: dict[str, str], origin: Path | str) -> Rig:
    source_of = {target: source for source, target in mapping.items()}
    roots = [i for i, parent in enumerate(bones.parents) if parent < 0]
    root = roots[0]
    if bones.names[root] not in source_of:
        raise ValueError(f"{origin}: the root bone {bones.names[root]!r} is driven by no joint")
    driven = [i for i, name in enumerate(bones.names) if name in source_of]
    # Rest matrices are stored in float32 precision: snap them back to rotations.
    rest = BLENDER_TO_YUP @ nearest_rotation(bones.matrix_local[:, :3, :3])

    def driven_ancestor(index: int) -> int:
        parent = bones.parents[index]
        while parent >= 0 and bones.names[parent] not in source_of:
            parent = bones.parents[parent]
        return parent

    source = np.array([JOINT_INDEX[source_of[bones.names[i]]] for i in driven])
    anchor = np.array(
        [
            -1 if (a := driven_ancestor(i)) < 0 else JOINT_INDEX[source_of[bones.names[a]]]
            for i in driven
        ]
    )
    parent_rest_inv = np.array(
        [np.eye(3) if bones.parents[i] < 0 else rest[bones.parents[i]].T for i in driven]
    )
    on_chain: set[int] = set()
    for index in driven:
        while index >= 0 and index not in on_chain:
            on_chain.add(index)
            index = bones.parents[index]
    chain = tuple(sorted(on_chain))
    slot_of = {index: slot for slot, index in enumerate(chain)}
    chain_parent = tuple(slot_of.get(int(bones.parents[i]), -1) for i in chain)
    chain_rest_local = np.array(
        [rest[i] if bones.parents[i] < 0 else rest[bones.parents[i]].T @ rest[i] for i in chain]
    )
    driven_slot = np.full(NUM_JOINTS, -1)
    for index in driven:
        driven_slot[JOINT_INDEX[source_of[bones.names[index]]]] = slot_of[index]

    root_blender = bones.armature @ bones.matrix_local[root]
    scale = float(root_blender[2, 3]) / SMPLX_REST_PELVIS_BLENDER_M[2] * ROOT_TRANSLATION_GAIN
    if char_id == SMPLX_CHAR_ID:
        scale = 1.0
    rest_root = BLENDER_TO_YUP @ (bones.armature[:3, :3] @ bones.matrix_local[root, :3, 3])
    return Rig(
        char_id=char_id,
        bone_names=tuple(bones.names[i] for i in driven),
        source_joints=tuple(source_of[bones.names[i]] for i in driven),
        position_scale=scale,
        rest_root_position=rest_root,
        _source=source,
        _anchor=anchor,
        _parent_rest_inv=parent_rest_inv,
        _rest=rest[driven],
        _chain=chain,
        _chain_parent=chain_parent,
        _chain_keys=tuple(rotation_key(bones.names[i]) for i in chain),
        _chain_rest_local=chain_rest_local,
        _chain_rest=rest[list(chain)],
        _driven_slot=driven_slot,
    )


def _smplx_rig() -> Rig:
    """SMPL-X itself: bones named after the joints, rest orientation the identity (Y-up)."""
    names = rig_order()
    slot = {name: i for i, name in enumerate(names)}
    parent_joints = [PARENTS[JOINT_INDEX[name]] for name in names]
    parents = np.array([-1 if p < 0 else slot[JOINT_NAMES[p]] for p in parent_joints])
    matrices = np.tile(np.eye(4), (len(names), 1, 1))
    matrices[:, :3, :3] = BLENDER_TO_YUP.T
    matrices[0, :3, 3] = SMPLX_REST_PELVIS_BLENDER_M
    bones = _BoneData(names, parents, matrices, np.eye(4))
    return _build(SMPLX_CHAR_ID, bones, {name: name for name in names}, "SMPL-X")
