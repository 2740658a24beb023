"""The Open Inference Protocol against a live `convlab serve --api-workers 2`, spoken by tritonclient itself
(unmodified): health, readiness, metadata, inference with JSON and binary tensors and the classification
extension; logits equal to what the torch model computes on predict's own preparation of 200 real images."""

import io
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest
import torch
import tritonclient.http as triton
from PIL import Image
from tritonclient.utils import InferenceServerException

from service.config import Settings
from tests.api.oip_live import IMAGES, Live, live_server


@pytest.fixture(scope="module")
def live(trained_settings: Settings, tmp_path_factory: pytest.TempPathFactory, data_dir: Path) -> Iterator[Live]:
    with live_server(trained_settings, tmp_path_factory.mktemp("oip-live"), data_dir) as server:
        yield server


@pytest.fixture(scope="module")
def client(live: Live) -> triton.InferenceServerClient:
    httpx.put(f"{live.url}/models/fashion/aliases/prod", json={"version": 2}, headers=live.headers["admin"])
    return triton.InferenceServerClient(live.url.removeprefix("http://"), network_timeout=120.0)


def png(image: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(image[0]).save(buffer, format="PNG")
    return buffer.getvalue()


def infer(client: triton.InferenceServerClient, live: Live, tensor: triton.InferInput, version: str = "", **output):
    outputs = [triton.InferRequestedOutput("logits", **output), triton.InferRequestedOutput("probabilities", **output)]
    headers = dict(live.headers["client"])  # a copy: tritonclient adds Inference-Header-Content-Length to it
    return client.infer("fashion", [tensor], model_version=version, outputs=outputs, headers=headers)


def test_server_and_model_are_live_and_ready(client: triton.InferenceServerClient, live: Live) -> None:
    auth = live.headers["client"]
    assert client.is_server_live() and client.is_server_ready()
    assert client.is_model_ready("fashion", headers=auth)
    assert client.is_model_ready("fashion", "1", headers=auth) and client.is_model_ready(
        "fashion", "prod", headers=auth
    )
    assert not client.is_model_ready("fashion", "7", headers=auth) and not client.is_model_ready("nope", headers=auth)
    assert not client.is_model_ready("fashion")  # no token: 401


def test_model_metadata_names_inputs_and_outputs_with_datatype_and_shape(
    client: triton.InferenceServerClient,
    live: Live,
) -> None:
    metadata = client.get_model_metadata("fashion", headers=live.headers["client"])
    assert metadata["inputs"] == [{"name": "input", "datatype": "FP32", "shape": [-1, 1, 28, 28]}]
    assert [(o["name"], o["shape"]) for o in metadata["outputs"]] == [("logits", [-1, 10]), ("probabilities", [-1, 10])]
    assert metadata["versions"] == ["1", "2"] and metadata["parameters"]["version"] == 2
    assert client.get_server_metadata(headers=live.headers["client"])["extensions"] == [
        "binary_tensor_data",
        "classification",
    ]


@pytest.mark.parametrize("binary", [True, False], ids=["binary", "json"])
def test_uint8_pixels_give_the_torch_models_logits_for_200_real_images(
    client: triton.InferenceServerClient,
    live: Live,
    binary: bool,
) -> None:
    tensor = triton.InferInput("input", [IMAGES, 1, 28, 28], "UINT8").set_data_from_numpy(
        live.images, binary_data=binary
    )
    result = infer(client, live, tensor, "1", binary_data=binary)
    logits = torch.from_numpy(result.as_numpy("logits").copy())
    torch.testing.assert_close(logits, live.logits[1], atol=1e-5, rtol=0)
    probabilities = torch.from_numpy(result.as_numpy("probabilities").copy())
    torch.testing.assert_close(probabilities, torch.softmax(live.logits[1], dim=1), atol=1e-5, rtol=0)
    assert result.get_response()["model_version"] == "1"


def test_png_bytes_and_normalized_fp32_give_the_same_logits(
    client: triton.InferenceServerClient,
    live: Live,
) -> None:
    files = np.array([png(image) for image in live.images[:32]], dtype=np.object_)
    tensor = triton.InferInput("input", [32], "BYTES").set_data_from_numpy(files, binary_data=True)
    torch.testing.assert_close(
        torch.from_numpy(infer(client, live, tensor, "prod").as_numpy("logits").copy()),
        live.logits[2][:32],
        atol=1e-5,
        rtol=0,
    )
    normalized = np.ascontiguousarray(live.normalized[:32])
    tensor = triton.InferInput("input", [32, 1, 28, 28], "FP32").set_data_from_numpy(normalized, binary_data=False)
    logits = torch.from_numpy(infer(client, live, tensor, binary_data=False).as_numpy("logits").copy())
    torch.testing.assert_close(logits, live.logits[2][:32], atol=1e-5, rtol=0)


def test_logits_agree_with_the_jobs_predict_probabilities(live: Live) -> None:
    files = [("file", (f"{i}.png", png(image), "image/png")) for i, image in enumerate(live.images)]
    answer = httpx.post(
        f"{live.url}/jobs/1/predict?top_k=10&checkpoint=1", files=files, headers=live.headers["admin"], timeout=120
    ).json()
    by_predict = torch.zeros(IMAGES, 10)
    for row, prediction in enumerate(answer["predictions"]):
        for score in prediction["top_k"]:
            by_predict[row, score["class_index"]] = score["probability"]
    torch.testing.assert_close(by_predict, torch.softmax(live.logits[1], dim=1), atol=1e-5, rtol=0)


@pytest.mark.parametrize("binary", [True, False], ids=["binary", "json"])
def test_classification_extension_gives_score_index_label_strings(
    client: triton.InferenceServerClient,
    live: Live,
    binary: bool,
) -> None:
    tensor = triton.InferInput("input", [8, 1, 28, 28], "UINT8").set_data_from_numpy(
        live.images[:8], binary_data=binary
    )
    result = infer(client, live, tensor, "1", binary_data=binary, class_count=3)
    strings = result.as_numpy("probabilities")
    assert strings.shape == (8, 3)
    expected = torch.softmax(live.logits[1][:8], dim=1)
    for row, ranked in enumerate(strings):
        score, index, label = (ranked[0].decode() if isinstance(ranked[0], bytes) else ranked[0]).split(":", 2)
        assert int(index) == int(expected[row].argmax()) and abs(float(score) - float(expected[row].max())) < 1e-5
        assert label  # the class's name


def test_errors_are_the_protocols_error_json(client: triton.InferenceServerClient, live: Live) -> None:
    tensor = triton.InferInput("input", [1, 1, 28, 28], "UINT8").set_data_from_numpy(live.images[:1])
    with pytest.raises(InferenceServerException, match="no version 9"):
        infer(client, live, tensor, "9")
    bad = httpx.post(f"{live.url}/v2/models/fashion/infer", content=b"{", headers=live.headers["client"])
    assert bad.status_code == 400 and set(bad.json()) == {"error"}
    assert httpx.get(f"{live.url}/v2/models/fashion").status_code == 401


def _load(
    live: Live, pngs: list[bytes], stop: threading.Event, answers: list[tuple[int, httpx.Response]], i: int
) -> None:
    """One client: predict by alias `live` in a loop (its own keep-alive connection) until `stop`."""
    with httpx.Client(base_url=live.url, headers=live.headers["client"], timeout=60) as http:
        sent = 0
        while not stop.is_set():
            k = (i * 5 + sent) % len(pngs)
            sent += 1
            files = [("file", (f"{k}.png", pngs[k], "image/png"))]
            answers.append((k, http.post("/models/fashion/predict?alias=live&top_k=1", files=files)))


def test_hot_swap_under_load_fails_no_request_and_every_answer_is_its_versions_own(live: Live) -> None:
    """16 clients predict by alias while it moves v1 -> v2 -> v1, ten times (30 moves, by two tokens in turn),
    on 2 API processes: no answer but 200, each names v1 or v2 and agrees with that version's own model; a
    request sent after a move returned is served by the new version; the history lists the 30 moves in order."""
    pngs = [png(image) for image in live.images[:32]]
    plan = [1, 2, 1] * 10
    movers = ["mover-a", "mover-b"]
    move = lambda j: httpx.put(  # noqa: E731
        f"{live.url}/models/fashion/aliases/live", json={"version": plan[j]}, headers=live.headers[movers[j % 2]]
    )
    assert move(0).status_code == 200
    stop, answers = threading.Event(), []
    threads = [threading.Thread(target=_load, args=(live, pngs, stop, answers, i)) for i in range(16)]
    for thread in threads:
        thread.start()
    after_move = []
    try:
        for j in range(1, len(plan)):
            time.sleep(0.1)
            assert move(j).status_code == 200
            after_move.append((plan[j], _predict_fresh(live, pngs[0])))
    finally:
        stop.set()
        for thread in threads:
            thread.join()
    assert [a.status_code for _, a in answers if a.status_code != 200] == []
    expected_top = {v: live.logits[v][:32].argmax(dim=1).tolist() for v in (1, 2)}
    served = [(k, a.json()["version"], a.headers["X-Model-Version"], a.json()["predictions"][0]) for k, a in answers]
    assert {version for _, version, _, _ in served} == {1, 2} and all(str(v) == h for _, v, h, _ in served)
    assert all(top["class_index"] == expected_top[v][k] for k, v, _, top in served)
    assert [(wanted, answer.json()["version"]) for wanted, answer in after_move] == [(w, w) for w, _ in after_move]
    history = httpx.get(f"{live.url}/models/fashion/aliases/live/history", headers=live.headers["admin"]).json()
    recorded = [(m["from_version"], m["to_version"], m["moved_by"]) for m in history]
    assert recorded == [(plan[j - 1] if j else None, plan[j], movers[j % 2]) for j in range(len(plan))]
    print(f"hot swap: {len(answers)} answers during {len(plan)} moves")


def _predict_fresh(live: Live, image: bytes) -> httpx.Response:
    """A predict by alias on a new connection (either API process may take it)."""
    files = [("file", ("0.png", image, "image/png"))]
    return httpx.post(
        f"{live.url}/models/fashion/predict?alias=live", files=files, headers=live.headers["client"], timeout=60
    )
