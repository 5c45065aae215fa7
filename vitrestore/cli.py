"""The `vitrestore` command (click). This is the application layer: it is the one module of
the package that imports the task modules (`vitrestore.tasks`); the core modules never do.
"""
from __future__ import annotations

import functools
import math
import os
import shlex
import sys
from dataclasses import dataclass, replace
from pathlib import Path

import click

from .config import ConfigError
from .io.atomic import os_reason
from .io.formats import DEFAULT_MAX_PIXELS, FORMATS
from .weights import WeightsError, read_metadata, resolve, shipped_models


def _tasks():
    from . import tasks  # noqa: PLC0415  (vitrestore.tasks, installed from tasks/)

    return tasks


def _message(exc: BaseException) -> str:
    """An exception's one-line text (a KeyError's str() adds quotes; no other text is touched)."""
    text = exc.args[0] if isinstance(exc, KeyError) and exc.args else str(exc)
    return str(text).strip().splitlines()[0] if str(text).strip() else type(exc).__name__


def _fail(message: str, code: int = 2) -> None:
    click.echo(f"error: {message}", err=True)
    sys.exit(code)


class _OneLineUsageError(click.ClickException):
    exit_code = 2

    def show(self, file=None) -> None:
        click.echo(f"error: {self.message}", err=True)


class _Group(click.Group):
    """The commands of this module and one per task, made from the task's declaration
    (tasks/<task>_command.py; reading those imports no torch). Usage errors (a bad option value,
    a missing argument) as one `error: <option>: <reason>` line like every other error, instead
    of click's usage block."""

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except click.UsageError as exc:
            name = ctx.invoked_subcommand
            if isinstance(exc, click.BadParameter) and not isinstance(exc, click.MissingParameter) and exc.param:
                hint = exc.param_hint or "/".join(getattr(exc.param, "opts", []) or [exc.param.name or "?"])
                message = f"{hint if isinstance(hint, str) else '/'.join(hint)}: {exc.message}"
            else:
                message = exc.format_message()
            raise _OneLineUsageError(f"{message} (see: vitrestore {name + ' ' if name else ''}--help)") from None
        except OSError as exc:  # a path the checks before any work could not even look at (e.g. a name too long)
            _fail(os_reason(exc))

    def _with_tasks(self) -> None:
        """The task commands join this module's (made once, from the declarations: no torch)."""
        for name, command in _task_commands().items():
            self.commands.setdefault(name, command)

    def list_commands(self, ctx) -> list[str]:
        self._with_tasks()
        return sorted(self.commands)

    def get_command(self, ctx, name: str) -> click.Command | None:
        """A command of this module, or a task's, made from its declaration (tasks/*_command.py)."""
        self._with_tasks()
        return self.commands.get(name)

    def resolve_command(self, ctx, args):
        self._with_tasks()  # an unknown name's "did you mean" looks among the task commands too
        return super().resolve_command(ctx, args)


@functools.cache
def _task_commands() -> dict[str, click.Command]:
    return {name: _task_command(command) for name, command in _tasks().commands().items()}


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="vitrestore")
def main() -> None:
    """Restore and restyle photos with a conditional ViT-GAN: denoise, upscale, inpaint, stylize, or any model trained from a YAML config."""


MIN_TILE = 32  # smaller tiles only multiply the work: the network pads every tile to its window grid


def _tile_size(ctx, param, value: int) -> int:
    if value != 0 and not MIN_TILE <= value <= 1_000_000:
        raise click.BadParameter(f"must be 0 (whole image) or at least {MIN_TILE} pixels, got {value}")
    return value


def _finite(ctx, param, value: float | None) -> float | None:
    if value is not None and not math.isfinite(value):  # click's ranges let nan through
        raise click.BadParameter(f"must be a number, got {value}")
    return value


def _positive_megapixels(ctx, param, value: float) -> float:
    if not (0 < value < 1e6):  # also refuses nan
        raise click.BadParameter(f"must be a number of megapixels above 0, got {value}")
    return value


def _check_file_to_write(path: Path, option: str, example: str = "") -> None:
    """Before any work: the file an option names (--report, --adapt-save) must not be a folder,
    and its folder must exist and be writable (else it is lost after the work)."""
    from .batch.plan import unwritable_reason

    parent = path.expanduser().parent
    if path.is_dir():
        _fail(f"{path}: {option} is a folder; give a file name{example}")
    if not parent.is_dir():
        _fail(f"{path}: {option}: folder {parent} does not exist")
    reason = unwritable_reason(parent)  # a probe file: permissions and read-only mounts alike
    if reason:
        _fail(f"{path}: {option}: {reason}")


def _check_report_path(report: Path | None, overwrite: bool) -> None:
    """Before any work: the report's folder must exist and be writable (else the report is
    lost), and an existing file is replaced only with --overwrite or when it is an earlier
    report (rerunning a command to finish a folder)."""
    from .batch.report import is_report

    if report is None:
        return
    _check_file_to_write(report, "--report", f" (e.g. {report / 'report.json'})")
    if os.path.lexists(report) and not overwrite and not is_report(report):
        _fail(f"{report}: --report names an existing file that is not a vitrestore report; give a new name "
              f"(or --overwrite to replace it)")


@dataclass(frozen=True)
class RunArgs:
    """The options every image command shares (collected by `_common_run_options`)."""

    inputs: tuple[Path, ...]
    output: Path | None
    tile: int
    device: str
    backend: str | None  # None: $VITRESTORE_BACKEND, else auto (decided by the Model)
    precision: str
    recursive: bool
    overwrite: bool
    quiet: bool
    max_megapixels: float
    fmt: str | None
    jpeg_quality: int
    shard: str | None
    report: Path | None
    ensemble: str
    codec: str | None
    crf: int | None
    chroma: str | None
    steady: bool


def _common_run_options(f, ensemble: str = "1"):
    """Add the shared options to a command; the command receives them as one `run: RunArgs`."""
    body = f

    @functools.wraps(body)
    def command(**kw):
        run = RunArgs(**{name: kw.pop(name) for name in RunArgs.__dataclass_fields__})
        return body(run, **kw)

    f = command
    f = click.option("--steady/--no-steady", default=True, show_default=True,
                     help="Clips: even each frame against the two before, moved by the optical flow, where they "
                          "show the same (less flicker; vitrestore/steady.py).")(f)
    f = click.option("--crf", type=click.IntRange(0, 63), default=None,
                     help="Video quality where the codec takes one (lower is better) [h264 18, h265 20, vp9 24].")(f)
    f = click.option("--chroma", type=click.Choice(["420", "422", "444"]), default=None,
                     help="Clips: colour sampling of the output (default: the source's; 444 keeps the most colour "
                          "detail but does not play in most browsers).")(f)
    f = click.option("--codec", type=click.Choice(["h264", "h265", "vp9", "prores", "ffv1"]), default=None,
                     help="Video codec of clip outputs [.webm: vp9, else h264].")(f)
    f = click.option("--ensemble", type=click.Choice(["1", "2", "4", "8"]), default=ensemble, show_default=True,
                     help="Average the model over this many flips/rotations (N times slower, a little better).")(f)
    f = click.option("--report", type=click.Path(path_type=Path, dir_okay=False),
                     help="Write per-file results (done/skipped/failed and why) to this JSON file.")(f)
    f = click.option("--shard", metavar="K/N",
                     help="Process only share K of N of the files (split by path hash): for N parallel jobs.")(f)
    f = click.option("--jpeg-quality", type=click.IntRange(1, 100), default=95, show_default=True)(f)
    f = click.option("--format", "fmt", type=click.Choice(sorted(FORMATS)), default=None,
                     help="Output format (default: the input's).")(f)
    f = click.option("--max-megapixels", type=float, default=DEFAULT_MAX_PIXELS / 1e6, show_default=True,
                     callback=_positive_megapixels, help="Refuse larger images (decompression-bomb guard).")(f)
    f = click.option("-q", "--quiet", is_flag=True, help="No progress bar.")(f)
    f = click.option("--overwrite", is_flag=True, help="Replace outputs that already exist (default: skip them).")(f)
    f = click.option("--recursive", "-r", is_flag=True, help="Descend into sub-folders of folder inputs.")(f)
    f = click.option("--precision", type=click.Choice(["auto", "fp32", "fp16", "bf16"]), default="auto",
                     show_default=True, help="auto: fp16 on CUDA (a tile that overflows is rerun in fp32); on a CPU "
                                             "bf16 where it has bfloat16 units (AMX, AVX512-BF16), else fp32.")(f)
    f = click.option("--backend", type=click.Choice(["auto", "torch", "onnx"]),
                     default=None,  # the Model reads $VITRESTORE_BACKEND (one place for the default)
                     help="auto: PyTorch (measured faster); onnx: ONNX Runtime on a CPU, fp32 (the graph is "
                          "exported once and cached).  [default: $VITRESTORE_BACKEND, else auto]")(f)
    f = click.option("--device", type=click.Choice(["auto", "cpu", "cuda"]), default="auto", show_default=True)(f)
    f = click.option("--tile", type=int, default=512, show_default=True, callback=_tile_size,
                     help=f"Tile size in pixels (0 = whole image at once; else at least {MIN_TILE}).")(f)
    f = click.option("-o", "--output", type=click.Path(path_type=Path),
                     help="Output folder (mirrors input folders), or a file name for a single input.")(f)
    # readable=False: an unreadable input fails alone in the batch (reported), not the whole run
    f = click.argument("inputs", nargs=-1, required=True, type=click.Path(path_type=Path, readable=False))(f)
    return f


def _shard_and_device(shard: str | None, device: str) -> tuple[tuple[int, int] | None, str]:
    """--shard K/N, combined with torchrun's RANK/WORLD_SIZE when launched that way (each
    process then takes its own share, on GPU LOCAL_RANK)."""
    from .batch.plan import parse_shard
    from .engine.distributed import DistInfo

    try:
        parsed = parse_shard(shard)
    except ValueError as exc:
        _fail(str(exc))
    info = DistInfo.from_env()
    if info.world <= 1:
        return parsed, device
    k, n = parsed or (1, 1)
    if device in ("auto", "cuda"):
        import torch

        if torch.cuda.is_available():
            device = f"cuda:{info.local_rank}"
    return ((k - 1) * info.world + info.rank + 1, n * info.world), device


def _run(model_name: str, run: RunArgs, suffix: str | None = None, finish=None, check=None, per_image=None,
         exclude: tuple[Path, ...] = (), protect: tuple[Path, ...] = (), out_size=None,
         adapt: "AdaptArgs | None" = None, **request) -> None:
    """Plan and run a batch. `finish(array, image) -> array` post-processes each result;
    `check(model)` may reject a loaded model with a message before any work; `per_image(image)`
    adds request arguments for one image (e.g. its mask; a ValueError fails that file only);
    files under an `exclude` folder (e.g. the mask folder) are never inputs; no output or report
    replaces a `protect`ed file (e.g. the mask); `out_size(image) -> (W, H)` is the output's
    size (default: the input's times the model's scale), checked against the output format
    before the model runs."""
    from .batch.plan import is_clip, plan_jobs, report_problem
    from .batch.run import RunOptions, run_jobs
    from .io.formats import size_problem

    tasks = _tasks()
    _check_report_path(run.report, run.overwrite)
    shard_kn, device = _shard_and_device(run.shard, run.device)
    try:
        model = tasks.load_model(model_name, device=device, tile=run.tile, ensemble=int(run.ensemble),
                                 backend=run.backend, precision=run.precision)
        if check is not None:
            check(model)
        if per_image is None:
            model.task.check_request(**request)  # a bad request fails now, before any image is read
    except (WeightsError, ConfigError, KeyError, ValueError) as exc:
        _fail(_message(exc))
    try:
        jobs, problems = plan_jobs(list(run.inputs), run.output, suffix or model.task.suffix, run.recursive,
                                   run.fmt, shard_kn, exclude, protect)
    except ValueError as exc:
        _fail(str(exc))
    if run.report is not None and (problem := report_problem(run.report, jobs, protect)):
        _fail(problem)
    if adapt is not None:
        _check_adapt_save(adapt, run.overwrite, jobs, protect, list(run.inputs))
    if not jobs and not problems:
        if shard_kn is not None and plan_jobs(list(run.inputs), run.output, suffix or model.task.suffix,
                                              run.recursive, run.fmt)[0]:
            click.echo(f"notice: share {shard_kn[0]}/{shard_kn[1]} holds none of the images (each file goes to "
                       f"one share; with more shares than files, some are empty): nothing to do", err=True)
            return
        _fail("no images found in the given inputs")

    if adapt is not None and jobs:
        model = _adapted(model, model_name, jobs, run, adapt, per_image, request)

    def process(images):
        if per_image is not None:  # one image per call: each has its own request
            results = [model.run_arrays([img.pixels], **request, **per_image(img))[0] for img in images]
        else:
            results = model.run_arrays([img.pixels for img in images], **request)
        return [finish(r, img) for r, img in zip(results, images)] if finish else results

    def precheck(job, img) -> None:  # what the output format cannot hold fails before the model runs
        h, w = img.pixels.shape[:2]
        size = out_size(img) if out_size is not None else (w * model.scale, h * model.scale)
        problem = size_problem(job.dst.suffix, *size)
        if problem:
            raise ValueError(problem)

    # same-size small images share a model call on a GPU; on a CPU that was measured slower
    # (0.91x vs 1.22x unbatched, docs/batch.md), so there they go one by one
    options = RunOptions(overwrite=run.overwrite, quiet=run.quiet, max_pixels=int(run.max_megapixels * 1e6),
                         jpeg_quality=run.jpeg_quality,
                         batch=8 if model.device.type == "cuda" and per_image is None else 1)
    from .io.animated import is_animation

    clips = [j for j in jobs if is_clip(j.src)]
    animations = [j for j in jobs if not is_clip(j.src) and is_animation(j.src)]
    moving = {id(j) for j in clips + animations}
    summary = run_jobs([j for j in jobs if id(j) not in moving], process, options, problems=problems,
                       precheck=precheck)
    if animations:
        from .batch.animation import run_animation_jobs

        summary.results += run_animation_jobs(animations, _frame_process(model, request, finish, per_image),
                                              run.overwrite, int(run.max_megapixels * 1e6))
    if clips:
        summary.results += _run_clips(clips, model, model_name, run, request, finish, per_image, shard_kn)
    if clips or animations:
        summary.seconds = sum(r.seconds for r in summary.results)
    click.echo(summary.line(), err=True)
    if run.report is not None:
        try:
            summary.write_report(run.report)
        except OSError as exc:
            _fail(f"{os_reason(exc)} (writing the --report; the files themselves are done)", 1)
    if summary.interrupted:
        sys.exit(130)
    if summary.failed:
        sys.exit(1)


def _frame_process(model, request: dict, finish, per_image, track=None):
    """(the clip's or animation's path, one frame's pixels) -> the frame processed as an image
    of that name is (its per-image request, its finish), plus what the task asks of a clip's
    frame from `track`'s place of each pixel (Task.clip_request)."""
    from .io.images import LoadedImage

    def frame(source: Path, pixels):
        img = LoadedImage(pixels, source, moving=True)
        extra = model.task.clip_request(pixels, track.coords) if track is not None else {}
        out = model.run_arrays([pixels], **request, **extra, **(per_image(img) if per_image is not None else {}))[0]
        return finish(out, img) if finish is not None else out
    return frame


def _run_clips(clips, model, model_name: str, run: RunArgs, request: dict, finish, per_image,
               shard: tuple[int, int] | None = None) -> list:
    """The batch's video clips, frame by frame through the model as an image is (its per-image
    request and finish hooks see each frame as an image of the clip's name), each resumable."""
    from .batch.clip import run_clip_jobs

    from .motion import PixelTrack

    track = PixelTrack() if run.steady and model.task.tracks_pixels else None  # (stylize's strokes on the picture)
    frame = _frame_process(model, request, finish, per_image, track)
    fingerprint = repr((_weights_digest(model), sorted((k, repr(v)) for k, v in request.items()),
                        run.ensemble, run.tile, run.precision, run.backend))
    try:
        from .steady import Steady

        return run_clip_jobs(clips, frame, fingerprint, run.overwrite, run.quiet, run.codec, run.crf,
                             int(run.max_megapixels * 1e6),
                             steady=Steady(judge=model.task.steady_judge) if run.steady else None,
                             shard=shard, chroma=run.chroma, track=track)
    except KeyboardInterrupt:
        _fail("interrupted: the finished pieces of the clip are kept; the same command resumes it", 130)


def _weights_digest(model) -> str:
    """A digest of the weights the run uses (an --adapt copy's own, a file replaced at the same
    path noticed), for a clip's resume key: pieces made by other weights are never joined."""
    import hashlib

    import torch

    digest = hashlib.sha256()
    for name, tensor in sorted(model.generator.state_dict().items()):
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().view(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


@dataclass(frozen=True)
class AdaptArgs:
    """--adapt SECONDS / --adapt-steps N / --adapt-save FILE (denoise, upscale, inpaint)."""

    seconds: float | None
    steps: int | None
    save: Path | None

    @classmethod
    def of(cls, seconds: float | None, steps: int | None, save: Path | None) -> "AdaptArgs | None":
        """None when no adaptation is asked for; a budget that cannot run fails in one line."""
        if seconds is None and steps is None:
            if save is not None:
                _fail("--adapt-save needs --adapt SECONDS (or --adapt-steps N): there is nothing to save otherwise")
            return None
        if steps is None and not (seconds > 0):
            _fail(f"--adapt must be a number of seconds above 0, got {seconds:g}")
        return cls(seconds, steps, save)


def _adapt_options(f):
    f = click.option("--adapt-save", "adapt_save", type=click.Path(path_type=Path, dir_okay=False),
                     help="Keep the adapted weights in this .safetensors file (reuse them with --model FILE).")(f)
    f = click.option("--adapt-steps", "adapt_steps", type=click.IntRange(min=1), default=None,
                     help="Adapt for exactly N steps instead of a time (the same result on any machine).")(f)
    f = click.option("--adapt", "adapt_seconds", type=float, default=None, callback=_finite, metavar="SECONDS",
                     help="First fine-tune a copy of the model on these inputs (a folder: one adaptation for all) "
                          "for about SECONDS, self-supervised; the shipped model is never changed.")(f)
    return f


def _check_adapt_save(adapt: AdaptArgs, overwrite: bool, jobs, protect: tuple[Path, ...],
                      inputs: list[Path]) -> None:
    """Before any work: --adapt-save must be a new (or, with --overwrite, an earlier weights)
    .safetensors file in a writable folder, and never an input, an output or a protected file."""
    from .batch.plan import report_problem

    path = adapt.save
    if path is None:
        return
    if path.suffix != ".safetensors":
        _fail(f"{path}: --adapt-save must be a .safetensors file")
    _check_file_to_write(path, "--adapt-save")
    problem = report_problem(path, jobs, (*protect, *inputs), option="--adapt-save")
    if problem:
        _fail(problem)
    if os.path.lexists(path) and not overwrite:
        _fail(f"{path}: exists (use --overwrite to replace it)")


def _adapted(model, model_name: str, jobs, run: RunArgs, adapt: AdaptArgs, per_image, request: dict):
    """The model to process with: a copy fine-tuned on the run's inputs, or the base model with a
    one-line reason. Ctrl-C here stops the run (exit 130); nothing has been written yet."""
    import torch

    from .engine.adapt import AdaptSettings, adapt as adapt_model, pooled_samples, save_adapted
    from .io.images import read_image

    def load(job):
        img = read_image(job.src, int(run.max_megapixels * 1e6))
        extra = per_image(img) if per_image is not None else {}
        return torch.from_numpy(img.pixels).permute(2, 0, 1)[None], {**request, **extra}

    settings = AdaptSettings(seconds=adapt.seconds or 0.0, steps=adapt.steps)
    if not run.overwrite and all(j.skip or os.path.lexists(j.dst) for j in jobs):
        click.echo("adapt: every output exists already (rerun with --overwrite to redo them): nothing to adapt for",
                   err=True)
        return model
    unread: list[str] = []  # why inputs could not be sampled (each is reported again by the run)
    try:
        samples = pooled_samples([j for j in jobs if not j.skip], load, settings,
                                 on_error=lambda job, why: unread.append(f"{job.src}: {why}"))
        if not samples:
            click.echo(f"adapt: no image to adapt on ({unread[0] if unread else 'none readable'}); "
                       f"using the base model", err=True)
            return model
        adapted, result = adapt_model(model, samples, settings, quiet=run.quiet)
    except KeyboardInterrupt:
        _fail("interrupted while adapting: nothing was written", 130)
    except ValueError as exc:
        _fail(_message(exc))
    click.echo(result.line(), err=True)
    if adapt.save is not None:
        if not result.kept:
            click.echo(f"notice: {adapt.save} not written (no adapted copy to keep)", err=True)
        else:
            try:
                save_adapted(adapt.save, adapted, result, model_name, shlex.join(["vitrestore", *sys.argv[1:]]))
            except OSError as exc:
                _fail(f"{adapt.save}: {os_reason(exc)} (writing --adapt-save; nothing was processed)", 1)
            click.echo(f"wrote {adapt.save}", err=True)
    return adapted


def _click_option(name: str, m: dict, default) -> click.Option:
    """A request field or command input (vitrestore/request.py option metadata) as a click option."""
    flag = "--" + name.replace("_", "-")
    # a required option gets no default None (click would take it as a value and run without it);
    # a flag keeps its None (click's own default for a flag is False: the model's default is meant)
    common = {"help": m["help"], "required": m["required"], "metavar": m["metavar"],
              **({"default": default, "show_default": default is not None}
                 if default is not None or (m["type"] == "flag" and not m["required"]) else {})}
    if m["type"] == "flag":
        return click.Option([f"{flag}/--no-{flag[2:]}"], **common)
    if m["type"] in ("number", "int"):
        lo, hi = m["lo"], m["hi"]
        kind = click.IntRange(lo, hi) if m["type"] == "int" else click.FloatRange(lo, hi)
        return click.Option([flag], type=kind, callback=None if m["type"] == "int" else _finite, **common)
    if m["type"] == "choice":  # click compares text: the value goes on as the declared choice (2, not "2")
        by_text = {str(c): c for c in m["choices"] or ()}
        return click.Option([flag], type=click.Choice(list(by_text)), **common,
                            callback=lambda ctx, param, value: by_text.get(value, value))
    return click.Option([flag], type=click.Path(path_type=Path) if m["type"] == "path" else None, **common)


def _task_command(command) -> click.Command:
    """`vitrestore <task>` from the task's declaration (vitrestore/command.py): the shared options,
    the request's user options, the command's own inputs and, where the task adapts, --adapt."""
    import dataclasses

    from . import request as requests
    from .request import keys as field_names

    taken = set(RunArgs.__dataclass_fields__) | {"adapt_seconds", "adapt_steps", "adapt_save"}
    request_fields = [f for f in dataclasses.fields(command.request) if requests.meta(f)["kind"] == "value"]
    input_fields = list(dataclasses.fields(command.inputs))
    names = [f.name for f in request_fields + input_fields]
    clash = sorted(n for n in names if n in taken or names.count(n) > 1)
    if clash:
        raise RuntimeError(f"tasks/{command.task}: option {clash[0]!r} is declared twice or taken by a shared option")
    input_names = field_names(command.inputs)

    def body(run: RunArgs, **kw) -> None:
        adapt = AdaptArgs.of(kw.pop("adapt_seconds"), kw.pop("adapt_steps"), kw.pop("adapt_save")) \
            if command.adapt else None  # a bad budget fails before anything is read
        inputs = command.inputs(**{name: kw.pop(name) for name in input_names})
        request = {k: v for k, v in kw.items() if v is not None}  # None: the model's default
        try:
            plan = command.plan(inputs, request, run.inputs)
        except ValueError as exc:
            _fail(str(exc))
        _run(plan.model, run, suffix=plan.suffix, finish=plan.finish, check=plan.check, per_image=plan.per_image,
             exclude=plan.exclude, protect=plan.protect, out_size=plan.out_size, adapt=adapt, **plan.request)

    f = _adapt_options(body) if command.adapt else body
    for fld in reversed(request_fields + input_fields):
        f.__dict__.setdefault("__click_params__", []).append(_click_option(fld.name, requests.meta(fld), fld.default))
    f = _common_run_options(f, ensemble=str(command.ensemble))
    return click.command(name=command.task, help=command.help, short_help=command.summary)(f)


@main.command()
@click.argument("model_name", metavar="MODEL")
@click.option("-o", "--output", type=click.Path(path_type=Path, dir_okay=False), required=True,
              help="The .onnx file to write.")
@click.option("--overwrite", is_flag=True, help="Replace the output if it exists.")
@click.option("--check/--no-check", default=True, show_default=True,
              help="Run the exported file in ONNX Runtime beside PyTorch on an odd-sized input and report the "
                   "largest difference.")
def export(model_name, output, overwrite, check) -> None:
    """Export a model (shipped name or .safetensors file) to ONNX, for ONNX Runtime, OpenCV DNN,
    chaiNNer and other tools.

    Dynamic batch, height and width; the model card, config and input/output contract are in the
    file's metadata (docs/onnx.md).
    """
    from .engine.onnx_export import export_generator
    from .engine.nets import onnx_available

    if output.suffix.lower() != ".onnx":
        _fail(f"{output}: the output must be a .onnx file")
    if output.exists() and not overwrite:
        _fail(f"{output}: exists (use --overwrite to replace it)")
    if not output.parent.is_dir():
        _fail(f"{output}: folder {output.parent} does not exist")
    if not onnx_available():
        _fail("export needs the packages onnx and onnxruntime (pip install onnx onnxruntime)")
    try:
        model = _tasks().load_model(model_name, device="cpu", backend="torch")
    except (WeightsError, ConfigError, KeyError, ValueError) as exc:
        _fail(_message(exc))
    try:
        export_generator(model.generator, output, model.config, model.card, model.task_doc())
    except OSError as exc:
        _fail(os_reason(exc), 1)
    click.echo(f"wrote {output} ({output.stat().st_size / 1e6:.1f} MB)")
    if check:
        from .engine.onnx_check import compare_with_torch

        try:
            size, diff = compare_with_torch(model.generator, output)
        except ValueError as exc:
            _fail(f"{_message(exc)}; do not use this file", 1)
        click.echo(f"checked: ONNX Runtime vs PyTorch on {size[1]}x{size[0]} inputs (batches of 1 and 2), "
                   f"largest difference {diff:.1e}")
        if diff > 1e-4:
            _fail(f"{output}: ONNX Runtime differs from PyTorch by {diff:.1e} (> 1e-4); do not use this file", 1)


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Address to listen on. Anything but loopback makes the studio reachable from other machines "
                   "and needs a token (--token-file, $VITRESTORE_STUDIO_TOKEN or --token).")
@click.option("--port", type=click.IntRange(0, 65535), default=7860, show_default=True)
@click.option("--token", default=None, envvar="VITRESTORE_STUDIO_TOKEN",
              help="A secret the page asks for once (sent as the X-Vitrestore-Token header) [default: "
                   "$VITRESTORE_STUDIO_TOKEN]. On the command line it shows in the process list: prefer the variable "
                   "or --token-file.")
@click.option("--token-file", type=click.Path(path_type=Path, dir_okay=False),
              help="Read the token from this file's first line.")
@click.option("--models", "models_dir", type=click.Path(path_type=Path, file_okay=False),
              help="A folder of trained .safetensors files for the Restore task.")
@click.option("--device", type=click.Choice(["auto", "cpu", "cuda"]), default="auto", show_default=True)
@click.option("--backend", type=click.Choice(["auto", "torch", "onnx"]), default=None,
              help="As for the image commands [default: $VITRESTORE_BACKEND, else auto].")
@click.option("--max-megapixels", type=float, default=DEFAULT_MAX_PIXELS / 1e6, show_default=True,
              callback=_positive_megapixels, help="Refuse larger uploads (decompression-bomb guard).")
@click.option("--max-store-mb", type=click.IntRange(min=256), default=2048, show_default=True,
              help="Disk space uploads and results may take; the least recently used go first.")
@click.option("--no-browser", is_flag=True, help="Do not open a browser window.")
def studio(host, port, token, token_file, models_dir, device, backend, max_megapixels, max_store_mb,
           no_browser) -> None:
    """Every task in the browser, on this machine: open a photo, paint what to remove, compare, download.

    Serves http://127.0.0.1:7860 and opens it. Works offline; uploads live in a private
    temporary folder that is removed when the studio stops (Ctrl-C, SIGTERM, SIGHUP).
    """
    import signal

    from click.core import ParameterSource

    from .engine.runtime import check_environment
    from .studio.http import LOOPBACK, StudioServer, read_token
    from .studio.server import Studio

    if models_dir is not None and not models_dir.is_dir():
        _fail(f"{models_dir}: --models folder does not exist")
    source = click.get_current_context().get_parameter_source("token")
    try:  # a setting that would fail every job fails here, in one line
        token = read_token(None if token_file and source == ParameterSource.ENVIRONMENT else token, token_file)
        check_environment(device, backend)
    except ValueError as exc:
        _fail(str(exc))
    if token and source == ParameterSource.COMMANDLINE:
        click.echo("warning: --token shows in the process list to other users of this machine; "
                   "$VITRESTORE_STUDIO_TOKEN or --token-file do not", err=True)
    if host not in LOOPBACK:
        if not token:
            _fail(f"--host {host} makes the studio reachable from other machines: give a token too "
                  f"(--token-file, $VITRESTORE_STUDIO_TOKEN or --token)")
        click.echo(f"warning: the studio listens on {host}: anyone who can reach this machine and knows the "
                   f"token can run models and upload images", err=True)
    st = Studio(_tasks(), device=device, models_dir=models_dir, max_pixels=int(max_megapixels * 1e6), backend=backend,
                max_store_bytes=max_store_mb * 2**20)
    try:
        server = StudioServer(st, host, port, token)
    except OSError as exc:
        st.close()
        _fail(f"cannot listen on {host}:{port}: {exc.strerror or exc}", 1)
    stopped_by: list[int] = []

    def stop(signum, frame):  # Ctrl-C, SIGTERM, SIGHUP: stop serving; the `finally` below cleans up
        if not stopped_by:  # a second signal while stopping is ignored: the folder still goes
            stopped_by.append(signum)
            raise KeyboardInterrupt

    for name in ("SIGINT", "SIGTERM", "SIGHUP"):
        if hasattr(signal, name):
            signal.signal(getattr(signal, name), stop)
    clean = False
    try:
        click.echo(f"vitrestore studio: {server.url}  (Ctrl-C stops it)", err=True)
        if not no_browser:
            import webbrowser

            threading_timer = __import__("threading").Timer(0.5, webbrowser.open, (server.url,))
            threading_timer.daemon = True
            threading_timer.start()
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
        clean = st.close(timeout=30)  # cancels the jobs, waits for the worker, removes the folder
    code = 128 + int(stopped_by[0]) if stopped_by else 130  # 130 Ctrl-C, 143 SIGTERM, 129 SIGHUP
    if not clean:  # a model call is still running on another thread: a normal exit would abort
        click.echo("warning: a model call did not stop within 30 s; exiting without waiting for it", err=True)
        sys.stderr.flush()
        os._exit(code)
    sys.exit(code)


@main.command()
def models() -> None:
    """List the shipped models and their measured quality."""
    names = shipped_models()
    if not names:
        click.echo("no shipped models found")
        return
    for name in names:
        config, card = read_metadata(resolve(name))
        click.echo(f"{name}  (task {config.get('task')}, {card.get('parameters', '?')} parameters, "
                   f"{card.get('steps', '?')} training steps)")
        for line in card.get("metrics", []):
            click.echo(f"    {line}")


@main.command()
@click.argument("config", required=False, type=click.Path(path_type=Path))
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE", help="Override a config value (repeatable).")
@click.option("--resume", type=click.Path(path_type=Path), help="Resume the run in this folder (its config.yaml).")
@click.option("--force", is_flag=True,
              help="Start a new run even if train.out already holds one (its checkpoint, weights, metrics and samples "
                   "are replaced; a folder holding anything that is not a vitrestore run's is refused).")
@click.option("--device", type=click.Choice(["auto", "cpu", "cuda"]), default="auto", show_default=True)
@click.option("-q", "--quiet", is_flag=True)
def train(config, overrides, resume, force, device, quiet) -> None:
    """Train a model from a YAML config or recipe (or resume a run folder).

    A train.out folder that already holds a run is never overwritten: continue it with
    --resume, or replace it deliberately with --force (which clears only a vitrestore run's own
    files, and refuses a folder holding anything else). A run folder is locked while a run uses
    it: a second run into it is refused. Ctrl-C or SIGTERM saves a checkpoint and exits with
    status 130. A recipe of several stages (`stages:`, docs/training.md) trains them in order;
    rerun the same command to continue it (a stage that holds a run is resumed).
    """
    import shlex

    from .engine import distributed
    from .engine.run_folder import RunLock, check_resume, resumable, survey
    from .engine.train import build_trainer
    from .recipe import load_recipe

    tasks = _tasks()
    if resume is not None:
        if config is not None:
            _fail("give either CONFIG or --resume RUN, not both")
        if force:
            _fail("--force starts a new run; it cannot be combined with --resume")
        if not resume.is_dir():
            _fail(f"{resume}: not a run folder (a file)" if resume.exists() else f"{resume}: no such run folder")
        try:
            check_resume(survey(resume))  # a run of ours, with a checkpoint: before its config is read
        except (ConfigError, OSError) as exc:
            _fail(_message(exc))
        if not (resume / "config.yaml").is_file():
            _fail(f"{resume}: not a run folder (no config.yaml)")
        config = resume / "config.yaml"
    elif config is None:
        _fail("missing CONFIG (a YAML file) or --resume RUN")
    rerun = shlex.join(["vitrestore", "train", *(["--resume", str(resume)] if resume is not None else [str(config)]),
                        *[a for o in overrides for a in ("--set", o)], *(["--force"] if force else [])])
    info = distributed.DistInfo.from_env()
    rank = f" (rank {info.rank})" if info.world > 1 else ""
    try:
        device = str(tasks.pick_device(device))
    except ValueError as exc:  # --device cuda without a GPU: one line, before any file is read
        _fail(f"{exc}{rank}")
    trainer, chained = None, False

    def advice(exc: BaseException | None) -> str:  # what to do now: the stopped stage's folder, truthfully
        return trainer.run.advice(exc, rerun, chained) if trainer is not None else "the run folder was not changed"

    def and_advice(exc: BaseException) -> str:  # the advice after an error, once the stage changed its folder
        return f"; {advice(exc)}" if trainer is not None and trainer.run.changed else ""

    try:
        stages = load_recipe(config, list(overrides), task_lookup=tasks.get_task)  # every stage checked first
        if resume is not None:
            stages = [replace(stages[0], train=replace(stages[0].train, out=str(resume)))]
        chained = len(stages) > 1
        if info.main:
            for cfg in stages:  # a run in any stage's folder stops this one before any stage starts
                RunLock(Path(cfg.train.out).expanduser()).probe()
        for k, cfg in enumerate(stages, 1):
            again = chained and not force and resumable(Path(cfg.train.out).expanduser())
            if chained and info.main:
                click.echo(f"stage {k} of {len(stages)}: {cfg.train.out}" + (" (resumed)" if again else ""), err=True)
            trainer = None  # this stage's, once built
            trainer = build_trainer(cfg, tasks.get_task, config, list(overrides), device=device,
                                    resume=resume is not None or again, quiet=quiet, force=force)
            result = trainer.fit()
            if trainer.interrupted:
                break
    except KeyboardInterrupt:
        where = f"at step {trainer.step}" if trainer is not None else "before training started"
        _fail(f"{config}: interrupted {where}; {advice(None)}{rank}", 130)
    except (ConfigError, KeyError, ValueError) as exc:
        _fail(_message(exc) + and_advice(exc) + rank)
    except OSError as exc:
        _fail(os_reason(exc) + and_advice(exc) + rank)
    finally:
        distributed.teardown(info)
    if info.main:
        val = ", ".join(f"{k} {v:.4f}" for k, v in result.items() if k != "step") or "no validation"
        if trainer.interrupted:
            again = (f"vitrestore train {config}" if chained and resume is None
                     else f"vitrestore train --resume {trainer.out}")
            click.echo(f"interrupted at step {trainer.step} of {trainer.total_steps} ({val}); checkpoint saved, "
                       f"continue with: {again}", err=True)
        else:
            click.echo(f"finished at step {trainer.step}: {val}")
        click.echo(f"weights: {trainer.out / 'weights.safetensors'}")
    if trainer.interrupted:
        sys.exit(130)

if __name__ == "__main__":
    main()
