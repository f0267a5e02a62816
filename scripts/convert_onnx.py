"""Rebuild the ONNX copies of the networks inside ``face_landmarker.task`` (``--runtime onnx``).

Not used at run time: aupipe ships the converted files in ``aupipe/models/onnx``, with their sha256 in
``manifest.json``, and checks them before use. To reproduce them (tf2onnx reads the .tflite
files directly; it needs TensorFlow, so use a separate environment):

    python -m venv /tmp/convert && /tmp/convert/bin/pip install tf2onnx==1.17.0 onnx tensorflow-cpu
    /tmp/convert/bin/python scripts/convert_onnx.py          # writes aupipe/models/onnx/*.onnx and manifest.json
    /tmp/convert/bin/python scripts/convert_onnx.py --check  # converts again, compares outputs

tf2onnx's graph optimiser does not always visit nodes in the same order, so two conversions can
differ in bytes (same weights, same outputs); ``--check`` therefore compares the outputs of the
shipped files, of a fresh conversion and of LiteRT on the same inputs, and the shipped files' sha256.

Opset 17; the mesh network keeps a free batch axis (several face regions per call), the detector
and the blendshape network take one item per call.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

HERE = Path(__file__).resolve().parents[1] / "aupipe" / "models" / "onnx"
TASK = HERE.parent / "face_landmarker.task"
NETWORKS = ("face_detector", "face_landmarks_detector", "face_blendshapes")
OPSET = 17


def canonical_names(model):  # type: ignore[no-untyped-def]
    """Rename the constants tf2onnx's optimiser numbers in whatever order it visits them
    (``const_fold_opt__457``) by their first use in the node list, sort them, and call every free
    axis "batch", so that two conversions differ as little as they can (the optimiser may still
    order nodes differently; ``check`` compares outputs)."""
    graph = model.graph
    initializers = {i.name: i for i in graph.initializer}
    renamed: dict[str, str] = {}
    for node in graph.node:
        for k, name in enumerate(node.input):
            if name in initializers:
                renamed.setdefault(name, f"weight_{len(renamed):04d}")
                node.input[k] = renamed[name]
    kept = sorted((renamed[i.name], i) for i in graph.initializer if i.name in renamed)
    del graph.initializer[:]
    for new_name, initializer in kept:
        initializer.name = new_name
        graph.initializer.append(initializer)
    for value in [*graph.input, *graph.output, *graph.value_info]:
        for dim in value.type.tensor_type.shape.dim:
            if dim.dim_param:
                dim.dim_param = "batch"  # tf2onnx names free axes "unk__2002" and the like
    return model


def convert(out_dir: Path) -> dict[str, str]:
    """Convert the three networks into ``out_dir``; {name: sha256}."""
    digests = {}
    with tempfile.TemporaryDirectory() as tmp, zipfile.ZipFile(TASK) as bundle:
        for name in NETWORKS:
            tflite = Path(tmp) / f"{name}.tflite"
            tflite.write_bytes(bundle.read(f"{name}.tflite"))
            target = out_dir / f"{name}.onnx"
            command = [sys.executable, "-m", "tf2onnx.convert", "--tflite", str(tflite), "--output", str(target), "--opset", str(OPSET)]
            environment = {**os.environ, "PYTHONHASHSEED": "0", "TF_CPP_MIN_LOG_LEVEL": "3"}  # tf2onnx's names follow set order
            subprocess.run(command, check=True, capture_output=True, env=environment)
            import onnx

            model = canonical_names(onnx.load(str(target)))
            model.graph.doc_string = f"converted from {name}.tflite in face_landmarker.task"  # not the temp path
            onnx.save(model, str(target))
            digests[name] = hashlib.sha256(target.read_bytes()).hexdigest()
    return digests


def check() -> None:
    """Convert again into a temp folder and compare outputs with the shipped files and with LiteRT
    on the same inputs (tf2onnx's optimiser does not always order nodes alike, so bytes may differ)."""
    import numpy as np
    import onnxruntime
    from ai_edge_litert.interpreter import Interpreter

    shapes = {"face_detector": (1, 128, 128, 3), "face_landmarks_detector": (1, 256, 256, 3), "face_blendshapes": (1, 146, 2)}
    rng = np.random.default_rng(0)
    shipped = json.loads((HERE / "manifest.json").read_text())["sha256"]
    with tempfile.TemporaryDirectory() as tmp, zipfile.ZipFile(TASK) as bundle:
        convert(Path(tmp))
        for name in NETWORKS:
            data = (HERE / f"{name}.onnx").read_bytes()
            intact = hashlib.sha256(data).hexdigest() == shipped[name]
            x = rng.random(shapes[name], dtype=np.float32) * (255.0 if name == "face_blendshapes" else 1.0)
            ours = onnxruntime.InferenceSession(data).run(None, {onnxruntime.InferenceSession(data).get_inputs()[0].name: x})
            fresh_path = str(Path(tmp) / f"{name}.onnx")
            fresh_session = onnxruntime.InferenceSession(fresh_path)
            fresh = fresh_session.run(None, {fresh_session.get_inputs()[0].name: x})
            lite = Interpreter(model_content=bundle.read(f"{name}.tflite"))
            lite.allocate_tensors()
            lite.set_tensor(lite.get_input_details()[0]["index"], x)
            lite.invoke()
            reference = [lite.get_tensor(d["index"]) for d in lite.get_output_details()]
            vs_fresh = max(float(np.abs(a - b).max()) for a, b in zip(ours, fresh, strict=True))
            vs_lite = max(float(np.abs(a.reshape(b.shape) - b).max()) for a, b in zip(ours, reference, strict=True))
            print(f"{name}: sha256 {'ok' if intact else 'CHANGED'}; max |shipped - fresh conversion| {vs_fresh:.2e}; max |shipped - LiteRT| {vs_lite:.2e}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="convert to a temp folder and compare with the manifest")
    args = parser.parse_args()
    task_sha = hashlib.sha256(TASK.read_bytes()).hexdigest()
    if args.check:
        check()
        return
    digests = convert(HERE)
    import tf2onnx

    manifest = {"source": "face_landmarker.task", "source_sha256": task_sha, "converter": f"tf2onnx {tf2onnx.__version__}",
                "opset": OPSET, "sha256": digests}  # fmt: skip
    (HERE / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
    print(json.dumps(manifest, indent=2))


if __name__ == "__main__":
    main()
