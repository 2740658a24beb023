"""The thin client: `import service.client` and the `convlab jobs|predict|lab|datasets|models` commands load neither
torch nor SQLAlchemy (nor Optuna or onnxruntime), checked in fresh interpreters, the commands against a live server."""

import json
import subprocess
import sys
from pathlib import Path

from PIL import Image

from tests.e2e.conftest import LiveServer

HEAVY = ("torch", "torchvision", "sqlalchemy", "optuna", "onnxruntime", "alembic")
REPORT = f"""
import json, sys
heavy = sorted({{m.split(".")[0] for m in sys.modules}} & set({HEAVY!r}))
print("HEAVY=" + json.dumps(heavy))
"""


def _run(code: str, env: dict[str, str] | None = None) -> tuple[list[str], str]:
    done = subprocess.run(
        [sys.executable, "-c", code + REPORT], capture_output=True, text=True, timeout=120, env=env, check=False
    )
    assert done.returncode == 0, done.stderr
    line = next(line for line in done.stdout.splitlines() if line.startswith("HEAVY="))
    return json.loads(line.removeprefix("HEAVY=")), done.stdout + done.stderr


def test_importing_the_client_and_the_command_line_loads_no_torch_and_no_database():
    heavy, _ = _run("import service.client, service.client.commands, service.cli, service.api.wire.jobs")
    assert heavy == []


def test_the_client_commands_against_a_live_server_load_no_torch_and_no_database(server: LiveServer, tmp_path: Path):
    image = tmp_path / "one.png"
    Image.new("L", (28, 28), color=128).save(image)
    for label, shade in (("dark", 40), ("light", 220)):
        (tmp_path / "folder" / label).mkdir(parents=True)
        for i in range(3):
            Image.new("L", (28, 28), color=shade + i).save(tmp_path / "folder" / label / f"{i}.png")
    commands = [
        ["jobs", "submit", "--arch", "bn_lenet", "--dataset", "synthetic", "--epochs", "1", "--json"],
        ["jobs", "ls", "--json"],
        ["jobs", "show", "1", "--json"],
        ["predict", "1", str(image), "--json"],  # answered (a checkpoint or a 409): the command ran through
        ["lab", "trajectory", "x**2", "--optimizer", "gd", "--x0", "1", "--steps", "3", "--json"],
        ["datasets", "push", str(tmp_path / "folder"), "--name", "thin", "--json"],  # packed here, then streamed
        ["datasets", "show", "thin@1", "--json"],
        ["models", "create", "thin", "--json"],
        ["models", "ls", "--json"],
    ]
    code = (
        "import os, sys\n"
        "from service.cli import main\n"
        f"codes = [main(c) for c in {commands!r}]\n"
        "print('CODES=' + ','.join(map(str, codes)))\n"
    )
    env = {"CONVLAB_URL": server.url, "PATH": "/usr/bin:/bin"}
    heavy, out = _run(code, env=env)
    codes = next(line for line in out.splitlines() if line.startswith("CODES=")).removeprefix("CODES=").split(",")
    assert codes[:3] + codes[4:] == ["0"] * 8, out  # all but predict, whose answer depends on the job's timing
    assert '"id":1' in out.replace(" ", "")
    assert heavy == []
