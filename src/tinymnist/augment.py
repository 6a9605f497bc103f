"""Batched data augmentation: one random affine transform, brightness and contrast per image, applied
to the whole batch at once on the device (`affine_grid` / `grid_sample`, no per-sample Python).
"""

import math

import torch
import torch.nn.functional as F


def uniform(n: int, limit: float, generator: torch.Generator | None, device: torch.device) -> torch.Tensor:
    """`n` numbers drawn uniformly from [-limit, limit]."""
    return (2 * torch.rand(n, generator=generator, device=device) - 1) * limit


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

    angle = uniform(n, math.radians(degrees), generator, images.device)
    zoom = 1 + uniform(n, scale, generator, images.device)
    # affine_grid maps output coordinates to input ones, in [-1, 1]: the inverse transform.
    cos, sin = torch.cos(angle) / zoom, torch.sin(angle) / zoom
    shift = torch.stack([uniform(n, 2 * translate, generator, images.device) for _ in range(2)], dim=1)
    theta = torch.stack([torch.stack([cos, -sin], 1), torch.stack([sin, cos], 1)], 1)
    theta = torch.cat([theta, shift.unsqueeze(2)], dim=2)
    grid = F.affine_grid(theta, side_by_side, align_corners=False)
    return F.grid_sample(images, grid, mode="bilinear", padding_mode="zeros", align_corners=False)


def random_jitter(
    images: torch.Tensor, brightness: float, contrast: float, generator: torch.Generator | None = None
) -> torch.Tensor:
    """Multiply each image by a contrast factor in [1 - `contrast`, 1 + `contrast`] and add a brightness
    offset in +-`brightness`, clamped to [0, 1]: fainter or bolder ink, on paper that may be grey.
    Draws nothing when both are 0, so that runs without jitter keep their random numbers."""
    if brightness == contrast == 0:
        return images
    n, device = len(images), images.device
    factor = 1 + uniform(n, contrast, generator, device).view(n, 1, 1, 1)
    offset = uniform(n, brightness, generator, device).view(n, 1, 1, 1)
    return (images * factor + offset).clamp_(0, 1)
