"""Test data shared by the EED and TV inpainting tests: a smooth image with an edge and a random mask."""
import scipy.ndimage
import torch

__all__ = ["edge_image", "random_known"]


def edge_image(shape, seed=0, dtype=torch.float64):
    """A smooth random image with an edge: low-pass noise plus a step."""
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(*shape, generator=g, dtype=torch.float64)
    x = torch.from_numpy(scipy.ndimage.gaussian_filter(x.numpy(), 1.5, axes=(-2, -1)))
    x[..., :, shape[-1] // 2:] += 0.5
    return x.to(dtype)


def random_known(shape, density, seed=1):
    """A float64 mask with each pixel known with probability ``density``."""
    g = torch.Generator().manual_seed(seed)
    return (torch.rand(*shape, generator=g) < density).double()
