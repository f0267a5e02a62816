"""Extract MediaPipe's canonical face mesh and Procrustes basis from the bundled model.

One-off build step: reads ``geometry_pipeline_metadata_landmarks.binarypb`` from
``aupipe/models/face_landmarker.task`` (a zip) and writes ``aupipe/models/canonical_face.npz``
with ``vertices`` (468, 3) float32 in centimetres (x right, y up, z towards the camera, as in
MediaPipe's canonical model) and ``basis_ids`` / ``basis_weights`` (the landmarks MediaPipe uses
for its own rigid Procrustes fit). Run: ``python scripts/extract_canonical_face.py``.
"""

from __future__ import annotations

import struct
import zipfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]


def _varint(buf: bytes, pos: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        byte = buf[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        shift += 7
        if not byte & 0x80:
            return value, pos


def _fields(buf: bytes) -> list[tuple[int, int, bytes | int]]:
    """Decode one protobuf message level into (field, wire_type, payload) triples."""
    out, pos = [], 0
    while pos < len(buf):
        key, pos = _varint(buf, pos)
        field, wire = key >> 3, key & 7
        if wire == 0:
            value, pos = _varint(buf, pos)
        elif wire == 1:
            value, pos = buf[pos : pos + 8], pos + 8
        elif wire == 2:
            length, pos = _varint(buf, pos)
            value, pos = buf[pos : pos + length], pos + length
        elif wire == 5:
            value, pos = buf[pos : pos + 4], pos + 4
        else:
            raise ValueError(f"unsupported wire type {wire}")
        out.append((field, wire, value))
    return out


def main() -> None:
    task = ROOT / "aupipe" / "models" / "face_landmarker.task"
    with zipfile.ZipFile(task) as bundle:
        meta = bundle.read("geometry_pipeline_metadata_landmarks.binarypb")
    ids, weights, vertex_buffer = [], [], b""
    for field, _wire, payload in _fields(meta):
        if field == 2:  # procrustes_landmark_basis: WeightedLandmarkRef
            sub = dict((f, v) for f, _w, v in _fields(payload))
            ids.append(sub.get(1, 0))
            weights.append(struct.unpack("<f", sub[2])[0] if 2 in sub else 0.0)
        elif field == 1:  # canonical_mesh: Mesh3d (vertex_buffer = field 3, x y z u v)
            for f, wire, v in _fields(payload):
                if f == 3 and wire in (2, 5):  # one float each, or packed
                    vertex_buffer += v
    floats = np.frombuffer(vertex_buffer, dtype="<f4").reshape(-1, 5)  # x y z u v
    vertices = floats[:, :3].astype(np.float32)
    out = ROOT / "aupipe" / "models" / "canonical_face.npz"
    np.savez_compressed(
        out,
        vertices=vertices,
        basis_ids=np.asarray(ids, dtype=np.int32),
        basis_weights=np.asarray(weights, dtype=np.float32),
    )
    print(f"wrote {out}: {vertices.shape[0]} vertices, {len(ids)} basis landmarks")


if __name__ == "__main__":
    main()
