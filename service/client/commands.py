"""`convlab jobs ...`, `convlab predict`, `convlab lab trajectory`, `convlab datasets ...` and `convlab models ...`:
the API from a shell, through `Client`.

The server is CONVLAB_URL (default http://127.0.0.1:8000), the token CONVLAB_TOKEN. `--json` prints what the
API answered. Exit status: 0 on success; 1 when the server refused (its `detail` on standard error) or a
watched job did not succeed; 2 for a usage error; 3 when the server could not be reached.
"""

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from service.client import render
from service.client.client import Client
from service.client.http import ClientError
from service.client.watch import watch
from service.jobspec.paths import PathError, set_path
from service.jobspec.spec import UPLOADED_REF
from service.jobspec.status import JobStatus

COMMANDS = ("jobs", "predict", "lab", "datasets", "models")
NEGATIVE_VALUE_OPTIONS = ("--x0",)  # take values such as -5,-2 that argparse would read as options


def add_client_parsers(commands: "argparse._SubParsersAction[argparse.ArgumentParser]") -> None:
    """Add `convlab jobs`, `convlab predict`, `convlab lab`, `convlab datasets` and `convlab models`."""
    json_flag = argparse.ArgumentParser(add_help=False)
    json_flag.add_argument("--json", action="store_true", help="print the API's JSON instead of tables")
    jobs = commands.add_parser("jobs", help="training jobs on a convlab server (CONVLAB_URL)")
    actions = jobs.add_subparsers(dest="jobs_command", required=True)
    submit = actions.add_parser("submit", parents=[json_flag], help="queue a training job")
    submit.add_argument("--arch", required=True, help="architecture, e.g. bn_lenet")
    submit.add_argument("--dataset", help="fashion_mnist (default), mnist, cifar10 or synthetic")
    submit.add_argument("--epochs", type=int)
    submit.add_argument("--batch-size", type=int)
    submit.add_argument("--priority", type=int)
    submit.add_argument(
        "--set", action="append", default=[], metavar="FIELD=VALUE", help="any spec field, e.g. optimizer.lr=0.5"
    )
    submit.add_argument("--watch", action="store_true", help="then follow it until it finishes")
    ls = actions.add_parser("ls", parents=[json_flag], help="list jobs, newest first")
    ls.add_argument("--status", choices=[s.value for s in JobStatus])
    ls.add_argument("--limit", type=int, default=50)
    for name, what in (("show", "a job's spec, progress and outcome"), ("watch", "follow a job live")):
        actions.add_parser(name, parents=[json_flag], help=what).add_argument("id", type=int)
    for name, what in (("cancel", "cancel a job"), ("rm", "delete a finished job")):
        actions.add_parser(name, parents=[json_flag], help=what).add_argument("id", type=int)
    history = actions.add_parser("history", parents=[json_flag], help="per-epoch metrics; --plot draws curves")
    history.add_argument("id", type=int)
    history.add_argument("--plot", type=Path, metavar="FILE", help="write the curves (.png or .svg)")
    _add_predict_and_lab(commands, json_flag)
    _add_datasets(commands, json_flag)
    _add_models(commands, json_flag)


def _add_predict_and_lab(
    commands: "argparse._SubParsersAction[argparse.ArgumentParser]", json_flag: argparse.ArgumentParser
) -> None:
    predict = commands.add_parser("predict", parents=[json_flag], help="classify images with a trained job")
    predict.add_argument("id", type=int)
    predict.add_argument("images", nargs="+", type=Path, metavar="IMAGE")
    predict.add_argument("--top-k", type=int, default=3)
    predict.add_argument("--checkpoint", type=int, metavar="EPOCH", help="default: the best checkpoint")
    predict.add_argument("--explain", type=Path, metavar="OUT.png", help="also write the heatmaps over the images")
    predict.add_argument("--method", choices=("gradcam", "integrated_gradients", "saliency"), default="gradcam")

    lab = commands.add_parser("lab", help="the optimization lab").add_subparsers(dest="lab_command", required=True)
    trajectory = lab.add_parser("trajectory", parents=[json_flag], help="run optimizers on a function")
    trajectory.add_argument("function", metavar="EXPR", help="an expression in x or x1..xn, or a preset name")
    trajectory.add_argument(
        "--optimizer", action="append", required=True, metavar="NAME[:K=V,...]", help="repeat to compare"
    )
    trajectory.add_argument("--x0", help="start point, e.g. -5,-2 (default: the preset's)")
    trajectory.add_argument("--steps", type=int, default=20)
    trajectory.add_argument("--plot", type=Path, metavar="FILE", help="write the contour plot (.png or .svg)")


def _add_datasets(
    commands: "argparse._SubParsersAction[argparse.ArgumentParser]", json_flag: argparse.ArgumentParser
) -> None:
    datasets = commands.add_parser("datasets", help="uploaded datasets: push, ls, show, rm")
    actions = datasets.add_subparsers(dest="datasets_command", required=True)
    push = actions.add_parser(
        "push",
        parents=[json_flag],
        help="upload a folder (class folders, or train/ and val/ or test/ holding them; packed into a zip here) "
        "or a zip or tar of one, as the next version of NAME; the same images again answer the version stored",
    )
    push.add_argument("path", type=Path, metavar="DIR|ARCHIVE")
    push.add_argument("--name", required=True, help="lowercase letters, digits, '_', '.', '-'")
    push.add_argument("--size", type=int, help="side in pixels the images are stored at (server default 32)")
    push.add_argument("--val-fraction", type=float, help="held out per class without val/ or test/ (default 0.2)")
    push.add_argument("--seed", type=int, help="seed of that held-out split (default 0)")
    actions.add_parser("ls", parents=[json_flag], help="list datasets, their versions and latest ref")
    show = actions.add_parser("show", parents=[json_flag], help="NAME: its versions; NAME@V: classes and counts")
    show.add_argument("ref", metavar="NAME[@V]")
    show.add_argument(
        "--samples", type=Path, metavar="OUT.png", help="write a grid of images per class (NAME alone: the latest)"
    )
    rm = actions.add_parser("rm", parents=[json_flag], help="delete a version no job or sweep uses")
    rm.add_argument("ref", metavar="NAME@V")


def _add_models(
    commands: "argparse._SubParsersAction[argparse.ArgumentParser]", json_flag: argparse.ArgumentParser
) -> None:
    models = commands.add_parser("models", help="the model registry: names, versions, aliases")
    actions = models.add_subparsers(dest="models_command", required=True)
    actions.add_parser("ls", parents=[json_flag], help="list models, their versions and aliases")
    actions.add_parser("show", parents=[json_flag], help="a model and its versions").add_argument("name")
    create = actions.add_parser("create", parents=[json_flag], help="a new, empty model (register needs one)")
    create.add_argument("name", help="1-64 letters, digits, '.', '_' or '-'")
    create.add_argument("--description", default="")
    register = actions.add_parser(
        "register",
        parents=[json_flag],
        help="a succeeded job's checkpoint as the next version of NAME, which must exist (convlab models create)",
    )
    register.add_argument("name")
    register.add_argument("--job", type=int, required=True, metavar="ID")
    register.add_argument("--epoch", type=int, metavar="E", help="default: the job's best checkpoint")
    alias = actions.add_parser("alias", parents=[json_flag], help="point ALIAS (e.g. prod) at VERSION")
    alias.add_argument("name")
    alias.add_argument("alias")
    alias.add_argument("version", type=int)
    history = actions.add_parser("history", parents=[json_flag], help="every move of an alias, oldest first")
    history.add_argument("name")
    history.add_argument("alias")


def join_negative_values(argv: Sequence[str]) -> list[str]:
    """`--x0 -5,-2` as `--x0=-5,-2`, which argparse reads as the option's value."""
    out: list[str] = []
    for arg in argv:
        if out and out[-1] in NEGATIVE_VALUE_OPTIONS and arg.startswith("-"):
            out[-1] = f"{out[-1]}={arg}"
        else:
            out.append(arg)
    return out


def run_client_command(args: argparse.Namespace) -> int:
    """Run a client command; print the server's `detail` on standard error when it fails."""
    try:
        with Client() as client:
            return _dispatch(client, args)
    except ClientError as exc:
        print(f"convlab {args.command}: {exc.detail}", file=sys.stderr)
        return 3 if exc.status is None else 1
    except UsageError as exc:
        print(f"convlab {args.command}: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:  # a local file: an image to send, a plot to write
        print(f"convlab {args.command}: {exc.filename}: {exc.strerror or exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


class UsageError(ValueError):
    """A malformed argument the parser could not check (FIELD=VALUE, NAME:K=V, a plot's file type)."""


def _dispatch(client: Client, args: argparse.Namespace) -> int:
    if args.command == "predict":
        result = client.predict(args.id, args.images, top_k=args.top_k, checkpoint=args.checkpoint)
        if args.explain is not None:
            png = client.explain_png(args.id, args.images, method=args.method, checkpoint=args.checkpoint)
            args.explain.write_bytes(png)
        render.output(result, args.json, render.predictions, [str(p) for p in args.images])
        return 0
    if args.command == "lab":
        return _trajectory(client, args)
    if args.command == "datasets":
        return _datasets(client, args)
    if args.command == "models":
        return _models(client, args)
    command = args.jobs_command
    if command == "submit":
        job = client.submit(_submission(args))
        if args.watch:
            render.submitted(job, args.json)
            return watch(client, job.id, as_json=args.json)
        render.output(job, args.json, render.job_detail)
        return 0
    if command == "watch":
        return watch(client, args.id, as_json=args.json)
    if command == "ls":
        render.output(client.list(status=args.status, limit=args.limit), args.json, render.job_table)
    elif command == "show":
        render.output(client.get(args.id), args.json, render.job_detail)
    elif command == "cancel":
        render.output(client.cancel(args.id), args.json, render.job_detail)
    elif command == "rm":
        client.delete(args.id)
        render.output({"deleted": args.id}, args.json, lambda _: print(f"deleted job {args.id}"))
    else:
        history = client.history(args.id)
        if args.plot:
            args.plot.write_bytes(client.history_plot(args.id, format=_image_format(args.plot)))
        render.output(history, args.json, render.history_table, args.plot)
    return 0


def _submission(args: argparse.Namespace) -> dict[str, Any]:
    body: dict[str, Any] = {"architecture": args.arch}
    given = {"dataset": args.dataset, "epochs": args.epochs, "batch_size": args.batch_size, "priority": args.priority}
    body.update({key: value for key, value in given.items() if value is not None})
    for assignment in args.set:
        field, sep, text = assignment.partition("=")
        if not sep or not field:
            raise UsageError(f"--set {assignment!r}: expected FIELD=VALUE, e.g. optimizer.lr=0.5")
        try:
            set_path(body, field, _value(text))
        except PathError as exc:
            raise UsageError(f"--set {assignment!r}: {exc}") from None
    return body


def _value(text: str) -> Any:
    """A JSON value (0.5, true, null, [1, 2]) when the text is one, else the text itself (cosine)."""
    try:
        return json.loads(text)
    except ValueError:
        return text


def _optimizer(text: str) -> dict[str, Any]:
    name, _, settings = text.partition(":")
    config: dict[str, Any] = {"name": name}
    for pair in filter(None, settings.split(",")):
        key, sep, value = pair.partition("=")
        if not sep:
            raise UsageError(f"--optimizer {text!r}: expected NAME:KEY=VALUE,..., e.g. momentum:lr=0.6,momentum=0.5")
        config[key.strip()] = _value(value)
    return config


def _image_format(path: Path) -> render.ImageFormat:
    suffix = path.suffix.lower()
    if suffix not in (".png", ".svg"):
        raise UsageError(f"--plot {path}: name a .png or .svg file")
    return "svg" if suffix == ".svg" else "png"


def _trajectory(client: Client, args: argparse.Namespace) -> int:
    optimizers = [_optimizer(text) for text in args.optimizer]
    request: dict[str, Any] = {"function": args.function, "steps": args.steps}
    request |= {"optimizer": optimizers[0]} if len(optimizers) == 1 else {"optimizers": optimizers}
    if args.x0 is not None:
        try:
            request["x0"] = [float(v) for v in args.x0.split(",")]
        except ValueError:
            raise UsageError(f"--x0 {args.x0!r}: expected numbers separated by commas, e.g. -5,-2") from None
    plot_format = _image_format(args.plot) if args.plot else None
    result = client.trajectories(request)
    if args.plot and plot_format:
        args.plot.write_bytes(client.trajectory_plot(request, format=plot_format))
    render.output(result, args.json, render.trajectory_table, args.plot)
    return 0


def _dataset_ref(text: str) -> tuple[str, int | None]:
    """(name, version or None) of NAME or NAME@V; a UsageError for anything else."""
    ref = UPLOADED_REF.fullmatch(text)
    if ref is None:
        raise UsageError(f"{text!r}: expected NAME or NAME@VERSION (lowercase letters, digits, '_', '.', '-')")
    return ref["name"], int(ref["version"]) if ref["version"] else None


def _datasets(client: Client, args: argparse.Namespace) -> int:
    command = args.datasets_command
    if command == "push":
        with render.upload_progress(args.path.name or str(args.path)) as progress:
            options = {"size": args.size, "val_fraction": args.val_fraction, "seed": args.seed}
            pushed = client.push_dataset(args.path, name=args.name, progress=progress, **options)
        render.output(pushed, args.json, render.pushed, pushed.created)
    elif command == "ls":
        render.output(client.datasets(), args.json, render.dataset_table)
    elif command == "rm":
        name, version = _dataset_ref(args.ref)
        if version is None:
            raise UsageError(f"{args.ref!r}: name the version to delete, e.g. {args.ref}@1")
        client.delete_dataset(name, version)
        render.output({"deleted": args.ref}, args.json, lambda _: print(f"deleted dataset {args.ref}"))
    else:
        return _show_dataset(client, args)
    return 0


def _show_dataset(client: Client, args: argparse.Namespace) -> int:
    name, version = _dataset_ref(args.ref)
    if version is None and args.samples is None:
        render.output(client.dataset(name), args.json, render.dataset_versions)
        return 0
    shown = client.dataset_version(name, version) if version else client.dataset(name).versions[-1]
    if args.samples is not None:
        args.samples.write_bytes(client.dataset_samples(shown.name, shown.version))
    render.output(shown, args.json, render.dataset_detail, args.samples)
    return 0


def _models(client: Client, args: argparse.Namespace) -> int:
    command = args.models_command
    if command == "ls":
        render.output(client.models(), args.json, render.model_table)
    elif command == "show":
        shown = {"model": client.model(args.name), "versions": client.versions(args.name)}
        render.output(shown, args.json, render.model_detail)
    elif command == "create":
        render.output(client.create_model(args.name, description=args.description), args.json, render.created)
    elif command == "register":
        version = client.register(args.name, args.job, epoch=args.epoch)
        render.output(version, args.json, render.version_detail)
    elif command == "alias":
        render.output(client.move_alias(args.name, args.alias, args.version), args.json, render.alias_moved)
    else:
        render.output(client.alias_history(args.name, args.alias), args.json, render.alias_history)
    return 0
