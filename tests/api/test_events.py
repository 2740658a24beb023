"""GET /jobs/{id}/events: Server-Sent Events replayed from the database, resumable, closing when done."""

import json

from tests.api.conftest import SMALL_JOB


def parse_sse(text: str) -> list[dict]:
    """The events of an SSE stream as dicts of their fields (data parsed as JSON)."""
    events = []
    for block in text.strip().split("\n\n"):
        fields = {}
        for line in block.splitlines():
            if line.startswith(":"):
                continue
            key, _, value = line.partition(": ")
            fields[key] = json.loads(value) if key == "data" else value
        if fields:
            events.append(fields)
    return events


def test_events_of_a_finished_job_replay_in_order_and_close(trained):
    response = trained.get("/jobs/1/events")
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/event-stream")
    events = parse_sse(response.text)
    kinds = [e["event"] for e in events]
    assert kinds[0] == "status" and events[0]["data"]["status"] == "queued"
    assert kinds.count("epoch") == 2 and [e["data"]["epoch"] for e in events if e["event"] == "epoch"] == [1, 2]
    assert kinds[-1] == "status" and events[-1]["data"]["status"] == "succeeded"
    ids = [int(e["id"]) for e in events]
    assert ids == sorted(ids)


def test_events_resume_after_last_event_id(trained):
    events = parse_sse(trained.get("/jobs/1/events").text)
    resumed = parse_sse(trained.get("/jobs/1/events", headers={"Last-Event-ID": events[1]["id"]}).text)
    assert [e["id"] for e in resumed] == [e["id"] for e in events[2:]]
    by_query = parse_sse(trained.get("/jobs/1/events", params={"after": events[-2]["id"]}).text)
    assert [e["id"] for e in by_query] == [events[-1]["id"]]


def test_events_of_a_cancelled_queued_job_end_with_cancelled(client):
    job_id = client.post("/jobs", json=SMALL_JOB).json()["id"]
    client.post(f"/jobs/{job_id}/cancel")
    events = parse_sse(client.get(f"/jobs/{job_id}/events").text)
    assert [e["data"]["status"] for e in events] == ["queued", "cancelled"]


def test_events_reject_a_bad_last_event_id_and_unknown_jobs(trained):
    bad = trained.get("/jobs/1/events", headers={"Last-Event-ID": "yesterday"})
    assert bad.status_code == 422 and "Last-Event-ID" in bad.json()["detail"]
    assert trained.get("/jobs/404/events").status_code == 404


def test_events_reject_a_last_event_id_too_large_for_the_database(trained):
    bad = trained.get("/jobs/1/events", headers={"Last-Event-ID": "9" * 30})
    assert bad.status_code == 422 and "Last-Event-ID" in bad.json()["detail"]
