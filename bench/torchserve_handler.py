"""TorchServe handler of the serving benchmark: convlab's checkpoint, decoding, transform and answer, batched.

Archived into a .mar by bench/torchserve.py; TorchServe calls `handle(None, context)` once to load, then
`handle(rows, context)` with up to `batchSize` requests (each a raw PNG body). It reuses convlab's own
functions so that both servers answer identically and differ only in how they serve.
"""

import json
from pathlib import Path
from typing import Any

import torch

from service.inference.images import ImageLimits, decode_image, prepare_batch
from service.inference.predictor import to_predictions
from service.training.checkpoints import LoadedCheckpoint, load_checkpoint

LIMITS = ImageLimits(max_images=256, max_pixels=4096 * 4096)
TOP_K = 3
_state: dict[str, LoadedCheckpoint] = {}


def handle(data: list[dict[str, Any]] | None, context: Any) -> list[str] | None:
    if "model" not in _state:
        torch.set_num_threads(1)  # like the convlab API process under the benchmark (CONVLAB_INFERENCE_THREADS=1)
        model_dir = Path(context.system_properties["model_dir"])
        loaded = load_checkpoint((model_dir / "checkpoint.safetensors").read_bytes())
        loaded.model.eval()
        _state["model"] = loaded
    if data is None:
        return None
    loaded = _state["model"]
    images = []
    for row in data:
        body = row.get("data") or row.get("body")
        images.append(decode_image(bytes(body), in_channels=loaded.in_channels, limits=LIMITS))
    with torch.inference_mode():
        probs = torch.softmax(loaded.model(prepare_batch(loaded, images)).float(), dim=1)
    return [
        json.dumps(
            {
                "class_index": p.class_index,
                "label": p.label,
                "probability": p.probability,
                "top_k": [{"class_index": i, "label": label, "probability": q} for i, label, q in p.top_k],
            }
        )
        for p in to_predictions(probs, loaded.class_names, TOP_K)
    ]
