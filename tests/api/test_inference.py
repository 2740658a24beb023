"""service.inference on its own: decoding, the native-size step, the model cache, batching."""

import asyncio
import io
import threading

import numpy as np
import pytest
import torch
from PIL import Image

from service.errors import InvalidInput, PayloadTooLarge
from service.inference.batching import GATHER_TURNS, DynamicBatcher
from service.inference.cache import ModelCache
from service.inference.images import ImageLimits, decode_image, pixels_to_tensor, to_native

LIMITS = ImageLimits(max_images=8, max_pixels=512 * 512)


def encode(image: Image.Image, fmt: str = "PNG") -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt)
    return buffer.getvalue()


def test_decode_gray_png_keeps_pixels_exactly():
    array = np.arange(28 * 28, dtype=np.uint8).reshape(28, 28)
    decoded = decode_image(encode(Image.fromarray(array)), in_channels=1, limits=LIMITS)
    assert decoded.shape == (1, 28, 28) and torch.equal(decoded[0], torch.from_numpy(array))


def test_decode_rgba_composites_transparency_over_black():
    rgba = np.zeros((4, 4, 4), np.uint8)
    rgba[..., :3] = 255
    rgba[0, 0, 3] = 255  # one opaque white pixel, the rest transparent white
    decoded = decode_image(encode(Image.fromarray(rgba)), in_channels=1, limits=LIMITS)
    assert decoded[0, 0, 0] == 255 and decoded[0].sum() == 255


def test_decode_rgb_for_three_channel_models():
    decoded = decode_image(encode(Image.new("L", (5, 7), 9)), in_channels=3, limits=LIMITS)
    assert decoded.shape == (3, 7, 5) and int(decoded.max()) == 9


def test_decode_refuses_a_decompression_bomb_before_decoding():
    with pytest.raises(PayloadTooLarge):
        decode_image(encode(Image.new("L", (600, 600))), in_channels=1, limits=LIMITS)


def test_decode_names_the_input_in_errors():
    with pytest.raises(InvalidInput, match=r"images\[3\]: not an image"):
        decode_image(b"GIF89 nonsense", in_channels=1, limits=LIMITS, name="images[3]")


def test_to_native_pads_to_a_square_and_resizes():
    tall = torch.full((1, 56, 28), 200, dtype=torch.uint8)
    native = to_native(tall, 28)
    assert native.shape == (1, 28, 28)
    assert native[0, :, :4].max() == 0 and native[0, :, 12:16].min() == 200  # black side bars, centred content


def test_pixels_accept_floats_and_round_them():
    tensor = pixels_to_tensor([[0.4, 254.6], [10, 20]], in_channels=1, limits=LIMITS)
    assert tensor.tolist() == [[[0, 255], [10, 20]]]


def test_model_cache_evicts_the_least_recently_used(trained):
    data = {e: trained.get(f"/jobs/1/checkpoints/{e}").content for e in (1, 2)}
    reads = []

    def reader(epoch):
        return lambda: reads.append(epoch) or data[epoch]

    cache = ModelCache(1)
    first = cache.get(1, reader(1), torch.device("cpu"))
    assert cache.get(1, reader(1), torch.device("cpu")) is first and not first.model.training
    cache.get(2, reader(2), torch.device("cpu"))
    cache.get(1, reader(1), torch.device("cpu"))
    assert reads == [1, 2, 1] and cache.hits == 1 and cache.misses == 3 and len(cache) == 1


def test_with_no_delay_requests_a_few_turns_of_the_loop_behind_join_the_same_batch():
    """No timer, yet the requests the event loop already holds (here: one or two steps from submitting) are not
    left for the next forward pass; one more step behind than the turns allowed forms a second batch."""
    model = torch.nn.Linear(3, 3)

    async def main(behind: int) -> int:
        batcher = DynamicBatcher(max_batch=64, max_delay_s=0)

        async def request(steps: int) -> torch.Tensor:
            for _ in range(steps):
                await asyncio.sleep(0)
            return await batcher.submit(model, torch.randn(1, 3))

        await asyncio.gather(request(0), *(request(steps) for steps in range(1, behind + 1)))
        return batcher.batches

    assert asyncio.run(main(GATHER_TURNS)) == 1
    assert asyncio.run(main(GATHER_TURNS + 2)) == 2


def test_dynamic_batcher_joins_concurrent_requests_and_keeps_their_order():
    """Each request gets its own rows of the shared forward pass: its logits, in order."""
    model = torch.nn.Linear(3, 3)

    async def main():
        batcher = DynamicBatcher(max_batch=64, max_delay_s=0.05)
        inputs = [torch.randn(n, 3) for n in (1, 2, 1, 3)]
        outputs = await asyncio.gather(*(batcher.submit(model, x) for x in inputs))
        return batcher.batches, inputs, outputs

    batches, inputs, outputs = asyncio.run(main())
    assert batches == 1
    for x, y in zip(inputs, outputs, strict=True):
        torch.testing.assert_close(y, model(x).detach())


def test_native_images_of_concurrent_requests_are_transformed_once_per_batch_off_the_event_loop():
    """The predict paths hand over uint8 images; the batcher joins them and runs their transform once per forward
    pass, in the worker thread, with the same logits as transforming each request alone."""
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(4, 3))
    calls: list[tuple[int, bool]] = []  # (images transformed, whether on the event loop's thread)

    def transform(batch: torch.Tensor) -> torch.Tensor:
        calls.append((batch.shape[0], threading.get_ident() == loop_thread))
        return batch.to(torch.float32).div(255)

    async def main() -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        batcher = DynamicBatcher(max_batch=64, max_delay_s=0.05)
        inputs = [torch.randint(0, 256, (n, 1, 2, 2), dtype=torch.uint8) for n in (1, 2, 1)]
        outputs = await asyncio.gather(*(batcher.submit(model, x, transform) for x in inputs))
        return inputs, list(outputs)

    loop_thread = threading.get_ident()  # asyncio.run runs the loop in this thread
    inputs, outputs = asyncio.run(main())
    assert calls == [(4, False)]
    for x, y in zip(inputs, outputs, strict=True):
        torch.testing.assert_close(y, model(x.to(torch.float32).div(255)).detach())


def test_a_batch_of_native_images_and_ready_float_inputs_transforms_only_the_images():
    """A checkpoint's batcher may hold an Open Inference Protocol FP32 request (the model's own input) beside
    uint8 images: each keeps its own rows, and only the images go through the transform."""
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(4, 3))

    def transform(batch: torch.Tensor) -> torch.Tensor:
        return batch if batch.dtype != torch.uint8 else batch.to(torch.float32).div(255)

    async def main() -> list[torch.Tensor]:
        batcher = DynamicBatcher(max_batch=64, max_delay_s=0.05)
        return list(await asyncio.gather(*(batcher.submit(model, x, transform) for x in (images, ready))))

    images, ready = torch.randint(0, 256, (2, 1, 2, 2), dtype=torch.uint8), torch.randn(1, 1, 2, 2)
    by_images, by_ready = asyncio.run(main())
    torch.testing.assert_close(by_images, model(images.to(torch.float32).div(255)).detach())
    torch.testing.assert_close(by_ready, model(ready).detach())
