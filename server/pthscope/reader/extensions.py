"""A checkpoint whose file name promises another format: the content decides, the name gets a
warning saying how to load what is really there (a safetensors file named `.pth`, a torch file
named `.safetensors` or `.onnx`). Formats torch.load cannot read say so in their own readers.
"""

from __future__ import annotations

import os

from .model import Problem

_TORCH_FORMATS = {"torch-zip", "torch-legacy", "pickle", "torchscript", "torch-tar", "torch-distributed"}
HOW_TO_LOAD = {
    "torch-zip": "`torch.load(path, weights_only=True)`",
    "torch-legacy": "`torch.load(path, weights_only=True)`",
    "pickle": "`pickle.load(f)`, which runs whatever it names: only for files you trust (torch.load cannot read a "
              "plain pickle: weights_only=True refuses it, and False runs it, then fails)",
    "torchscript": "`torch.jit.load(path)` (it runs the archive's code: only for files you trust)",
    "torch-tar": "`torch.load(path, weights_only=False)` (weights_only=True refuses this format, and False runs its "
                 "pickles: only for files you trust)",
    "torch-distributed": "`torch.distributed.checkpoint.load(state_dict, checkpoint_id=folder)` into a state dict "
                         "of the right shapes (it unpickles the folder's .metadata unrestricted: only for folders "
                         "you trust)",
    "safetensors": "`safetensors.torch.load_file(path)`",
}
# Extensions that promise a format, and the formats they promise.
_PROMISES: dict[str, tuple[str, set[str]]] = {
    ".safetensors": ("safetensors", {"safetensors"}),
    ".pth": ("a torch checkpoint", _TORCH_FORMATS), ".pt": ("a torch checkpoint", _TORCH_FORMATS),
    ".ckpt": ("a torch checkpoint", _TORCH_FORMATS), ".bin": ("a torch checkpoint", _TORCH_FORMATS),
    ".tar": ("a torch checkpoint", _TORCH_FORMATS),
    ".gguf": ("GGUF", {"gguf"}), ".onnx": ("ONNX", {"onnx"}), ".pt2": ("a torch.export archive", {"torch-export"}),
    ".npy": ("a NumPy array", {"numpy"}), ".npz": ("NumPy arrays", {"npz"}),
    ".h5": ("HDF5", {"hdf5"}), ".hdf5": ("HDF5", {"hdf5"}), ".tflite": ("TensorFlow Lite", {"tflite"}),
}


def extension_mismatch(path: str, content_format: str) -> list[Problem]:
    """A torch or safetensors file whose name promises another format: content wins, the name
    gets a warning saying how to load what is really there. (Other formats' readers say it.)"""
    if content_format not in HOW_TO_LOAD:
        return []
    extension = os.path.splitext(path)[1].lower()
    promised = _PROMISES.get(extension)
    if promised is None or content_format in promised[1]:
        return []
    label, _ = promised
    what = "a safetensors file" if content_format == "safetensors" else f"a torch checkpoint ({content_format})"
    failure = {"safetensors": " (torch.load fails on it: \"invalid load key\" or \"Unsupported operand\")",
               ".safetensors": " (safetensors fails on it with \"header too large\")"}
    fails = failure.get(content_format) or failure.get(extension, "")
    return [Problem("extension", f"{what} named {extension}, which promises {label}{fails}: the content decides — "
                    f"load it with {HOW_TO_LOAD[content_format]}, and consider renaming the file", where="file name")]
