"""Overload (issue 26): predict at about 4x the sustainable rate, open loop; what is shed, what is served, recovery.

    .venv/bin/python bench/overload.py [--seconds 10] [--factor 4] [--state-dir DIR] [--json PATH]

The server's threads run on the first CPU and this process (the generator, and the wrk it starts) on the others
(`--no-pin`: unpinned): a generator busy with 4 R would otherwise take the CPU the server had while R was measured.
All on this machine over loopback, one convlab API process (`--workers 0`, 1 torch thread, auth off,
CONVLAB_PREDICT_RATE=0), BN-LeNet single-image multipart PNG predicts by job (a checkpoint trained now on real
Fashion-MNIST, as bench/serve_names.py does; a given `--state-dir` is kept, so a second run skips training):
  1. The sustainable rate R: wrk at 32 connections for `--seconds` (closed loop: the answered rate, p50, p99).
  2. Unloaded: an open-loop generator (below) at `--unloaded` x R (default 0.5) for `--seconds`: the p50/p99 of
     a server that keeps up, the reference for the overload's admitted requests.
  3. Overload: the same generator at `--factor` x R for `--seconds`: the share of 200s and of 503s (and whether
     each 503 had Retry-After), any other status, connection errors, no answer, and answers later than `--timeout`,
     and the p50/p99 of the 200s. The moment it stops sending, a probe sends one request every 50 ms (each on a
     connection of its own) until one is answered 200 within the unloaded p99: the recovery time is from the
     stop to that answer (also reported: to the first 200 of any latency). The server's own histograms
     (GET /metrics) before and after each open-loop phase say how much of the latency was spent inside the app.
  4. The closed-loop view: wrk at `--connections` (256) for `--seconds`: the rate of all answers, the share of
     non-2xx (wrk does not split latency by status) and socket errors.
  5. The client's ceiling (pinned runs): the same generator at the overload's rate against a raw ASGI app that
     refuses every request at once (bench/serve_bare.py's `refusing`), on the server's CPU. Its p99 is the
     latency the client adds by itself at that rate: no server's admitted p99 can be measured below it here.
The generator is open loop, like wrk2: request i is due at start + i/rate whatever the server does, and its
latency is counted from when it was due (so a client that falls behind does not hide the server's queue; the
client's own lag, and its CPU time while sending as a share of a core, are reported). It runs on uvloop with
httptools' parser and a pool of keep-alive connections (`--pool` opened before each phase), one request in
flight on each; a request due when every connection is busy opens another (up to `--max-conns`; past that it is
counted as not sent). The 1-minute load average is recorded before and after each phase. A table goes to stdout,
everything to JSON (default bench/results/overload.json).
"""

import argparse
import asyncio
import os
import sys
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import httptools
import httpx
import numpy as np
import uvloop
from prometheus_client.parser import text_string_to_metric_families

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import wrk
from bench.common import RESULTS_DIR, machine_info, print_table, write_json
from bench.serve import live_server
from bench.serve_bare import bare_server
from bench.serve_names import server_cpu_seconds, server_process, trained_state

PROBE_EVERY_S = 0.05
CPUS = sorted(os.sched_getaffinity(0))  # before `pin` narrows this process's own
# Server-side histograms (GET /metrics): the app's own time for the predict route (from the middleware, so before
# the body is read; 200s and 503s alike) and the predictor's (after the body was read; admitted requests only).
HISTOGRAMS = {
    "in the app (route, all statuses)": ("convlab_http_request_duration_seconds", "/jobs/{job_id}/predict"),
    "in the predictor (admitted)": ("convlab_predict_duration_seconds", None),
}


@dataclass
class Answer:
    """One request: when it was due and sent, when its answer came, its status and whether it had Retry-After."""

    due: float
    sent: float
    done: float = 0.0
    status: int = 0  # 0: no answer (the connection failed, or none came)
    retry_after: bool = False


class Connection(asyncio.Protocol):
    """One keep-alive HTTP/1.1 connection with at most one request in flight; answers are parsed by httptools."""

    def __init__(self, on_free: "deque[Connection]", answers: list[Answer]) -> None:
        self.on_free, self.answers = on_free, answers
        self.parser = httptools.HttpResponseParser(self)
        self.transport: asyncio.Transport | None = None
        self.current: Answer | None = None
        self.open = False
        self.waiter: asyncio.Future[Answer] | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport, self.open = cast(asyncio.Transport, transport), True  # uvloop's is not a subclass

    def send(self, payload: bytes, due: float) -> Answer:
        assert self.transport is not None
        self.current = Answer(due=due, sent=time.perf_counter())
        self.answers.append(self.current)
        self.transport.write(payload)
        return self.current

    def data_received(self, data: bytes) -> None:
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError:
            assert self.transport is not None
            self.transport.close()

    def on_header(self, name: bytes, value: bytes) -> None:
        if self.current is not None and name.lower() == b"retry-after":
            self.current.retry_after = True

    def on_message_complete(self) -> None:
        answer, self.current = self.current, None
        if answer is None:
            return
        answer.done, answer.status = time.perf_counter(), self.parser.get_status_code()
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_result(answer)
        if self.open:
            self.on_free.append(self)

    def connection_lost(self, exc: Exception | None) -> None:
        self.open = False
        if self.current is not None:
            self.current.done = time.perf_counter()  # status 0: the connection failed under the request
        if self.waiter is not None and not self.waiter.done() and self.current is not None:
            self.waiter.set_result(self.current)


@dataclass
class Generator:
    """An open-loop request generator over a pool of connections to `host`:`port`."""

    host: str
    port: int
    payload: bytes
    max_conns: int
    answers: list[Answer] = field(default_factory=list)
    free: "deque[Connection]" = field(default_factory=deque)
    opened: int = 0
    pool_exhausted: int = 0

    async def connect(self) -> Connection:
        loop = asyncio.get_running_loop()
        _, conn = await loop.create_connection(lambda: Connection(self.free, self.answers), self.host, self.port)
        self.opened += 1
        return conn

    async def open_pool(self, count: int) -> None:
        conns = await asyncio.gather(*(self.connect() for _ in range(count)))
        self.free.extend(conns)

    def take(self) -> Connection | None:
        while self.free:
            conn = self.free.popleft()
            if conn.open:
                return conn
        return None

    async def send_due(self, due: float, pending: set["asyncio.Task[None]"]) -> None:
        """Send one request due at `due` on a free connection, or on a new one when the pool has room."""
        conn = self.take()
        if conn is not None:
            conn.send(self.payload, due)
        elif self.opened + len(pending) < self.max_conns:
            task = asyncio.create_task(self._send_on_new(due))
            pending.add(task)
            task.add_done_callback(pending.discard)
        else:
            self.pool_exhausted += 1

    async def _send_on_new(self, due: float) -> None:
        try:
            conn = await self.connect()
        except OSError:
            self.answers.append(Answer(due=due, sent=time.perf_counter(), done=time.perf_counter()))
            return
        conn.send(self.payload, due)

    async def run(self, rate: float, seconds: float) -> float:
        """Send at `rate` requests/s for `seconds` (request i due at start + i/rate); the time it stopped."""
        pending: set[asyncio.Task[None]] = set()
        start, count = time.perf_counter(), int(rate * seconds)
        index = 0
        while index < count:
            now = time.perf_counter()
            while index < count and start + index / rate <= now:
                await self.send_due(start + index / rate, pending)
                index += 1
            if index < count:
                await asyncio.sleep(max(0.0, start + index / rate - time.perf_counter()))
        return time.perf_counter()

    async def drain(self, timeout: float) -> None:
        """Wait until every request sent is answered (or its connection failed), at most `timeout` s."""
        deadline = time.perf_counter() + timeout
        while any(a.done == 0.0 for a in self.answers) and time.perf_counter() < deadline:
            await asyncio.sleep(0.05)


async def probe(gen: Generator, stopped: float, normal_s: float, limit_s: float) -> dict[str, Any]:
    """One request every 50 ms, each on a connection of its own, from `stopped` until one is answered 200
    within `normal_s`: seconds from `stopped` to the first 200, and to the first 200 within `normal_s`."""
    first_ok: float | None = None
    probes: list[Answer] = []
    waiters: list[asyncio.Future[Answer]] = []
    result: dict[str, Any] = {"to_first_200_s": None, "to_normal_200_s": None}
    while time.perf_counter() - stopped < limit_s:
        loop = asyncio.get_running_loop()
        _, conn = await loop.create_connection(lambda: Connection(deque(), probes), gen.host, gen.port)
        conn.waiter = asyncio.get_running_loop().create_future()
        waiters.append(conn.waiter)
        conn.send(gen.payload, time.perf_counter())
        await asyncio.sleep(PROBE_EVERY_S)
        for answer in [w.result() for w in waiters if w.done()]:
            if answer.status == 200 and first_ok is None:
                first_ok = answer.done
                result["to_first_200_s"] = answer.done - stopped
            if answer.status == 200 and answer.done - answer.sent <= normal_s:
                result["to_normal_200_s"] = min(result["to_normal_200_s"] or 1e9, answer.done - stopped)
        if result["to_normal_200_s"] is not None:
            break
    result["probes"] = [{"sent_s": a.sent - stopped, "status": a.status, "ms": ms(a)} for a in probes]
    return result


def ms(answer: Answer) -> float | None:
    return (answer.done - answer.sent) * 1000 if answer.done else None


def percentile(values: list[float], q: float) -> float | None:
    return float(np.percentile(values, q)) if values else None


def summary(answers: list[Answer], unsent: int, window: tuple[float, float], timeout: float) -> dict[str, Any]:
    """Counts by outcome, rates, and latency percentiles (ms) of the 200s and 503s, from when each request was due
    and from when it was sent. `window`: when sending began and stopped."""
    by_status: dict[str, int] = {"not sent (every connection busy)": unsent} if unsent else {}
    for a in answers:
        key = "no answer" if a.done == 0.0 else str(a.status or "connection error")
        by_status[key] = by_status.get(key, 0) + 1
    late = sum(1 for a in answers if a.done and a.status and a.done - a.due > timeout)
    ok = [a for a in answers if a.status == 200 and a.done]
    shed = [a for a in answers if a.status == 503]
    last = max((a.done for a in answers), default=window[1])
    total = len(answers) + unsent
    return {
        "sent": len(answers),
        "offered_rps": total / (window[1] - window[0]),
        "answered_200_rps": len(ok) / (last - window[0]),
        "last_answer_after_stop_s": last - window[1],
        "by_status": by_status,
        "answered_after_timeout": late,  # answers (of any status) later than --timeout after they were due
        "share_200": len(ok) / max(1, total),
        "share_503": len(shed) / max(1, total),
        "503_with_retry_after": sum(a.retry_after for a in shed),
        "p50_200_ms": percentile([(a.done - a.due) * 1000 for a in ok], 50),
        "p99_200_ms": percentile([(a.done - a.due) * 1000 for a in ok], 99),
        "p50_200_from_sent_ms": percentile([(a.done - a.sent) * 1000 for a in ok], 50),
        "p99_200_from_sent_ms": percentile([(a.done - a.sent) * 1000 for a in ok], 99),
        "p50_503_ms": percentile([(a.done - a.due) * 1000 for a in shed], 50),
        "p99_503_ms": percentile([(a.done - a.due) * 1000 for a in shed], 99),
        "client_lag_p99_ms": percentile([(a.sent - a.due) * 1000 for a in answers], 99) or 0.0,
    }


async def open_loop(
    url: str, payload: bytes, rate: float, args: argparse.Namespace, normal_s: float | None, *, metrics: bool = True
) -> Any:
    """Requests at `rate` for `--seconds`; with `normal_s`, the recovery probe after the stop; with `metrics`, the
    server's histograms before and after. Summary and probe."""
    host, port = url.removeprefix("http://").split(":")
    gen = Generator(host, int(port), payload, args.max_conns)
    await gen.open_pool(min(args.max_conns, args.pool))
    load = os.getloadavg()[0]
    server_before = await asyncio.to_thread(scrape, url) if metrics else {}
    server_cpu = server_cpu_seconds(port)
    begun, cpu = time.perf_counter(), time.process_time()
    stopped = await gen.run(rate, args.seconds)
    client_cpu = (time.process_time() - cpu) / (stopped - begun)  # 1.0: the generator used a whole core
    server_cpu = (server_cpu_seconds(port) - server_cpu) / (stopped - begun)
    recovery = await probe(gen, stopped, normal_s, args.timeout) if normal_s is not None else None
    await gen.drain(args.timeout)
    result = summary(gen.answers, gen.pool_exhausted, (begun, stopped), args.timeout)
    result.update(rate=rate, connections_opened=gen.opened, client_cpu_share=client_cpu, server_cpu_share=server_cpu)
    server_after = await asyncio.to_thread(scrape, url) if metrics else {}
    result["server"] = {k: bucket_quantiles(server_before[k], server_after[k]) for k in server_after}
    result["load_average_1m"] = {"before": load, "after": os.getloadavg()[0]}
    return result, recovery


def scrape(url: str) -> dict[str, dict[float, float]]:
    """The cumulative bucket counts (upper bound -> count) of each of HISTOGRAMS, now."""
    text = httpx.get(f"{url}/metrics", timeout=30).text
    found: dict[str, dict[float, float]] = {name: {} for name in HISTOGRAMS}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            for name, (metric, route) in HISTOGRAMS.items():
                if sample.name == f"{metric}_bucket" and route in (None, sample.labels.get("route")):
                    bound = float(sample.labels["le"])
                    found[name][bound] = found[name].get(bound, 0.0) + sample.value
    return found


def bucket_quantiles(before: dict[float, float], after: dict[float, float]) -> dict[str, Any]:
    """Count and p50/p99 (the upper bound of the bucket it falls in, ms) of what was observed in between."""
    delta = {bound: after[bound] - before.get(bound, 0.0) for bound in sorted(after)}
    total = delta.get(float("inf"), 0.0)
    result: dict[str, Any] = {"count": total}
    for q in (50, 99):
        bound = next((b for b, c in delta.items() if total and c >= total * q / 100), None)
        result[f"p{q}_ms_at_most"] = None if bound is None else bound * 1000
    return result


def request_bytes(job_id: int, image: bytes, host: str) -> bytes:
    """The raw HTTP/1.1 request: one multipart PNG predict by job."""
    body, content_type = wrk.multipart("file", "x.png", image, "image/png")
    head = (
        f"POST /jobs/{job_id}/predict HTTP/1.1\r\nHost: {host}\r\nContent-Type: {content_type}\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body


def sustainable(url: str, request: wrk.Request, args: argparse.Namespace) -> dict[str, Any]:
    """wrk at 32 connections: the answered rate R (closed loop) and its latency."""
    wrk.run(url, request, connections=32, seconds=2)  # warm-up: load the model, let the shedder see a rate
    load = os.getloadavg()[0]
    got = wrk.run(url, request, connections=32, seconds=args.seconds)
    got["load_average_1m"] = {"before": load, "after": os.getloadavg()[0]}
    return got


def measure(url: str, job_id: int, image: bytes, args: argparse.Namespace) -> dict[str, Any]:
    body, content_type = wrk.multipart("file", "x.png", image, "image/png")
    request = wrk.Request("POST", f"/jobs/{job_id}/predict", body, (("Content-Type", content_type),))
    closed = sustainable(url, request, args)
    rate = closed["rps"]
    print(f"sustainable (wrk -c32): {rate:,.0f} req/s, p50 {closed['p50']:.1f} ms, p99 {closed['p99']:.1f} ms")
    payload = request_bytes(job_id, image, url.removeprefix("http://"))
    unloaded, _ = uvloop.run(open_loop(url, payload, args.unloaded * rate, args, None))
    print(f"unloaded ({args.unloaded:g} R): {unloaded}")
    time.sleep(2)
    normal_s = unloaded["p99_200_ms"] / 1000
    overload, recovery = uvloop.run(open_loop(url, payload, args.factor * rate, args, normal_s))
    print(f"overload ({args.factor:g} R): {overload}")
    time.sleep(2)
    load = os.getloadavg()[0]
    many = wrk.run(url, request, connections=args.connections, seconds=args.seconds)
    many["load_average_1m"] = {"before": load, "after": os.getloadavg()[0]}
    print(f"closed loop, wrk -c{args.connections}: {many}")
    floor = ceiling(payload, args.factor * rate, args) if args.pinned else None
    print(f"the client's ceiling at {args.factor:g} R: {floor}")
    return {
        "sustainable": closed,
        "unloaded": unloaded,
        "overload": overload,
        "recovery": recovery,
        "wrk_many": many,
        "ceiling": floor,
    }


def ceiling(payload: bytes, rate: float, args: argparse.Namespace) -> dict[str, Any]:
    """The same generator at the overload's rate against bench/serve_bare.py's `refusing` app, a raw ASGI app
    that answers 503 at once, on the server's CPU: the latency this client adds by itself at that rate, below
    which no server's admitted p99 can be measured here."""
    with bare_server(app="bench.serve_bare:refusing") as url:
        pin(url)
        got, _ = uvloop.run(open_loop(url, payload, rate, args, None, metrics=False))
    return got


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=10.0, help="duration of each phase")
    parser.add_argument("--factor", type=float, default=4.0, help="the overload, as a multiple of R")
    parser.add_argument("--unloaded", type=float, default=0.5, help="the reference load, as a fraction of R")
    parser.add_argument("--timeout", type=float, default=10.0, help="an answer later than this is a timeout")
    parser.add_argument("--pool", type=int, default=1024, help="connections opened before each phase")
    parser.add_argument("--max-conns", type=int, default=4096, help="at most this many connections in all")
    parser.add_argument("--connections", type=int, default=256, help="the closed-loop view: wrk at this many")
    parser.add_argument("--state-dir", type=Path)
    parser.add_argument("--no-pin", action="store_true", help="leave the server and the clients unpinned")
    parser.add_argument("--json", type=Path, default=RESULTS_DIR / "overload.json")
    args = parser.parse_args()
    with trained_state(args.state_dir) as (state_dir, job_id, image):
        env = {"CONVLAB_INFERENCE_THREADS": "1", "CONVLAB_AUTH": "off"}
        with live_server(state_dir, workers=0, env=env) as url:
            args.pinned = not args.no_pin
            result = {"pinned": pin(url) if args.pinned else None}
            result |= measure(url, job_id, image, args)
    result["machine"] = machine_info_cpu()
    result["args"] = {k: str(v) for k, v in vars(args).items()}
    report(result)
    print(f"wrote {write_json(args.json, result)}")


def pin(url: str) -> dict[str, list[int]]:
    """The server's threads on the first CPU, this process (the generator, and the wrk it starts) on the others,
    so that each side has the CPUs it had when R was measured: unpinned, a generator busy with 4 R takes the CPU
    the server's forward thread had while wrk measured R."""
    cpus = CPUS
    if len(cpus) < 2:
        raise SystemExit("--pin needs two CPUs; use --no-pin")
    server = server_process(url.rsplit(":", 1)[1])
    for thread in (server / "task").iterdir():
        os.sched_setaffinity(int(thread.name), cpus[:1])
    os.sched_setaffinity(0, cpus[1:])
    return {"server": cpus[:1], "clients": cpus[1:], "server_pids": [int(server.name)]}


def machine_info_cpu() -> dict[str, Any]:
    import torch

    return machine_info(torch.device("cpu"))


def num(value: float | None, digits: int = 1) -> str:
    return "-" if value is None else f"{value:,.{digits}f}"


def phase_row(name: str, run: dict[str, Any]) -> list[str]:
    """One open-loop phase as a table row."""
    others = {k: v for k, v in run["by_status"].items() if k not in ("200", "503")}
    if run["answered_after_timeout"]:
        others["answered after the timeout"] = run["answered_after_timeout"]
    load = run["load_average_1m"]
    return [
        f"{name} at {run['rate']:,.0f} req/s",
        num(run["answered_200_rps"], 0),
        f"{run['share_200']:.1%}",
        f"{run['share_503']:.1%} ({run['503_with_retry_after']} with Retry-After)",
        str(others or "none"),
        num(run["p50_200_ms"]),
        num(run["p99_200_ms"]),
        f"{load['before']:.2f}-{load['after']:.2f}",
    ]


def report(result: dict[str, Any]) -> None:
    closed, unloaded, over, rec = (result[k] for k in ("sustainable", "unloaded", "overload", "recovery"))
    load = closed["load_average_1m"]
    wrk_row = ["sustainable: wrk -c32 (closed loop)", num(closed["rps"], 0), "-", "-", "-", num(closed["p50"])]
    rows = [
        [*wrk_row, num(closed["p99"]), f"{load['before']:.2f}-{load['after']:.2f}"],
        phase_row("unloaded: open loop", unloaded),
        phase_row("overload: open loop", over),
    ]
    many, load = result["wrk_many"], result["wrk_many"]["load_average_1m"]
    shed = f"{many['non_2xx'] / max(1, many['requests']):.1%} non-2xx"
    head = [f"closed loop: wrk -c{many['connections']} (all statuses)", num(many["rps"], 0), "-", shed]
    rows.append([*head, f"{many['socket_errors']} socket errors", num(many["p50"]), num(many["p99"])])
    rows[-1].append(f"{load['before']:.2f}-{load['after']:.2f}")
    print_table(["phase", "200/s", "200s", "503s", "other/timeouts", "p50 200 ms", "p99 200 ms", "load 1m"], rows)
    if over["p99_200_ms"] and unloaded["p99_200_ms"]:
        ratio, to_wrk = over["p99_200_ms"] / unloaded["p99_200_ms"], over["p99_200_ms"] / closed["p99"]
        print(f"admitted p99 / unloaded p99: {ratio:.2f} (target <= 2); / wrk -c32 p99: {to_wrk:.2f}")
    print(
        f"recovery: first 200 after {num(rec['to_first_200_s'], 2)} s, first 200 within the unloaded p99 after "
        f"{num(rec['to_normal_200_s'], 2)} s (target <= 1 s)"
    )
    print(
        f"overload: 200s p50/p99 from when sent {num(over['p50_200_from_sent_ms'])}/"
        f"{num(over['p99_200_from_sent_ms'])} ms; 503s p50/p99 {num(over['p50_503_ms'])}/{num(over['p99_503_ms'])}"
        f" ms; client lag p99 {num(over['client_lag_p99_ms'])} ms (its CPU: {over['client_cpu_share']:.0%} of a core"
        f" while sending; the server's {over['server_cpu_share']:.0%}); last answer "
        f"{num(over['last_answer_after_stop_s'], 2)} s after the stop"
    )
    if floor := result["ceiling"]:
        print(
            f"the client's ceiling: the same generator at {floor['rate']:,.0f} req/s against a raw ASGI app that "
            f"refuses at once, on the server's CPU: p50/p99 {num(floor['p50_503_ms'])}/{num(floor['p99_503_ms'])} ms,"
            f" client lag p99 {num(floor['client_lag_p99_ms'])} ms, its CPU {floor['client_cpu_share']:.0%} of a core;"
            f" the server's CPU {floor['server_cpu_share']:.0%} of a core"
        )
    for phase, run in (("unloaded", unloaded), ("overload", over)):
        for name, got in run["server"].items():
            print(
                f"{phase}, server side, {name}: {got['count']:,.0f} requests, p50 <= {num(got['p50_ms_at_most'])} ms,"
                f" p99 <= {num(got['p99_ms_at_most'])} ms"
            )


if __name__ == "__main__":
    main()
