"""service.inference on its own: decoding, the native-size step, the model cache, batching."""

import asyncio
import io
import platform
import random
import struct
import sys
import threading
import zlib

import numpy as np
import pytest
import torch
from PIL import Image

from service.errors import InvalidInput, PayloadTooLarge
from service.inference import images
from service.inference.batching import GATHER_TURNS, DynamicBatcher
from service.inference.cache import ModelCache
from service.inference.images import ImageLimits, decode_image, pixels_to_tensor, to_native

LIMITS = ImageLimits(max_images=8, max_pixels=512 * 512)


def encode(image: Image.Image, fmt: str = "PNG", **options: object) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **options)
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


def chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def bare_png(
    array: np.ndarray, *, interlace: int = 0, idat: bytes | None = None, size: tuple[int, int] | None = None
) -> bytes:
    """A PNG of only IHDR, IDAT and IEND for a grey [H, W] or RGB [H, W, 3] uint8 array, by hand: Adam7
    interlaced when `interlace` is 1; `idat` replaces the compressed pixels, `size` the width and height."""
    height, width = array.shape[:2]
    passes = [(0, 0, 8, 8), (0, 4, 8, 8), (4, 0, 8, 4), (0, 2, 4, 4), (2, 0, 4, 2), (0, 1, 2, 2), (1, 0, 2, 1)]
    rows = [array[y0::dy, x0::dx] for y0, x0, dy, dx in (passes if interlace else [(0, 0, 1, 1)])]
    raw = b"".join(b"\x00" + row.tobytes() for sub in rows if sub.size for row in sub)
    width, height = size or (width, height)
    header = struct.pack(">IIBBBBB", width, height, 8, 0 if array.ndim == 2 else 2, 0, 0, interlace)
    body = zlib.compress(raw) if idat is None else idat
    return images.PNG_SIGNATURE + chunk(b"IHDR", header) + chunk(b"IDAT", body) + chunk(b"IEND", b"")


def pillow_decodes(data: bytes, mode: str) -> torch.Tensor:
    """What Pillow makes of `data` in `mode`, as uint8 [C, H, W]."""
    array = torch.from_numpy(np.array(Image.open(io.BytesIO(data)).convert(mode)))
    return array.unsqueeze(0) if array.dim() == 2 else array.permute(2, 0, 1)


ON_X86_64_LINUX = sys.platform == "linux" and platform.machine() == "x86_64"


@pytest.mark.skipif(not ON_X86_64_LINUX, reason="pyspng is installed on x86-64 Linux only")
def test_a_bare_png_in_the_models_mode_is_decoded_by_libspng_pixel_for_pixel_as_pillow_decodes_it():
    rng = np.random.default_rng(1)
    grey, rgb = rng.integers(0, 256, (28, 31), np.uint8), rng.integers(0, 256, (20, 17, 3), np.uint8)
    for array, channels, mode in ((grey, 1, "L"), (rgb, 3, "RGB")):
        for data in (bare_png(array), encode(Image.fromarray(array))):  # by hand, and Pillow's own PNG
            fast = images._plain_png(data, in_channels=channels, limits=LIMITS, name="image")
            assert fast is not None  # libspng's path, not Pillow's
            assert torch.equal(fast, pillow_decodes(data, mode))
            assert torch.equal(decode_image(data, in_channels=channels, limits=LIMITS), fast)


def test_a_png_not_small_bare_whole_and_plain_goes_to_pillow():
    grey = np.random.default_rng(2).integers(0, 256, (12, 9), np.uint8)
    plain = bare_png(grey)
    after_header = len(images.PNG_SIGNATURE) + 25
    gamma = plain[:after_header] + chunk(b"gAMA", struct.pack(">I", 40000)) + plain[after_header:]
    bad_crc = plain[:-1] + bytes([plain[-1] ^ 1])
    stream = bytearray(zlib.compress(b"".join(b"\x00" + row.tobytes() for row in grey)))
    stream[-1] ^= 1  # the zlib stream's own checksum: libspng, as pyspng sets it up, would not look
    others = [
        (gamma, 1, "L"),
        (bad_crc, 1, "L"),
        (encode(Image.fromarray(grey), transparency=5), 1, "L"),
        (bare_png(grey, interlace=1), 1, "L"),
        (bare_png(np.tile(grey, (8, 10))), 1, "L"),  # 96x90: past PLAIN_MAX_SAMPLES, Pillow is the cheaper
        (plain, 3, "RGB"),
        (plain + b"x", 1, "L"),
    ]
    for data, channels, mode in others:
        assert images._plain_png(data, in_channels=channels, limits=LIMITS, name="image") is None
        assert torch.equal(decode_image(data, in_channels=channels, limits=LIMITS), pillow_decodes(data, mode))
    damaged = bare_png(grey, idat=bytes(stream))
    assert images._plain_png(damaged, in_channels=1, limits=LIMITS, name="image") is None
    with pytest.raises(InvalidInput, match=r"images\[0\]: corrupt or truncated image"):
        decode_image(damaged, in_channels=1, limits=LIMITS, name="images[0]")


@pytest.mark.skipif(not ON_X86_64_LINUX, reason="pyspng is installed on x86-64 Linux only")
def test_a_bare_png_is_refused_by_its_header_size_and_by_libspng_when_its_rows_are_bad():
    bomb = bare_png(np.zeros((1, 1), np.uint8), size=(100_000, 100_000))
    with pytest.raises(PayloadTooLarge, match="100000x100000 pixels"):
        decode_image(bomb, in_channels=1, limits=LIMITS)
    bad_filter = bare_png(np.zeros((8, 8), np.uint8), idat=zlib.compress(b"\x09" + b"\x00" * 71))  # types 0-4
    with pytest.raises(InvalidInput, match=r"images\[0\]: corrupt or truncated image \(pyspng"):
        decode_image(bad_filter, in_channels=1, limits=LIMITS, name="images[0]")
    with pytest.raises(OSError):
        pillow_decodes(bad_filter, "L")  # Pillow refuses it too


def mutated_png(rng: random.Random) -> tuple[bytes, int]:
    """A small PNG by Pillow with one IHDR field, one compressed byte or one scanline byte changed (rows sometimes
    cut short or lengthened), its CRCs made right again; and its channels."""
    channels = rng.choice([1, 3])
    shape = (rng.randint(1, 30), rng.randint(1, 30), 3)[: 2 if channels == 1 else 3]
    data = encode(Image.fromarray(np.random.default_rng(rng.randrange(1 << 30)).integers(0, 256, shape, np.uint8)))
    header, idat = bytearray(data[16:29]), data[41:-16]  # Pillow writes IHDR, one IDAT, IEND
    what = rng.choice(["header", "stream", "rows"])
    if what == "header":
        header[rng.randrange(8, 13)] = rng.randrange(256)  # depth, colour type, methods
    elif what == "stream":
        idat = bytearray(idat)
        idat[rng.randrange(len(idat))] = rng.randrange(256)
    else:
        rows = bytearray(zlib.decompress(idat))
        rows[rng.randrange(len(rows))] = rng.randrange(256)
        rows = rows + b"\x00" * rng.choice([0, 0, 3]) if rng.random() < 0.5 else rows[: -rng.choice([1, 5])]
        idat = zlib.compress(bytes(rows))
    png = images.PNG_SIGNATURE + chunk(b"IHDR", bytes(header)) + chunk(b"IDAT", bytes(idat)) + chunk(b"IEND", b"")
    return png, channels


def test_mutated_pngs_that_reach_libspng_decode_as_pillow_decodes_them_or_both_refuse():
    rng, reached = random.Random(26), 0
    for _ in range(600):
        data, channels = mutated_png(rng)
        try:
            fast = images._plain_png(data, in_channels=channels, limits=LIMITS, name="image")
        except InvalidInput:
            with pytest.raises(OSError):  # Pillow refuses it too
                pillow_decodes(data, "L" if channels == 1 else "RGB")
            reached += 1
            continue
        if fast is not None:
            assert torch.equal(fast, pillow_decodes(data, "L" if channels == 1 else "RGB"))
            reached += 1
    assert reached > 50 or not ON_X86_64_LINUX  # the mutations do reach libspng


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
