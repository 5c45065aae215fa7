"""`vitrestore inpaint`, declared once (vitrestore/command.py): the request (the hole, the
texture) and where the CLI takes the hole from (a mask file or folder, or a key colour). Imports
no torch: `vitrestore --help` reads it."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from vitrestore.command import Command, Offer, Plan, Studio, own_task
from vitrestore.request import option


@dataclass(frozen=True)
class InpaintRequest:
    mask: Any = option(None, kind="image", help="The hole (B, 1, H, W), 1 = fill: --mask or --mask-color.")
    texture: bool | None = option(None, choices=(False, True),
                                  help="Copy real texture from the photo into wide holes (--no-texture: the "
                                       "network's smooth fill, a little closer on average, visibly blurred in large "
                                       "holes).  [default: the model's own; on for the shipped model]")
    check_cancel: Any = option(None, kind="hook", help="Called between the texture step's rounds; raises to stop "
                                                       "(the studio's cancel).")


@dataclass(frozen=True)
class InpaintInputs:
    mask: Path | None = option(None, type="path", help="Mask image (white/opaque = fill), or a folder of masks "
                                                       "matched to the inputs by file name.")
    mask_color: str | None = option(None, help="Fill every pixel of this colour instead: R,G,B or #rrggbb.")
    tolerance: int = option(0, lo=0, hi=255, type="int",
                            help="How far (0-255) a pixel may be from --mask-color and still be filled.")
    dilate: int = option(0, lo=0, hi=100, type="int", help="Grow the hole by this many pixels (covers halos "
                                                           "around damage).")
    model: str = option("inpaint", help="Shipped model name or a .safetensors weights file.")


def plan(inputs: InpaintInputs, request: dict, paths: tuple[Path, ...]) -> Plan:
    from . import inpaint_masks  # noqa: PLC0415  (OpenCV: not for --help)

    masks = inpaint_masks.UserMasks(list(paths), mask_path=inputs.mask,
                                    color=inputs.mask_color, tolerance=inputs.tolerance, dilate=inputs.dilate)

    def mask_for(img) -> dict:
        import torch  # noqa: PLC0415

        hole = masks.hole_for(img)  # (H, W) bool
        return {"mask": torch.from_numpy(hole.astype("float32"))[None, None]}

    mask_is_dir = inputs.mask is not None and inputs.mask.is_dir()
    return Plan(inputs.model, request, check=own_task("inpaint", inputs.model), per_image=mask_for,
                exclude=(inputs.mask,) if mask_is_dir else (),
                protect=(inputs.mask,) if inputs.mask and not mask_is_dir else ())


@dataclass(frozen=True)
class InpaintStudio:
    mask: str | None = option(None, type="image id", required=True,
                              help="An uploaded mask image of the image's size (white/opaque = fill).")


def studio_plan(options: InpaintStudio, request: dict, offer: Offer) -> tuple[Path, dict]:
    return offer.shipped("inpaint"), request


def read_upload(name: str, pixels, cut):
    """The hole (H, W) bool from an uploaded mask's pixels (cut to a preview's crop and its
    context where `cut`, two slices, is given); ValueError where there is nothing to fill or
    nothing known to fill it from."""
    from . import inpaint_masks  # noqa: PLC0415  (OpenCV: not for --help)

    hole = inpaint_masks.mask_from_pixels(pixels)  # the whole mask: whether its alpha marks the hole
    if cut is not None:
        return inpaint_masks.fillable(hole[cut], "no masked pixel in or near the crop: pick a point on the mask",
                                      "the mask covers the crop and all around it: no known pixel to fill from")
    return inpaint_masks.fillable(hole, "the mask is empty: paint over what to remove",
                                  "the mask covers the whole image: no known pixel to fill from")


COMMAND = Command(
    task="inpaint", implementation="inpaint:Inpaint", request=InpaintRequest, inputs=InpaintInputs, plan=plan,
    adapt=True, studio=Studio("Inpaint (remove)", studio_plan, InpaintStudio, uploads={"mask": "mask"},
                              read_upload=read_upload, order=3, keeps_name=True),
    help="""Fill holes: the white (or opaque) pixels of a mask, or every pixel of a key colour.

    Writes <stem>_inpainted.<ext> beside each input. Pixels outside the hole are kept exactly.
    """)
