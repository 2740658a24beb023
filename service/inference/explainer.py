"""The explanation service: a prediction and, per image, a heatmap of what the model looked at.

It takes the same inputs, limits and checkpoint choice as predict (service/inference/predictor.py) and runs on
the same thread pool (the predictor's limiter). Attribution needs gradients, so each call works on its own
copy of the cached eval-mode model: the cached model is never hooked, never has gradients, and a predict
running beside it never sees a Grad-CAM hook. With an onnxruntime backend the explainer keeps torch models
of its own. `explain` takes a function that picks the checkpoint, so a route over another name for a model
(a registry entry) is one call: `explainer.explain(lambda: its_choice(...), raw, options)`.
"""

import copy
import time
from collections.abc import Callable
from dataclasses import dataclass

import torch
from anyio import to_thread

from service.config import ServingSettings
from service.errors import InvalidInput
from service.inference.attribution import Method, attribute, black
from service.inference.cache import ModelCache, on_device
from service.inference.images import prepare_batch
from service.inference.inputs import RawInputs, decode_all, parse_json_inputs
from service.inference.predictor import Choice, Prediction, Predictor, to_predictions
from service.storage import registry
from service.storage.registry import ResolvedVersion
from service.training.checkpoints import LoadedCheckpoint
from service.training.runtime import resolve_device

# Image x step evaluations per chunk of integrated gradients; the budget is checked between chunks.
CHUNK_EVALUATIONS = 256


class ExplainBudgetExceeded(InvalidInput):
    """An explanation ran out of its time budget (CONVLAB_EXPLAIN_MAX_SECONDS) and was stopped."""


@dataclass(frozen=True)
class ExplainOptions:
    """What to explain: the method, the class (None: the predicted one), integrated gradients' steps, top-k."""

    method: Method
    target: int | None = None
    steps: int = 32
    top_k: int = 3


@dataclass(frozen=True)
class Explanation:
    """One image: its prediction, the class explained, the heatmap [H, W] in [0, 1] and the image the model saw
    ([C, H, W] in [0, 1]: padded to a square and resized to the model's input size)."""

    prediction: Prediction
    target: tuple[int, str, float]
    heatmap: torch.Tensor
    image: torch.Tensor


@dataclass(frozen=True)
class Explanations:
    """One explanation per input image, in order, and the checkpoint that made them."""

    job_id: int
    checkpoint_epoch: int
    checkpoint_sha256: str
    method: Method
    items: list[Explanation]


class Explainer:
    """Explains predictions: built once by the app's lifespan, beside the Predictor whose cache it shares."""

    def __init__(self, predictor: Predictor, settings: ServingSettings) -> None:
        self.predictor = predictor
        self.max_seconds = settings.explain_max_seconds
        shares = settings.inference_backend == "torch"  # else the predictor's cache may hold onnxruntime models
        self.cache = predictor.cache if shares else ModelCache(settings.model_cache_size, prepare=on_device)

    async def explain_job(
        self, job_id: int, raw: RawInputs | bytes, *, epoch: int | None, options: ExplainOptions
    ) -> Explanations:
        """Explain the images of `raw` with the job's checkpoint (the best, or that of `epoch`)."""
        return await self.explain(lambda: self.predictor.choose(job_id, epoch), raw, options)

    async def explain_version(
        self, name: str, raw: RawInputs | bytes, *, alias: str | None, version: int | None, options: ExplainOptions
    ) -> tuple[ResolvedVersion, Explanations]:
        """Explain with a registered model's version: the one an alias (default `prod`) or number names now."""
        found: list[ResolvedVersion] = []

        def pick() -> Choice:
            with self.predictor.session_factory() as session:
                found.append(registry.resolve_model_version(session, name, alias=alias, version=version))
            return self.predictor.choose(found[0].job_id, found[0].epoch)

        result = await self.explain(pick, raw, options)
        return found[0], result

    async def explain(
        self, pick: Callable[[], Choice], raw: RawInputs | bytes, options: ExplainOptions
    ) -> Explanations:
        """Explain the images of `raw` with the checkpoint `pick()` chooses (called in the worker thread)."""
        return await to_thread.run_sync(self._run, pick, raw, options, limiter=self.predictor.limiter)

    def _run(self, pick: Callable[[], Choice], raw: RawInputs | bytes, options: ExplainOptions) -> Explanations:
        choice = pick()
        loaded = self.cache.get(choice.key, lambda: self.predictor.read(choice), self._device())
        limits = self.predictor.limits
        parsed = parse_json_inputs(raw, limits) if isinstance(raw, bytes) else raw
        batch = prepare_batch(loaded, decode_all(parsed, in_channels=loaded.in_channels, limits=limits))
        items = explain_batch(loaded, batch, options, deadline=time.monotonic() + self.max_seconds)
        return Explanations(choice.key[0], choice.epoch, choice.key[2], options.method, items)

    def _device(self) -> torch.device:
        return resolve_device(self.predictor.device)


def private_copy(model: torch.nn.Module) -> torch.nn.Module:
    """An eval-mode copy of a cached model for one explanation, its parameters frozen (inputs get gradients)."""
    clone = copy.deepcopy(model).eval()
    for parameter in clone.parameters():
        parameter.requires_grad_(False)
    return clone


def _targets(probs: torch.Tensor, target: int | None, num_classes: int) -> torch.Tensor:
    if target is None:
        return probs.argmax(dim=1)
    if not 0 <= target < num_classes:
        raise InvalidInput(
            f"target: class {target} is not one of the model's {num_classes} classes (0..{num_classes - 1})"
        )
    return torch.full((probs.shape[0],), target, dtype=torch.int64)


def _maps(
    loaded: LoadedCheckpoint,
    model: torch.nn.Module,
    batch: torch.Tensor,
    targets: torch.Tensor,
    options: ExplainOptions,
    deadline: float,
) -> torch.Tensor:
    """The heatmaps [N, H, W], chunk by chunk, stopped (422) once the budget is spent with work left."""
    per_chunk = max(1, CHUNK_EVALUATIONS // options.steps) if options.method == "integrated_gradients" else 64
    baseline = black(batch, loaded.mean, loaded.std)
    maps = []
    for start in range(0, batch.shape[0], per_chunk):
        if start and time.monotonic() > deadline:
            raise ExplainBudgetExceeded(
                f"budget: the explanation was stopped after {start} of {batch.shape[0]} images, past its time "
                "budget (CONVLAB_EXPLAIN_MAX_SECONDS); send fewer images or fewer steps"
            )
        part = slice(start, start + per_chunk)
        maps.append(
            attribute(
                model,
                batch[part],
                targets[part],
                method=options.method,
                architecture=loaded.architecture,
                baseline=baseline[part],
                steps=options.steps,
            )
        )
    return torch.cat(maps)


def explain_batch(
    loaded: LoadedCheckpoint, batch: torch.Tensor, options: ExplainOptions, *, deadline: float = float("inf")
) -> list[Explanation]:
    """Predict and explain a preprocessed batch [N, C, S, S] with a loaded checkpoint's torch model."""
    device = next(loaded.model.parameters()).device
    model = private_copy(loaded.model)
    batch = batch.to(device)
    with torch.no_grad():
        probs = torch.softmax(model(batch).float(), dim=1)
    targets = _targets(probs, options.target, loaded.num_classes).to(device)
    maps = _maps(loaded, model, batch, targets, options, deadline).cpu()
    names = loaded.class_names
    predictions = to_predictions(probs.cpu(), names, options.top_k)
    seen = seen_images(batch.cpu(), loaded.mean, loaded.std)
    return [
        Explanation(p, (int(t), names[int(t)], float(probs[i, int(t)])), maps[i], seen[i])
        for i, (p, t) in enumerate(zip(predictions, targets.tolist(), strict=True))
    ]


def seen_images(batch: torch.Tensor, mean: tuple[float, ...], std: tuple[float, ...]) -> torch.Tensor:
    """The batch as images in [0, 1]: the training transform's normalization undone."""
    m = torch.tensor(mean).view(1, -1, 1, 1)
    s = torch.tensor(std).view(1, -1, 1, 1)
    return (batch * s + m).clamp_(0.0, 1.0)
