"""`vitrestore repair`, declared once (vitrestore/command.py): find the damage on old photos and
fill it. The detector (tasks/repair.py, shipped as `repair`) gives the damage mask; the user's
own strokes (--mask) are added; the shipped inpaint model fills the hole; pixels outside it are
the input's, exactly, unless --denoise asks for a grain pass over the whole photo. Imports no
torch: `vitrestore --help` reads it."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from vitrestore.command import Command, Draft, Offer, Plan, Studio, own_task
from vitrestore.request import option

from .inpaint_command import InpaintStudio, read_upload


@dataclass(frozen=True)
class RepairRequest:
    sensitivity: float | None = option(None, lo=0, hi=1, step=0.05,
                                       help="How readily a pixel counts as damage: higher finds fainter damage "
                                            "and risks more false hits (0.5: the model's tuned threshold).")


@dataclass(frozen=True)
class RepairInputs:
    model: str = option("repair", help="The damage detector: shipped name or a .safetensors weights file "
                                       "(training: configs/repair.yaml).")
    mask: Path | None = option(None, type="path", help="Your own strokes to repair too (white = damage): a mask "
                                                       "image, or a folder of masks matched to the inputs by name "
                                                       "(<stem>.* or <stem>_mask.*; a photo without one: none).")
    mask_out: Path | None = option(None, type="path", help="Write the damage mask found (and your strokes) to this "
                                                           "folder as <stem>_mask.png (8-bit, 255 = damaged; input "
                                                           "folders mirrored as with -o; made if missing). Strokes "
                                                           "painted into one come back with --mask (added to what "
                                                           "is found); `vitrestore inpaint --mask` fills exactly the "
                                                           "masks as edited.")
    fill: str = option("inpaint", help="The inpainting model that fills the damage (shipped name or a file).")
    denoise: float | None = option(None, lo=0, hi=255, unit="0-255 scale",
                                   help="Then remove film grain from the whole photo with the shipped denoise "
                                        "model at this level (gentle: 5-15). Off by default: the pixels outside "
                                        "the damage are kept exactly.")


def plan(inputs: RepairInputs, request: dict, paths: tuple[Path, ...]) -> Plan:
    from . import inpaint_masks  # noqa: PLC0415  (OpenCV: not for --help)

    masks = inpaint_masks.UserMasks(list(paths), mask_path=inputs.mask) if inputs.mask is not None else None
    folders = [Path(p).expanduser().resolve() for p in paths if Path(p).expanduser().is_dir()]
    mask_out = _mask_folder(inputs.mask_out, folders, inputs.mask) if inputs.mask_out is not None else None
    models: dict[str, Any] = {}

    def model(name: str, task: str, option: str):
        if name not in models:
            from . import load_model  # noqa: PLC0415

            try:
                models[name] = load_model(name, device="auto")
                own_task(task, name)(models[name])
            except (OSError, KeyError, ValueError) as exc:
                raise ValueError(f"{option} {name}: {str(exc).removeprefix(f'{name}: ')}") from None
        return models[name]

    model(inputs.fill, "inpaint", "--fill")  # a wrong --fill fails now, not after each photo's detection
    written: dict[Path, Path] = {}  # the masks this run wrote, by the photo they are of

    def finish(found, image):
        """The detector's mask (H, W, 3) 8-bit, the loaded image -> the repaired pixels."""
        import numpy as np  # noqa: PLC0415
        import torch  # noqa: PLC0415

        hole = found[..., 0] > np.iinfo(found.dtype).max // 2
        if masks is not None:
            hole |= masks.marked_for(image, missing_ok=True)
        if hole.all():
            raise ValueError("the damage found" + (" and --mask" if masks is not None else "")
                             + " covers the whole photo: nothing known to fill it from")
        if mask_out is not None:
            if image.moving:  # one <stem>_mask.png would be overwritten frame after frame
                raise ValueError("--mask-out writes one mask a photo, and this is a clip or an animated image: "
                                 "repair it without --mask-out")
            _write_mask(hole, _mask_path(mask_out, image.path, folders), image.path, inputs.mask, written)
        out = image.pixels
        if hole.any():
            hole_map = torch.from_numpy(hole.astype("float32"))[None, None]  # (1, 1, H, W)
            out = model(inputs.fill, "inpaint", "--fill").run_arrays([out], mask=hole_map)[0]
        if inputs.denoise is not None:
            out = model("denoise", "denoise", "--denoise").run_arrays([out], sigma=inputs.denoise)[0]
        return out

    exclude = [inputs.mask] if inputs.mask is not None and inputs.mask.is_dir() else []
    if mask_out is not None and any(mask_out.expanduser().resolve().is_relative_to(f) for f in folders):
        exclude.append(mask_out)  # in an input folder: the masks written are never photos to repair
    return Plan(inputs.model, request, suffix="repaired", check=own_task("repair", inputs.model), finish=finish,
                exclude=tuple(exclude),
                protect=(inputs.mask,) if inputs.mask is not None and not inputs.mask.is_dir() else ())


def _mask_folder(folder: Path, inputs: list[Path], user_masks: Path | None) -> Path:
    """--mask-out, checked (and made where missing): a folder, not an input folder (its subfolder
    is fine: it is then no input) nor the --mask folder. ValueError otherwise."""
    if folder.exists() and not folder.is_dir():
        raise ValueError(f"{folder}: --mask-out must be a folder, not a file")
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ValueError(f"{folder}: --mask-out cannot be made ({exc.strerror or exc})") from None
    real = folder.expanduser().resolve()
    if user_masks is not None and user_masks.is_dir() and real == user_masks.expanduser().resolve():
        raise ValueError(f"{folder}: --mask-out is the --mask folder: the masks written would replace your strokes; "
                         f"give it a folder of its own")
    if real in inputs:
        raise ValueError(f"{folder}: --mask-out must not hold the inputs (its masks would be read as photos "
                         f"on the next run): give it a folder of its own")
    return folder


def _mask_path(folder: Path, photo: Path, inputs: list[Path]) -> Path:
    """<folder>/<the photo's folder under its input folder>/<stem>_mask.png: masks mirror the
    input tree as -o does, so photos of one name in two folders keep a mask each."""
    real = photo.expanduser().resolve()
    for given in inputs:
        if real.is_relative_to(given):
            return folder / real.relative_to(given).parent / f"{photo.stem}_mask.png"
    return folder / f"{photo.stem}_mask.png"


def _write_mask(hole, target: Path, photo: Path, user_mask: Path | None, written: dict[Path, Path]) -> None:
    """The 8-bit mask (255 = damaged) at `target`, atomically; ValueError where that would
    replace the photo, the user's --mask or a mask this run wrote for another photo."""
    import numpy as np  # noqa: PLC0415

    from vitrestore.io.atomic import write_atomic  # noqa: PLC0415
    from vitrestore.io.images import encode_image  # noqa: PLC0415

    real = target.expanduser().resolve()
    if real == photo.expanduser().resolve() or (user_mask is not None and real == user_mask.expanduser().resolve()):
        raise ValueError(f"--mask-out would overwrite {target}, an input")
    if real in written and written[real] != photo:
        raise ValueError(f"--mask-out would overwrite {target}, the mask of {written[real]} (two photos named "
                         f"{photo.stem}.* in one folder)")
    real.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(real, encode_image((hole * 255).astype(np.uint8)[..., None], ".png"))
    written[real] = photo


# The studio: the detector's mask is drafted into the page's painter (POST /api/draft) to accept,
# erase false hits from or add missed damage to; the job fills the mask as edited with the
# shipped inpaint model (the detector does not run again), named <stem>_repaired.
def studio_plan(options: InpaintStudio, request: dict, offer: Offer) -> tuple[Path, dict]:
    return offer.shipped("inpaint"), {}  # sensitivity was the draft's


def draft_plan(options: InpaintStudio, request: dict, offer: Offer) -> tuple[Path, dict]:
    return offer.shipped("repair"), request


COMMAND = Command(task="repair", implementation="repair:Repair", request=RepairRequest, inputs=RepairInputs, plan=plan,
                  studio=Studio("Repair (find damage)", studio_plan, InpaintStudio, uploads={"mask": "mask"},
                                read_upload=read_upload, order=3, keeps_name=True, suffix="repaired",
                                drafts={"mask": Draft("Find damage", draft_plan)}),
                  help="""Find and mend the damage on old photos (cracks, scratches, dust, creases), no mask needed.

    Writes <stem>_repaired.<ext> beside each input. Pixels outside the damage found are kept exactly
    (in a lossless format: a JPEG output is encoded anew).
    """)
