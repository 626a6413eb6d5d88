"""CMU motion capture (Acclaim ASF/AMC) reader and the NRI motion-capture dataset.

Modules, in the order data flows through them:

- `skeleton`: the data types `Skeleton` (units, root, bones, hierarchy), `Bone`, `Motion`.
- `acclaim`: `read_asf(path) -> Skeleton` and `read_amc(path, skeleton=None) -> Motion`,
  the Acclaim skeleton and motion file parsers (per-frame DOF values).
- `kinematics`: `joint_positions(skeleton, motion) -> [frames, joints, 3]`, forward
  kinematics, and the Euler rotations it is built from.
- `cmu`: `joint_features(positions, fps) -> [joints, frames, 6]` (positions and
  velocities), `segments(features, length) -> [segments, joints, length, 6]`
  (non-overlapping cuts), the frame and trial splits, and
  `build_cmu_dataset(asf_path, amc_paths, output_dir, ...)`: all of the above, written in
  the native dataset format (`data_pipelines.storage`) with the skeleton's bone graph.

Joints. Joint 0 is the root; joint i >= 1 is the *end* of the i-th bone of the ASF
``:bonedata`` section (file order), so a CMU skeleton has 31 joints. `Skeleton.bones`
lists the natural graph as [parent joint, child joint] pairs (30 for CMU).

Forward kinematics, as the Acclaim format defines it (Schafer, "Acclaim Skeleton File
Definition V1.10"; the CMU viewer and the widely used amc_parser agree):

- Euler angles. A rotation order such as ``XYZ`` (a bone's ``axis`` order, the root's
  ``axis``) or a token list such as ``rx ry rz`` (a bone's ``dof``, the root's ``order``)
  lists rotations about fixed axes in the order they are applied: ``XYZ`` with angles
  (a, b, c) is the matrix ``Rz(c) @ Ry(b) @ Rx(a)`` acting on column vectors.
- Each bone's ``axis`` gives C, the rotation from the bone's local frame to the global
  frame of the rest pose. A frame's DOF values give M in that local frame, so the bone's
  rotation relative to its parent, in rest-pose global coordinates, is ``L = C M C^-1``.
- Rotations compose down the hierarchy, ``G_bone = G_parent @ L_bone``, and the bone's
  end is ``end_parent + G_bone @ (direction * length)``: ``direction`` is the bone's
  unit direction in the global frame of the rest pose.
- The root: ``G_root = C_root M_root C_root^-1`` with C_root from ``orientation`` (rotation
  order ``axis``) and M_root from the AMC root line's rotation channels (in ``order``);
  its position is the ASF ``position`` plus the AMC root translation.

Units. ASF lengths and AMC root translations are in file units; ``:units length u``
means file units times 1/u are inches (CMU's convention, u = 0.45). Positions come out in
metres by default (file units * 0.0254 / u); ``unit="in"`` gives inches and
``unit="file"`` the raw file units. Bone lengths between consecutive joints are the ASF
bone lengths times that one scale, in every frame. Axes are the CMU capture axes:
y is up; the subject walks in the x-z plane.

Angles. ASF values use the ASF ``:units angle`` (``deg`` or ``rad``); AMC values use the
AMC's ``:DEGREES`` / ``:RADIANS`` header, and the ASF's angle unit when it has neither.

Only rotational bone DOFs (rx ry rz) are supported, as in every CMU file; a translational
or length DOF (tx ty tz l) on a bone is rejected with a clear error.
"""
