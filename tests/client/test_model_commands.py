"""`convlab models ls|show|create|register|alias|history` against a live server and a succeeded job (one epoch on
the synthetic data, a few seconds), through the client's registry calls."""

import json

import pytest

from service.client import Client
from tests.client.test_commands import convlab

TINY = {"architecture": "bn_lenet", "dataset": "synthetic", "epochs": 1, "batch_size": 32}
TINY |= {"train_subset": 64, "test_subset": 32}


@pytest.fixture(scope="module")
def job_id(server) -> int:
    """A succeeded job, its one checkpoint the one registered."""
    with Client(server.url, token="") as client:
        job = client.wait(client.submit(TINY).id, timeout=120)
    assert job.status.value == "succeeded", job.error
    return job.id


def run(server, *args: str) -> str:
    done = convlab(server, "models", *args)
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_create_register_and_move_an_alias_then_read_its_history(server, job_id):
    assert run(server, "create", "shirts", "--description", "tops").startswith("created model shirts")
    registered = run(server, "register", "shirts", "--job", str(job_id))
    assert registered.splitlines()[0] == "registered shirts version 1"
    assert ["from", "job", f"{job_id},", "epoch", "1"] in [line.split() for line in registered.splitlines()]
    second = json.loads(run(server, "register", "shirts", "--job", str(job_id), "--epoch", "1", "--json"))
    assert (second["version"], second["epoch"], second["dataset"]) == (2, 1, "synthetic")
    assert run(server, "alias", "shirts", "prod", "2") == "prod: nothing (new alias) -> version 2\n"
    back = json.loads(run(server, "alias", "shirts", "prod", "1", "--json"))
    assert (back["from_version"], back["to_version"]) == (2, 1)
    moves = [line.split() for line in run(server, "history", "shirts", "prod").splitlines()[1:]]
    assert [move[2:4] for move in moves] == [["-", "2"], ["2", "1"]]  # after the date and time: from, to
    history = json.loads(run(server, "history", "shirts", "prod", "--json"))
    assert [(m["from_version"], m["to_version"]) for m in history] == [(None, 2), (2, 1)]


def test_ls_and_show_list_versions_and_aliases(server, job_id):
    run(server, "create", "listed")
    run(server, "register", "listed", "--job", str(job_id))
    run(server, "alias", "listed", "staging", "1")
    table = [line.split() for line in run(server, "ls").splitlines()]
    assert ["listed", "1", "1", "staging=1"] in [row[:4] for row in table]
    assert {"name": "listed", "versions": 1, "latest_version": 1} | {"aliases": {"staging": 1}} in [
        {key: m[key] for key in ("name", "versions", "latest_version", "aliases")}
        for m in json.loads(run(server, "ls", "--json"))
    ]
    shown = run(server, "show", "listed").splitlines()
    assert shown[[line.split()[:1] for line in shown].index(["VERSION"]) + 1].split()[:5] == [
        "1",
        str(job_id),
        "1",
        "bn_lenet",
        "synthetic",
    ]
    both = json.loads(run(server, "show", "listed", "--json"))
    assert both["model"]["name"] == "listed" and [v["aliases"] for v in both["versions"]] == [["staging"]]


@pytest.mark.parametrize(
    ("args", "code", "words"),
    [
        (("register", "missing", "--job", "{job}"), 1, "missing"),
        (("register", "shirts", "--job", "999999"), 1, "999999"),
        (("register", "shirts"), 2, "--job"),
        (("alias", "nomodel", "prod", "1"), 1, "nomodel"),
        (("alias", "shirts", "prod", "one"), 2, "invalid int value: 'one'"),
    ],
)
def test_bad_input_exits_non_zero_with_one_line_on_stderr(server, job_id, args, code, words):
    done = convlab(server, "models", *(a.format(job=job_id) for a in args))
    assert (done.returncode, done.stdout) == (code, "") and words in done.stderr
    if code == 1:  # refused by the server: its detail, on one line
        assert done.stderr.startswith("convlab models: ") and done.stderr.count("\n") == 1
