"""Where MediaPipe's face-mesh and BlazeFace model files live, and how
`make build` takes them out of the mediapipe wheel from PyPI.

The wheel itself is never installed (its protobuf pin clashes with
TensorFlow 2.21's); `make face-mesh-models` downloads it with
`pip download --no-deps` and this module's main() copies the model files and
the wheel's Apache-2.0 licence into build/face_mesh_models/ (or
$MGC_FACE_MESH_MODELS), checking each file's SHA-256. Standard library only:
it runs before the package is installed.

    python -m mgc.preprocess.mesh_models --wheel_dir=DIR --output=DIR
"""
import argparse
import glob
import hashlib
import os
import sys
import zipfile

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DEFAULT_DIR = os.path.join(REPO_ROOT, "build", "face_mesh_models")
ENVIRONMENT_VARIABLE = "MGC_FACE_MESH_MODELS"
WHEEL = "mediapipe==0.10.21"
# Saved name -> (path inside the wheel, SHA-256 of the file).
FILES = {
    "face_landmark.tflite": (
        "mediapipe/modules/face_landmark/face_landmark.tflite",
        "1055cb9d4a9ca8b8c688902a3a5194311138ba256bcc94e336d8373a5f30c814"),
    "face_detection_full_range_sparse.tflite": (
        "mediapipe/modules/face_detection/face_detection_full_range_sparse.tflite",
        "2c3728e6da56f21e21a320433396fb06d40d9088f2247c05e5635a688d45dfe1"),
    "face_detection_short_range.tflite": (
        "mediapipe/modules/face_detection/face_detection_short_range.tflite",
        "bbff11cebd1eb27a1e004cae0b0e63ec8c551cbf34a4451148b4908b8db3eca8"),
    "LICENSE_mediapipe.txt": (
        "mediapipe-0.10.21.dist-info/LICENSE",
        "8707eef0533987efc5b155d64761eeb6e20793f50b9bd1a68dad1cf4719d0ed8"),
}


class MeshModelError(RuntimeError):
    """A face-mesh model file is missing or not the expected one."""


def model_dir():
    """The folder the model files are read from."""
    return os.environ.get(ENVIRONMENT_VARIABLE) or DEFAULT_DIR


def model_file(name):
    """Path of one of FILES; MeshModelError saying how to get it when absent."""
    path = os.path.join(model_dir(), name)
    if not os.path.isfile(path):
        raise MeshModelError(
            f"{path} not found: the face-mesh backend needs MediaPipe's model files, which "
            f"`make build` (target face-mesh-models) takes out of the PyPI wheel {WHEEL} "
            f"(pip download --no-deps {WHEEL}; python -m mgc.preprocess.mesh_models "
            f"--wheel_dir=... --output={model_dir()}), and the LiteRT runtime "
            "(pip install ai-edge-litert); or use --landmarks_model=dlib")
    return path


def sha256(data):
    return hashlib.sha256(data).hexdigest()


def extract(wheel_path, output):
    """Copies FILES out of the wheel into `output`, checking their hashes."""
    os.makedirs(output, exist_ok=True)
    with zipfile.ZipFile(wheel_path) as wheel:
        for name, (member, digest) in FILES.items():
            try:
                data = wheel.read(member)
            except KeyError:
                raise MeshModelError(f"{wheel_path} has no {member}") from None
            if sha256(data) != digest:
                raise MeshModelError(f"{wheel_path}: {member} has SHA-256 {sha256(data)}, "
                                     f"expected {digest}")
            temporary = os.path.join(output, name + ".part")
            with open(temporary, "wb") as stream:
                stream.write(data)
            os.replace(temporary, os.path.join(output, name))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--wheel_dir", required=True, help="folder holding the mediapipe wheel")
    parser.add_argument("--output", default=DEFAULT_DIR)
    args = parser.parse_args(argv)
    wheels = sorted(glob.glob(os.path.join(args.wheel_dir, "mediapipe-*.whl")))
    if not wheels:
        print(f"error: no mediapipe wheel in {args.wheel_dir}", file=sys.stderr)
        return 2
    try:
        extract(wheels[-1], args.output)
    except (MeshModelError, zipfile.BadZipFile, OSError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    print(f"{len(FILES)} files from {os.path.basename(wheels[-1])} in {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
