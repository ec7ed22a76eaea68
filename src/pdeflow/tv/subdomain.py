"""The ROF dual problem restricted to a block: the subdomain solver of a domain decomposition.

:func:`pdeflow.tv.rof` solves ``argmin_u 1/2 ||u - f||^2 + lam TV(u)`` on a whole image through its dual
``min 1/2 ||f + lam div p||^2`` over ``|p| <= 1`` pixelwise (Chambolle 2004), ``u = f + lam div p``. A domain
decomposition of that dual (:mod:`pdeflow.dask.tv`) needs the same problem on one block with the duals around it
held: the block's own duals free, the held ones entering through ``div p`` on its faces. :func:`pdeflow.tv.rof`
cannot pose it (its dual field has Neumann conditions at the image's far faces: the normal component zero there),
so this module solves it on its own:

* :func:`block_divergence`: ``div p`` of a block that reads every dual the block holds, its last slab too (the
  duals of the edges into the next block), the duals before the block counting as zero (the caller includes
  the slab before the block when they matter).
* :func:`block_primal` and :func:`block_gap`: ``u = f + lam div p`` of a block, and the duality gap and primal
  energy over a region of it, computed in float64 with no temporary of the dual field's size (the data and the
  duals may stay float32, as a zarr store holds them); :func:`block_tied_gap`: the gap of the candidate tied on
  the dual's flat regions, the sharper certificate (as :func:`pdeflow.tv.rof`'s).
* :func:`solve_subdomain`: the exact subproblem over the ``free`` duals of a block, by fast gradient
  projection on the dual (Beck and Teboulle, "Fast gradient-based algorithms for constrained total variation
  image denoising and deblurring problems", 2009) with adaptive restart (O'Donoghue and Candes, 2015),
  warm-started from the current duals, stopped by the subproblem's own duality gap (or its tied candidate's).

The FGP is :func:`pdeflow.tv.rof`'s: on 2-D blocks its compiled step and gap loops (``pdeflow.tv._fgp_kernel``),
elsewhere the same step in PyTorch, with the rules of ``pdeflow.tv._fgp`` (the momentum and its restart, the gap
and energy from their sums, the block's operators and sums). What is the block's own is its boundary: the held
duals (the ``fixed`` pixels keep their values) and a divergence that reads the block's last slab.

They work on tensors of the batched layout ``(b, C, *S)`` and dual fields ``(b, C, n, *S)`` with
``n = len(S)`` spatial axes (2 or 3).
"""
from __future__ import annotations

import math

import torch

from .. import ops
from ._fgp import block_sums, difference_rows, gap_terms, gradient_sums, momentum, primal_rows
from ._fused_rows import FUSED, kernel
from ._tied import tie_box
from .rof import FLOAT32_TOL, TIED_REACH

__all__ = ["block_divergence", "block_primal", "block_gap", "block_tied_gap", "solve_subdomain"]


def block_divergence(p: torch.Tensor, spatial: int) -> torch.Tensor:
    """``div p`` of a block that reads every dual of the block, its last slabs included.

    :func:`pdeflow.ops.div` of the block with one slab of zero duals appended along every spatial axis, cropped
    back: at the block's high faces the duals of the edges into the next block are read (not dropped as the
    image's Neumann border drops them); the duals before the block count as zero.

    Parameters
    ----------
    p : Tensor, shape (b, C, n, *S)
        The dual field of the block, ``n = spatial``.
    spatial : int
        Spatial axes, 2 or 3.

    Returns
    -------
    Tensor, shape (b, C, *S)

    Examples
    --------
    >>> import torch
    >>> from pdeflow.tv.subdomain import block_divergence
    >>> p = torch.zeros(1, 1, 2, 3, 3)
    >>> p[0, 0, 1, 1, 2] = 1.0          # the x-dual of the last column: an edge into the next block
    >>> block_divergence(p, 2)[0, 0, 1].tolist()
    [0.0, 0.0, 1.0]
    """
    d = ops.div(torch.nn.functional.pad(p, (0, 1) * spatial), ndim=spatial)
    return d[(Ellipsis,) + (slice(0, -1),) * spatial]


def block_primal(f: torch.Tensor, p: torch.Tensor, lam: float, dtype=torch.float64,
                 out: torch.Tensor | None = None) -> torch.Tensor:
    """``f + lam * block_divergence(p)`` in ``dtype``, computed into one new array or ``out`` (``f`` and ``p`` are
    read in their own dtypes, not copied).

    Parameters
    ----------
    f, p, lam
        As :func:`solve_subdomain` (float32 or float64, each its own).
    dtype : torch.dtype
        The result's dtype (default float64).
    out : Tensor, optional
        A contiguous array of ``f``'s shape and ``dtype`` to write ``u`` into.

    Returns
    -------
    Tensor
        ``u``, of the shape of ``f``.

    Examples
    --------
    >>> import torch
    >>> from pdeflow.tv.subdomain import block_primal
    >>> f, p = torch.ones(1, 1, 2, 2), torch.zeros(1, 1, 2, 2, 2)
    >>> p[0, 0, 1, 0, 0] = 1.0      # one x-dual: it moves lam from a pixel to its right neighbour
    >>> block_primal(f, p, 0.5)[0, 0].tolist()
    [[1.5, 0.5], [1.0, 1.0]]
    """
    out = torch.empty(f.shape, dtype=dtype) if out is None else out
    return primal_rows(out, f, p, lam, f.dim() - 2, _pass_blocks(f))


def block_gap(f: torch.Tensor, p: torch.Tensor, lam: float, region: tuple) -> torch.Tensor:
    """The duality gap and the primal energy of ``u = f + lam div p`` over the pixels of ``region``, per image.

    With ``g = grad u`` (forward differences inside the block, so a region's last pixels need the block's next
    slab): gap ``lam * sum(|g| - <g, p>)`` (at least 0), energy ``sum(1/2 (u - f)^2 + lam |g|)``, both over
    ``region``, in float64: the sums and the terms the solver's stopping test computes too. Holds ``u`` and a row
    block's scratch (:data:`SLAB_ELEMENTS`), none of the dual field's size.

    Parameters
    ----------
    f : Tensor, shape (b, C, *S)
    p : Tensor, shape (b, C, n, *S)
    lam : float
    region : tuple of slices
        The pixels summed over.

    Returns
    -------
    Tensor, shape (b, 2), float64
        Per image, the gap and the energy.

    Examples
    --------
    >>> import torch
    >>> from pdeflow.tv.subdomain import block_gap
    >>> f = torch.tensor([[[[0.0, 1.0], [0.0, 1.0]]]])       # a step; zero duals: u = f, TV(u) = 2
    >>> block_gap(f, torch.zeros(1, 1, 2, 2, 2), 0.5, (slice(None), slice(None))).tolist()
    [[1.0, 1.0]]
    """
    u = torch.empty(f.shape, dtype=torch.float64)
    tv, slack, div_sq = block_sums(u, f, p, lam, _pass_blocks(f), region)
    gap, energy, _ = gap_terms(lam, tv, slack, div_sq, None, 0, 0, 0.0)
    return torch.stack([gap, energy], 1)


def block_tied_gap(f: torch.Tensor, p: torch.Tensor, lam: float, region: tuple, fixed: torch.Tensor | None = None,
                   untied: torch.Tensor | None = None, spare: torch.Tensor | None = None) -> torch.Tensor:
    """The duality gap over ``region`` at ``u = f + lam div p`` made constant on each connected set of pixels the
    dual ties (:func:`pdeflow.tv.rof`'s candidate ``v``), per image: the sharper certificate near the solution.

    A pixel of ``region`` whose dual (the channels coupled) is inside the unit ball by a margin is tied to its
    forward neighbours in ``region``. The gap, ``1/2 ||v - u||^2 + lam max(0, sum(|g| - <g, p>))``, ``g = grad
    v`` (as :func:`block_gap`, its case ``v = u``), over ``region`` less ``fixed``, float64, bounds ``1/2 ||u -
    u*||^2`` as :func:`block_gap` does, without the total variation of the iterate's noise on flat regions.

    Parameters
    ----------
    f, p, lam
        As :func:`solve_subdomain`.
    region : tuple of slices
        The pixels summed over and tied.
    fixed : Tensor of bool, shape S, optional
        Pixels whose terms are left out (a block's held duals; they tie nothing).
    untied : Tensor of bool, shape S, optional
        Pixels that start no tie (the first slab of a chunk after another: the chunks' candidates then join into
        one of the whole image, whose gap is the sum of theirs).
    spare : Tensor, float64, optional
        Free memory to work in (contiguous, at least ``f``'s size): a solver's own while it iterates a copy.

    Returns
    -------
    Tensor, shape (b,), float64

    Examples
    --------
    >>> import torch
    >>> from pdeflow.tv.subdomain import block_gap, block_tied_gap
    >>> f, p = torch.tensor([[[[0.0, 1.0], [0.0, 1.0]]]]), torch.zeros(1, 1, 2, 2, 2)
    >>> everything = (slice(None), slice(None))
    >>> block_gap(f, p, 0.5, everything)[:, 0].tolist(), block_tied_gap(f, p, 0.5, everything).tolist()
    ([1.0], [0.5])
    """
    blocks, rest, scratch = _pass_blocks(f), None, None
    if spare is not None:
        u = block_primal(f, p, lam, out=spare.view(-1)[:f.numel()].view(f.shape))
        rest = spare.view(-1)[f.numel():]
        # the gradient sums' row block buffers after the tie's arrays, in the same memory
        b, C, *S = f.shape
        most = max(r.stop - r.start for r in blocks) * b * C * math.prod(S[1:])
        if rest.numel() >= most * (len(S) + 1):
            scratch = (rest[:most * len(S)].view(b, C, len(S), -1, *S[1:]), rest[most * len(S):most * (len(S) + 1)]
                       .view(b, -1, *S[1:]))
    else:
        u = block_primal(f, p, lam)
    still = fixed if untied is None else (untied if fixed is None else fixed | untied)
    move = tie_box(u, p, region, still, rest)         # u is now the candidate
    held = None
    if fixed is not None:       # the terms of region less fixed
        held = torch.ones(fixed.shape, dtype=torch.bool)
        held[tuple(region)] = fixed[tuple(region)]
    tv, inner = gradient_sums(u, p, blocks, region, held, scratch)
    return 0.5 * move + lam * (tv - inner).clamp(min=0.0)


#: Elements of the dual field in one block of rows (along the first spatial axis) of the PyTorch iteration: it runs
#: row block by row block, so that its scratch (the ascent, its norm, a move) is that many elements, not
#: arrays of the block's size, and stays in the processor's cache between the operations on it (smaller blocks pay
#: the per-operation overhead more often).
SLAB_ELEMENTS = 1 << 18


#: Elements of the dual field in one block of rows of the single passes, :func:`block_gap` and
#: :func:`block_primal`: their scratch (a row block's gradient and norm, the duals in ``u``'s dtype) stays a small
#: part of a chunk.
PASS_SLAB_ELEMENTS = 1 << 16


def _pass_blocks(f: torch.Tensor) -> list:
    """The row blocks of the single passes over a block of ``f``'s shape (:data:`PASS_SLAB_ELEMENTS`)."""
    return _row_blocks(f.shape[2], f.shape[0] * f.shape[1] * (f.dim() - 2) * max(1, f[0, 0, 0].numel()),
                       PASS_SLAB_ELEMENTS)


def _row_blocks(rows: int, per_row: int, elements: int = SLAB_ELEMENTS) -> list:
    """Slices of ``range(rows)`` of at most ``elements`` // ``per_row`` rows (at least one)."""
    step = max(1, elements // max(1, per_row))
    return [slice(i, min(i + step, rows)) for i in range(0, rows, step)]


#: Elements of a dual field whose compiled iteration costs about what one gap evaluation's fixed (Python) cost is:
#: on a block of ``n`` dual elements the compiled loop evaluates the gap every ``GAP_ELEMENTS // n`` iterations
#: (10 to 200), so that the evaluations stay a small share of a small block's solve.
GAP_ELEMENTS = 1 << 17


def _fused(f: torch.Tensor, y: torch.Tensor) -> bool:
    return (FUSED and f.dim() == 4 and f.device.type == "cpu" and y.device.type == "cpu"
            and y.dtype in (torch.float32, torch.float64) and f.dtype in (torch.float32, torch.float64)
            and y.is_contiguous() and not (torch.is_grad_enabled() and (f.requires_grad or y.requires_grad)))


def solve_subdomain(f: torch.Tensor, p: torch.Tensor, lam: float, free: torch.Tensor, region: tuple, *,
                    tol: float, max_iter: int = 20000, check_every: int | None = None, overwrite: bool = False,
                    atol: torch.Tensor | None = None, dtype: torch.dtype | None = None) -> torch.Tensor:
    """The exact ROF dual subproblem of one block: new duals on the ``free`` pixels, the others held.

    Minimises ``1/2 ||f + lam div p||^2`` over the pixels of ``region`` (the block less the slab before it,
    whose duals only enter the divergence) over the duals of the ``free`` pixels with ``|p| <= 1``, the divergence
    that of :func:`block_divergence`, by fast gradient projection with adaptive restart, until the subproblem's
    relative duality gap (its TV term over the free pixels against its primal energy) is at most ``tol`` for every
    image of the batch (each image with its own momentum), or ``max_iter`` iterations. The iteration is
    :func:`pdeflow.tv.rof`'s FGP step with the held duals kept. It runs in the dtype of ``p`` (the gap's sums in
    float64) and holds the iterate in that dtype and its last move in float32 (arrays of the dual field's size),
    and ``f`` in that dtype. On 2-D blocks of CPU tensors it runs in ``rof``'s compiled loops, one pass over the
    block per iteration, in place (float64 blocks in float32 first, as ``rof``), its gap without an image of ``u``;
    elsewhere, and without the compiled extension, in PyTorch, a row block at a time (:data:`SLAB_ELEMENTS` of
    scratch) with one image of ``u``.

    Parameters
    ----------
    f : Tensor, shape (b, C, *S), float32 or float64
        The data on the block (and on the slab before it, where there is one).
    p : Tensor, shape (b, C, n, *S), float32 or float64
        The current duals: the warm start on ``free``, the held values elsewhere.
    lam : float
        The ROF weight, ``> 0``.
    free : Tensor of bool, shape S
        The pixels whose duals are unknowns.
    region : tuple of slices
        The pixels whose term ``(f + lam div p)^2`` the free duals change.
    tol : float
        The relative duality gap of the subproblem to reach.
    max_iter : int
        Iterations at most.
    check_every : int, optional
        Iterations between evaluations of the gap (default: 10, and more in the compiled loop on small blocks, where
        one evaluation costs many iterations: :data:`GAP_ELEMENTS`).
    overwrite : bool
        Use ``p``'s memory for the iterate (``p`` then holds the result; default: a copy).
    atol : Tensor, shape (b,), float64, optional
        Stop at these absolute duality gaps of the subproblem instead of the relative ``tol`` (in the compiled
        loops also at that of the tied candidate, :func:`block_tied_gap`).
    dtype : torch.dtype, optional
        The dtype it is solved in (default ``p``'s); float64 for a float32 ``p`` runs the float32 phase in ``p``.

    Returns
    -------
    Tensor, shape of ``p``
        The new duals (equal to ``p`` off ``free``), in ``dtype`` (in ``p``'s memory and dtype with ``overwrite``).

    Examples
    --------
    >>> import torch
    >>> from pdeflow import ops
    >>> from pdeflow.tv import rof
    >>> from pdeflow.tv.subdomain import solve_subdomain
    >>> f = torch.rand(1, 1, 12, 12, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    >>> free = torch.ones(12, 12, dtype=torch.bool)      # every dual free: the whole problem
    >>> p = solve_subdomain(f, torch.zeros(1, 1, 2, 12, 12, dtype=torch.float64), 0.1, free,
    ...                     (slice(None), slice(None)), tol=1e-12)
    >>> u = f + 0.1 * ops.div(p)
    >>> bool((u - rof(f, 0.1, tol=1e-12)).abs().max() < 1e-5)
    True
    """
    fixed = ~free
    dtype = p.dtype if dtype is None else dtype
    # the iterate, in p's memory where it may be overwritten
    x = p if overwrite and p.is_contiguous() else p.clone(memory_format=torch.contiguous_format)
    if _fused(f, x):
        x = _fgp_fused(f, x, lam, fixed, region, tol, max_iter, check_every, atol, dtype)
    else:
        x = _fgp_rows(f, x.to(dtype), lam, fixed, region, tol, max_iter, check_every or 10, atol)
    if overwrite and x.data_ptr() != p.data_ptr():
        p.copy_(x)
        return p
    return x


def _stopped(gap, energy, tol, atol) -> bool:
    """Whether every image's subproblem gap is at most ``atol`` (given) or ``tol`` times its energy."""
    if atol is not None:
        return bool((gap <= atol).all())
    return bool((gap <= tol * energy.clamp(min=torch.finfo(torch.float64).tiny)).all())


#: Gap checks between two tries of the tied candidate in a block's solve (:meth:`_FusedLoop.tied_met`).
TIED_CHECKS = 2

#: Gap checks in a row without a new smallest float32 gap after which a float64 block continues in float64: the
#: float32 iterations have reached their round-off floor short of the target.
STALL_CHECKS = 8


def _fgp_fused(f, x, lam, fixed, region, tol, max_iter, check_every, atol, dtype):
    """:func:`solve_subdomain` on a 2-D block in the compiled loops of :func:`pdeflow.tv.rof` (``_fgp_kernel``): the
    same FGP step and gap, with the held duals masked and the region's sums; the iterate updated in place with the
    last move held in float32 (one call takes every row); a float64 block in float32 first, as ``rof`` (half the
    memory traffic). A float32 ``x`` solved in float64 is that phase's iterate (the same numbers)."""
    held = fixed.contiguous() if bool(fixed.any()) else None
    rows, cols = (tuple(r.indices(n)[:2]) for r, n in zip(tuple(region) + (slice(None),) * 2, f.shape[2:]))
    loop = _FusedLoop(f, lam, held, rows, cols, tol, atol, check_every)
    narrow = x if x.dtype != dtype else None     # the float32 duals of a float64 solve
    x = x.to(dtype)
    # a warm start may already meet the gap: in the later steps of a decomposition most blocks change only near the
    # seams of the step before, and many are solved before their first iteration
    gap, energy = loop.gap(x)
    if _stopped(gap, energy, tol, atol):
        return x
    target = tol * energy if atol is None else atol
    # rof's rule: targets below FLOAT32_TOL go to float64 at once (float32 stalls above them)
    if x.dtype != torch.float64 or not bool((target >= FLOAT32_TOL * energy).all()):
        loop.run(x, max_iter)
        return x
    loop.release(torch.float64)        # the float32 phase holds its own copies of f and u instead
    if narrow is None:
        y = x.float()
        # x's memory is the tied candidate's scratch until the float32 phase ends
        loop.spare = x
    else:
        y, x = narrow, None
    # the held duals kept to the bit
    kept = None if held is None else (y if x is None else x)[..., held]
    _, used = loop.run(y, max_iter, stall=STALL_CHECKS)
    loop.spare = None
    loop.release(torch.float32)
    # the float32 iterate, projected in float64 (|p| <= 1, so that the float64 gap certifies it); into x's memory
    # where there is one (a task's memory stays that of the float64 solve)
    x = y.double() if x is None else x.copy_(y)
    del y
    b, C, _, H, W = x.shape
    kernel.project(True, x.data_ptr(), x.data_ptr(), b, C, H, W, True, 0, H)     # in place, row by row
    if kept is not None:
        x[..., held] = kept.to(x.dtype)
    # stopped on the tied candidate's gap (float64 sums of the float32 duals): not checked again by the plain one
    if not loop.tied and not _stopped(*loop.gap(x), tol, atol):
        loop.run(x, max(1, max_iter - used))
    return x


class _FusedLoop:
    """The compiled FGP iteration of one block (:func:`_fgp_fused`), in the dtype of the iterate it is given."""

    def __init__(self, f, lam, held, rows, cols, tol, atol, check_every):
        self.f, self.lam, self.rows, self.cols = f, lam, rows, cols
        self.tol, self.atol, self.check_every = tol, atol, check_every
        self.held = held
        self.mask = held.data_ptr() if held is not None else 0
        self.sums = torch.empty(f.shape[0], 3, dtype=torch.float64)
        self.scratch = {}
        # the tied candidate (block_tied_gap, with atol only, as rof): per image its gap over the solver's at the
        # last try (first tried within TIED_REACH of the target), and the check of that try
        self.tied_ratio = torch.full((f.shape[0],), 1.0 / TIED_REACH, dtype=torch.float64)
        self.tied_check = -TIED_CHECKS
        self.checks = 0
        self.tied = False       # whether the last run stopped on the tied candidate's gap
        self.spare = None       # float64 memory free while the float32 phase runs (the float64 iterate's)

    def _scratch(self, dtype):
        """The data and ``lam`` per image in ``dtype`` (made once per dtype)."""
        if dtype not in self.scratch:
            b = self.f.shape[0]
            self.scratch[dtype] = (self.f.to(dtype).contiguous(), torch.full((b,), self.lam, dtype=dtype))
        return self.scratch[dtype]

    def release(self, dtype):
        """Free the scratch of ``dtype`` (made again when needed)."""
        self.scratch.pop(dtype, None)

    def gap(self, x):
        """``(gap, energy)`` per image of the subproblem at ``x``, its sums in float64, ``u`` in ``x``'s dtype."""
        b, C, H, W = self.f.shape
        fd, lams = self._scratch(x.dtype)
        # u 0: the sums only, no image of u held (the kernel forms grad u from div p and f)
        kernel.gap(x.dtype == torch.float64, x.data_ptr(), fd.data_ptr(), 0, lams.data_ptr(), self.mask, *self.rows,
                   *self.cols, 0, self.sums.data_ptr(), b, C, H, W, True, 0, H)
        gap, energy, _ = gap_terms(self.lam, *self.sums.unbind(1), None, C, 0, 0.0)
        return gap, energy

    def tied_met(self, x, gap) -> bool:
        """Whether the tied candidate's gap (:func:`block_tied_gap`) meets ``atol`` at ``x``, tried where the
        solver's gap is within the last ratio of the two of it, ``TIED_CHECKS`` checks after the last try (a try
        costs about as much as 20 iterations)."""
        self.checks += 1
        if self.atol is None or self.checks - self.tied_check < TIED_CHECKS:
            return False
        if not bool((gap * self.tied_ratio <= self.atol).all()):
            return False
        region = (slice(*self.rows), slice(*self.cols))
        tied = block_tied_gap(self.f, x, self.lam, region, self.held, spare=self.spare)
        self.tied_ratio = tied / gap.clamp(min=torch.finfo(torch.float64).tiny)
        self.tied_check = self.checks
        self.tied = bool((tied <= self.atol).all())
        return self.tied

    def run(self, x, max_iter, *, stall=None):
        """Iterate ``x`` in place, in its dtype, until the gap is met or ``max_iter`` iterations; with ``stall``,
        also stop after that many gap checks in a row without a new smallest gap (the round-off floor).
        ``(met, iterations)``."""
        b, C, H, W = self.f.shape
        double = x.dtype == torch.float64
        fd, lams = self._scratch(x.dtype)
        d = torch.zeros(x.shape, dtype=torch.float32)
        t, beta = torch.ones(b, dtype=x.dtype), torch.zeros(b, dtype=x.dtype)
        up = torch.empty(1, b, dtype=torch.float64)
        every = self.check_every or min(200, max(10, GAP_ELEMENTS // x.numel()))
        best, since = float("inf"), 0
        for it in range(1, max_iter + 1):
            # in place with the move d; gf 0: the loop forms grad f / (8 lam) from fd's rows (no field of it held)
            kernel.step(double, x.data_ptr(), 0, d.data_ptr(), 0, 0, fd.data_ptr(), lams.data_ptr(), self.mask,
                        beta.data_ptr(), up.data_ptr(), b, C, H, W, True, 0, H)
            kernel.momentum(double, up.data_ptr(), 1, b, t.data_ptr(), beta.data_ptr())
            if it % every:
                continue
            gap, energy = self.gap(x)
            if _stopped(gap, energy, self.tol, self.atol) or self.tied_met(x, gap):
                return True, it
            if stall is not None:
                worst = float(gap.max())
                best, since = (worst, 0) if worst < best else (best, since + 1)
                if since >= stall:
                    return False, it
        return False, max_iter


def _fgp_rows(f, y, lam, fixed, region, tol, max_iter, check_every, atol):
    """:func:`solve_subdomain` in PyTorch, any number of spatial axes: the compiled loops' FGP step, row block by row
    block (:data:`SLAB_ELEMENTS`), with the extrapolated point ``y`` and the last move ``d`` held. Its ascent
    ``y + grad(div y) / (4 n) + grad f / (4 n lam)`` is formed as ``y + step grad u``, ``u = f + lam div y``: one
    pass over ``f`` per iteration instead of a float64 difference of it per component (the same in float64, in
    which :mod:`pdeflow.dask` solves its blocks; in float32 ``u``'s rounding adds ``eps |f| / lam`` to the step)."""
    spatial = f.dim() - 2
    step = 1.0 / (4.0 * spatial * lam)      # 1 / (lam ||div||^2), ||div||^2 <= 4 n
    held = bool(fixed.any())
    b, C = f.shape[:2]
    components = [(c, k) for c in range(C) for k in range(spatial)]
    # y = x + beta d, the extrapolated point, and the last move d = x - x_prev, in float32 (half the memory of a
    # float64 field): its rounding moves the point the ascent starts from by beta d 6e-8, which vanishes with d as
    # FGP converges. The held duals need no copy: there the projection keeps y, so d stays zero and y the held value.
    d = torch.zeros(y.shape, dtype=torch.float32)
    u = torch.empty(f.shape, dtype=y.dtype)
    plane = tuple(f.shape[3:])
    blocks = _row_blocks(f.shape[2], b * C * spatial * max(1, fixed[0].numel()))
    most = max(r.stop - r.start for r in blocks)
    ascent = torch.empty((b, C, spatial, most) + plane, dtype=y.dtype)     # a row block's scratch
    norm = torch.empty((b, most) + plane, dtype=y.dtype)
    move = torch.empty((b, most) + plane, dtype=y.dtype)
    per_image = (b,) + (1,) * spatial

    def extrapolate(alpha):
        """``y += alpha d`` (``alpha`` per image)."""
        for rows in blocks:
            m = move[:, :rows.stop - rows.start]
            for c, k in components:
                y[:, c, k, rows].add_(torch.mul(d[:, c, k, rows], alpha.view(per_image), out=m))

    def gap_met():
        """Whether the subproblem's gap at ``y`` is met (called while ``y`` holds the iterate, before it is
        extrapolated; ``u`` and the scratch overwritten)."""
        tv_free, slack, div_sq = block_sums(u, f, y, lam, blocks, region, fixed, (ascent, norm))
        gap, energy, _ = gap_terms(lam, tv_free, slack, div_sq, None, C, 0, 0.0)
        return _stopped(gap, energy, tol, atol)

    if gap_met():
        return y
    t, beta = torch.ones(b, dtype=y.dtype), torch.zeros(b, dtype=y.dtype)
    for it in range(1, max_iter + 1):
        primal_rows(u, f, y, lam, spatial, blocks)
        # x_new = P(y + step grad u), the move d = x_new - x = beta d - (y - x_new) and the restart test
        # <x_new - x, y - x_new> > 0 per image, a row block at a time; y holds x_new after it
        up = torch.zeros(b, dtype=torch.float64)
        for rows in blocks:
            s = rows.stop - rows.start
            a, n, m = ascent[:, :, :, :s], norm[:, :s], move[:, :s]
            for c, k in components:
                torch.add(y[:, c, k, rows], difference_rows(a[:, c, k], u[:, c], k, rows), alpha=step,
                          out=a[:, c, k])
            for i, (c, k) in enumerate(components):
                if i:
                    n.addcmul_(a[:, c, k], a[:, c, k])
                else:
                    torch.mul(a[:, c, k], a[:, c, k], out=n)
            n.sqrt_().clamp_(min=1.0)
            for c, k in components:
                new = a[:, c, k].div_(n)
                yk, dk = y[:, c, k, rows], d[:, c, k, rows]
                if held:
                    torch.where(fixed[rows], yk, new, out=new)
                r = yk.sub_(new)                            # y - x_new
                torch.mul(dk, beta.view(per_image), out=m).sub_(r)
                up += torch.bmm(m.reshape(b, 1, -1), r.reshape(b, -1, 1)).reshape(b)   # <m, r> per image
                dk.copy_(m)
                yk.copy_(new)
        t, beta = momentum(t, up > 0.0)     # restarted where the objective went up, per image
        if it == max_iter or it % check_every == 0 and gap_met():
            break                           # y holds the iterate
        if bool(beta.any()):
            extrapolate(beta)               # y = x_new + beta (x_new - x)
    return y
