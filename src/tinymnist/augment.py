"""Batched data augmentation: one random affine transform per image, applied to the whole
batch at once on the device with `affine_grid` / `grid_sample` (no per-sample Python).
"""

import math

import torch
import torch.nn.functional as F


def random_affine(
    images: torch.Tensor,
    degrees: float,
    translate: float,
    scale: float,
    generator: torch.Generator | None = None,
    side: int | None = None,
) -> torch.Tensor:
    """Rotate by up to +-`degrees`, shift by up to +-`translate` of the image size, and zoom
    by a factor in [1 - scale, 1 + scale]; images are float (N, 1, H, W) with 0 as background.
    With `side`, the result is resampled to side x side in the same pass (progressive resizing).
    """
    n, c, h, w = images.shape
    side_by_side = [n, c, side or h, side or w]
    if degrees == translate == scale == 0:
        same = side_by_side == list(images.shape)
        return images if same else F.interpolate(images, side_by_side[2:], mode="area")

    def uniform(limit: float) -> torch.Tensor:
        u = torch.rand(n, generator=generator, device=images.device)
        return (2 * u - 1) * limit

    angle = uniform(math.radians(degrees))
    zoom = 1 + uniform(scale)
    # affine_grid maps output coordinates to input ones, in [-1, 1]: the inverse transform.
    cos, sin = torch.cos(angle) / zoom, torch.sin(angle) / zoom
    shift = torch.stack([uniform(2 * translate), uniform(2 * translate)], dim=1)
    theta = torch.stack([torch.stack([cos, -sin], 1), torch.stack([sin, cos], 1)], 1)
    theta = torch.cat([theta, shift.unsqueeze(2)], dim=2)
    grid = F.affine_grid(theta, side_by_side, align_corners=False)
    return F.grid_sample(images, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
