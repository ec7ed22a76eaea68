"""Geometric multigrid for the masked Neumann Laplacian, the system of diffusion inpainting.

The system. On an ``H x W`` grid with a *known* indicator ``k`` (1 on the
Dirichlet pixels), ``w = 1 - k`` and an optional non-negative diagonal ``d``
(zero where ``k = 1``),

    A x = w * (-L (w * x)) + (k + d) * x,

with ``L`` the 5-point Neumann Laplacian of :func:`pdeflow.ops.laplacian`.
``A`` is symmetric positive definite as soon as every image has a known pixel
(or a positive ``d``). :class:`Multigrid` solves ``A x = b`` for right-hand
sides that are zero on the known pixels (the unknowns of diffusion
inpainting) by conjugate gradients preconditioned with one symmetric V-cycle.

The hierarchy. Coarse grids halve each side (vertex-centred: coarse point
``I`` sits on fine point ``2 I``); the prolongation is bilinear
interpolation, restricted to the unknown pixels on the finest grid, and the
restriction its transpose. The coarse operators are the Galerkin products
``R A P``, built one axis at a time from the stencils (a 5-point stencil
becomes a 9-point one and stays 9-point), so a mask of any sparsity is
coarsened faithfully. Grids are coarsened until at most ``coarsest`` points
are left, which are solved by a dense pseudo-inverse.

The smoother. Vectors live in a *phase layout*: the four sub-grids of even
and odd rows and columns, each contiguous, ``(..., 2, 2, ceil(H/2),
ceil(W/2))``. On the finest grid (5-point stencil) the phases (even, even) and
(odd, odd) are the red points of red-black Gauss-Seidel and the other two the
black ones; a half-sweep updates one colour in place from contiguous shifted
views of the other. On the 9-point coarse grids no two points of one phase
are neighbours, so the four phases are the four colours of a four-colour
Gauss-Seidel. Pre-smoothing visits the colours in one order and
post-smoothing in the reverse one, so the V-cycle is a symmetric
preconditioner. Points whose value the next half-sweep overwrites are neither
restricted from nor prolongated to (their residual is zero after the
pre-smoother; their correction is overwritten by the post-smoother).

Precision. Everything runs in the dtype of the mask (float32 or float64) on
its device. The stopping rule is the relative residual
``||b - A x|| / ||b||`` per image; when CG's recurrence residual says it is
reached, the true residual is recomputed in float64 (in strips of rows, so
the memory stays a small multiple of the image) and the iteration goes on
from it if it is not.

Volumes. :class:`Multigrid3d` is the same solver for the 7-point Laplacian on
``(D, H, W)`` grids, with a grid ``spacing`` (anisotropic voxels): trilinear
interpolation, Galerkin 27-point coarse operators built one axis at a time,
semi-coarsening where the voxels are anisotropic, red-black Gauss-Seidel on
the finest grid and eight-colour Gauss-Seidel on the coarse ones, in the
natural layout (a colour is a strided view).

References
----------
.. [1] U. Trottenberg, C. W. Oosterlee, A. Schueller, "Multigrid", Academic
   Press, 2001 (Galerkin coarse grids, red-black and four-colour
   Gauss-Seidel smoothing).
.. [2] S. Kaemper, V. Chizhov, J. Weickert, "Efficient and accurate
   inpainting of 4K colour images on the GPU" (multigrid for homogeneous
   diffusion inpainting), 2024.
"""
from ._grid2d import prolong, restrict
from ._multigrid2d import Multigrid
from ._multigrid3d import Multigrid3d, prolong3, restrict3

__all__ = ["Multigrid", "Multigrid3d", "prolong", "restrict", "prolong3", "restrict3"]
