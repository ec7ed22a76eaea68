/* The FGP iteration of the ROF dual and its duality gap as fused CPU loops (float32 and float64): the one
   compiled FGP of pdeflow, for pdeflow.tv.rof's whole images and pdeflow.tv.subdomain's blocks alike.

   pdeflow.tv._rof_methods runs the FGP step on the 2-D unit grid as ~20 PyTorch operations, each a pass
   over the arrays; these loops do the same arithmetic, in the same order, in one pass: each row of the
   output reads the rows around it of the fields p (the iterate) and pp (the one before), forms the momentum
   point q = p + beta (p - pp) on the fly, then div, grad, the data term grad f / (8 lam) (from f's rows), the
   projection onto |z| <= 1 and the restart sum <q - z, z - p>, and on request the sums of a gap estimate on every
   fourth row (what a solve's checks far from its target read). A block's held duals (a mask) keep their values.
   The gap loop forms u = f + lam div p and the float64 sums TV(u), sum(|grad u| - <grad u, p>) and ||div p||^2
   in one pass (a block's: its gradient terms off the held duals, ||div p||^2 over its region); the certificate
   loop the sums of the gap of any (u, p) (gap_and_primal's), the projection loop p / max(|p|, 1), the data loop
   grad f / (8 lam) and the l1 norm of grad f (the gap's round-off bound).

   Plain C and the Python C API only (no NumPy): the arrays arrive as addresses of contiguous tensors whose
   shapes and dtypes the Python wrappers (_rof_methods, subdomain) have checked. Layouts: a field (B, C, 2, H, W)
   (a whole image's with zero unused entries: component 0 in the last row, component 1 in the last column; a
   block's last row and column hold the duals of its edges into the next block), an image (B, C, H, W). The
   loops release the GIL and take a range of rows, so that the wrapper can split one call across threads.

   Built at install time by setuptools (setup.py) with -O3 -ffp-contract=off: no fused multiply-add where the
   PyTorch path has none, so that both paths round alike. This file includes itself once per precision (and
   once more for AVX2, chosen at import): the kernels below the module's entry points are written once for
   REAL = float and double. */

#ifndef REAL

#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

typedef Py_ssize_t idx;

/* Independent float64 accumulators of a row sum: lanes the compiler can vectorise without reassociating. */
#define LANES 8

static double lane_sum(const double *acc)
{
    double s = 0.0;
    for (int l = 0; l < LANES; l++)
        s += acc[l];
    return s;
}

#define REAL float
#define SQRT sqrtf
#define K(name) name##_f32
#include "_fgp_kernel.c"
#undef REAL
#undef SQRT
#undef K

#define REAL double
#define SQRT sqrt
#define K(name) name##_f64
#include "_fgp_kernel.c"
#undef REAL
#undef SQRT
#undef K

/* The kernels once more for CPUs with AVX2 (GCC and Clang on x86-64), chosen at import where the CPU has it: the
   same C, so the same operations in the same order (no FMA: AVX2 does not include it, and -ffp-contract=off),
   vectorised twice as wide. The default build stays for any CPU of the platform. */
#if (defined(__GNUC__) || defined(__clang__)) && defined(__x86_64__)
#define WIDE 1
#if defined(__clang__)
#pragma clang attribute push(__attribute__((target("avx2"))), apply_to = function)
#else
#pragma GCC push_options
#pragma GCC target("avx2")
#endif

#define REAL float
#define SQRT sqrtf
#define K(name) name##_f32_avx2
#include "_fgp_kernel.c"
#undef REAL
#undef SQRT
#undef K

#define REAL double
#define SQRT sqrt
#define K(name) name##_f64_avx2
#include "_fgp_kernel.c"
#undef REAL
#undef SQRT
#undef K

#if defined(__clang__)
#pragma clang attribute pop
#else
#pragma GCC pop_options
#endif

static int wide; /* run the AVX2 kernels: set at import where the CPU has AVX2 */
#define PICK(dbl, name, ...)                                                                                        \
    ((dbl) ? (wide ? name##_f64_avx2(__VA_ARGS__) : name##_f64(__VA_ARGS__))                                        \
           : (wide ? name##_f32_avx2(__VA_ARGS__) : name##_f32(__VA_ARGS__)))
#else
#define WIDE 0
#define PICK(dbl, name, ...) ((dbl) ? name##_f64(__VA_ARGS__) : name##_f32(__VA_ARGS__))
#endif

static void *ptr(unsigned long long address) { return (void *)(uintptr_t)address; }

static int check_rows(idx H, idx r0, idx r1)
{
    if (r0 < 0 || r1 > H || r0 > r1) {
        PyErr_SetString(PyExc_ValueError, "row range out of the image");
        return 0;
    }
    return 1;
}

/* step(double, p, pp, move, out, gf, f, lam, fixed, beta, sums, B, C, H, W, joint, r0, r1): rows [r0, r1) of the
   next iterate of every image into out, or (move: the address of the last move, float32; pp and out 0) into p in
   place with the move updated, which needs r0 = 0 and r1 = H, and the duals where fixed is nonzero held (an
   address, 0 for none); the data term read from gf or (gf 0) formed from f and lam; the restart sums over those
   rows into sums (B float64). est (optional, 0 for none): the sums of the step's gap estimate over those rows into
   est (B x 4 float64; see K(step)), NaN where the step does not form them (coupled channels, move). */
static PyObject *py_step(PyObject *self, PyObject *args)
{
    int is_double, joint;
    unsigned long long p, pp, move, out, gf, f, lam, fixed, beta, sums, est = 0;
    idx B, C, H, W, r0, r1;
    if (!PyArg_ParseTuple(args, "pKKKKKKKKKKnnnnpnn|K", &is_double, &p, &pp, &move, &out, &gf, &f, &lam, &fixed,
                          &beta, &sums, &B, &C, &H, &W, &joint, &r0, &r1, &est))
        return NULL;
    if (!check_rows(H, r0, r1))
        return NULL;
    if (move && (r0 != 0 || r1 != H)) {
        PyErr_SetString(PyExc_ValueError, "an update in place (move) takes every row in one call");
        return NULL;
    }
    if (fixed && !move) {
        PyErr_SetString(PyExc_ValueError, "held duals (fixed) need the update in place (move)");
        return NULL;
    }
    int ok;
    Py_BEGIN_ALLOW_THREADS
    ok = PICK(is_double, step, ptr(p), ptr(pp), ptr(move), ptr(out), ptr(gf), ptr(f), ptr(lam), ptr(fixed),
              ptr(beta), ptr(sums), ptr(est), B, C, H, W, joint, r0, r1);
    Py_END_ALLOW_THREADS
    if (!ok)
        return PyErr_NoMemory();
    Py_RETURN_NONE;
}

/* steps(double, p, pp, out, gf, t, beta, sums, est, B, C, H, W, joint, n): K(steps) (gf held, no held duals). */
static PyObject *py_steps(PyObject *self, PyObject *args)
{
    int is_double, joint;
    unsigned long long p, pp, out, gf, t, beta, sums, est;
    idx B, C, H, W, n;
    if (!PyArg_ParseTuple(args, "pKKKKKKKKnnnnpn", &is_double, &p, &pp, &out, &gf, &t, &beta, &sums, &est, &B, &C, &H,
                          &W, &joint, &n))
        return NULL;
    int ok;
    Py_BEGIN_ALLOW_THREADS
    ok = PICK(is_double, steps, ptr(p), ptr(pp), ptr(out), ptr(gf), ptr(t), ptr(beta), ptr(sums), ptr(est), B, C, H,
              W, joint, n);
    Py_END_ALLOW_THREADS
    if (!ok)
        return PyErr_NoMemory();
    Py_RETURN_NONE;
}

/* momentum(double, sums, tasks, B, t, beta): the restart rule and the FGP momentum from the restart sums of
   `tasks` row ranges (tasks x B float64), t and beta (B each) updated in place. */
static PyObject *py_momentum(PyObject *self, PyObject *args)
{
    int is_double;
    unsigned long long sums, t, beta;
    idx tasks, B;
    if (!PyArg_ParseTuple(args, "pKnnKK", &is_double, &sums, &tasks, &B, &t, &beta))
        return NULL;
    PICK(is_double, momentum, ptr(sums), tasks, B, ptr(t), ptr(beta));
    Py_RETURN_NONE;
}

/* gap(double, p, f, gf, lam, fixed, d0, d1, c0, c1, u, sums, B, C, H, W, joint, r0, r1): rows [r0, r1) of u = f + lam
   div p (u 0: not written), and over them the float64 sums (TV(u), sum(|grad u| - <grad u, p>), ||div p||^2) per image into sums
   (B x 3): the gradient terms but at the fixed pixels (an address, 0 for none), ||div p||^2 over rows [d0, d1) and
   columns [c0, c1); gf: FGP's data term grad f / (8 lam) as fgp_data forms it (0: formed from f's rows). */
static PyObject *py_gap(PyObject *self, PyObject *args)
{
    int is_double, joint;
    unsigned long long p, f, gf, lam, fixed, u, sums;
    idx d0, d1, c0, c1, B, C, H, W, r0, r1;
    if (!PyArg_ParseTuple(args, "pKKKKKnnnnKKnnnnpnn", &is_double, &p, &f, &gf, &lam, &fixed, &d0, &d1, &c0, &c1,
                          &u, &sums, &B, &C, &H, &W, &joint, &r0, &r1))
        return NULL;
    if (!check_rows(H, r0, r1))
        return NULL;
    if (d0 < 0 || d1 > H || c0 < 0 || c1 > W || d0 > d1 || c0 > c1) {
        PyErr_SetString(PyExc_ValueError, "region out of the image");
        return NULL;
    }
    int ok;
    Py_BEGIN_ALLOW_THREADS
    ok = PICK(is_double, gap, ptr(p), ptr(f), ptr(gf), ptr(lam), ptr(fixed), d0, d1, c0, c1, ptr(u), ptr(sums), B,
              C, H, W, joint, r0, r1);
    Py_END_ALLOW_THREADS
    if (!ok)
        return PyErr_NoMemory();
    Py_RETURN_NONE;
}

/* certify(double, f, u, p, lam, sums, B, C, H, W, joint, r0, r1): over rows [r0, r1) the float64 sums (TV(u),
   sum(|grad u| - <grad u, p>), ||u - f - lam div p||^2, ||u - f||^2) per image into sums (B x 4). */
static PyObject *py_certify(PyObject *self, PyObject *args)
{
    int is_double, joint;
    unsigned long long f, u, p, lam, sums;
    idx B, C, H, W, r0, r1;
    if (!PyArg_ParseTuple(args, "pKKKKKnnnnpnn", &is_double, &f, &u, &p, &lam, &sums, &B, &C, &H, &W, &joint, &r0,
                          &r1))
        return NULL;
    if (!check_rows(H, r0, r1))
        return NULL;
    int ok;
    Py_BEGIN_ALLOW_THREADS
    ok = PICK(is_double, certify, ptr(f), ptr(u), ptr(p), ptr(lam), ptr(sums), B, C, H, W, joint, r0, r1);
    Py_END_ALLOW_THREADS
    if (!ok)
        return PyErr_NoMemory();
    Py_RETURN_NONE;
}

/* project(double, p, out, B, C, H, W, joint, r0, r1): rows [r0, r1) of p projected onto |p| <= 1 into out. */
static PyObject *py_project(PyObject *self, PyObject *args)
{
    int is_double, joint;
    unsigned long long p, out;
    idx B, C, H, W, r0, r1;
    if (!PyArg_ParseTuple(args, "pKKnnnnpnn", &is_double, &p, &out, &B, &C, &H, &W, &joint, &r0, &r1))
        return NULL;
    if (!check_rows(H, r0, r1))
        return NULL;
    int ok;
    Py_BEGIN_ALLOW_THREADS
    ok = PICK(is_double, project, ptr(p), ptr(out), B, C, H, W, joint, r0, r1);
    Py_END_ALLOW_THREADS
    if (!ok)
        return PyErr_NoMemory();
    Py_RETURN_NONE;
}

/* fgp_data(double, f, lam, gf, af, B, C, H, W, r0, r1): rows [r0, r1) of gf = grad f / (8 lam) (B, C, 2, H, W; 0:
   none) and their float64 sums of |grad f| per image into af (B). */
static PyObject *py_fgp_data(PyObject *self, PyObject *args)
{
    int is_double;
    unsigned long long f, lam, gf, af;
    idx B, C, H, W, r0, r1;
    if (!PyArg_ParseTuple(args, "pKKKKnnnnnn", &is_double, &f, &lam, &gf, &af, &B, &C, &H, &W, &r0, &r1))
        return NULL;
    if (!check_rows(H, r0, r1))
        return NULL;
    Py_BEGIN_ALLOW_THREADS
    PICK(is_double, fgp_data, ptr(f), ptr(lam), ptr(gf), ptr(af), B, C, H, W, r0, r1);
    Py_END_ALLOW_THREADS
    Py_RETURN_NONE;
}

/* step3(double, p, pp, out, f, lam, L, beta, sums, B, C, D, H, W, (wd0, wd1, wd2), (wg0, wg1, wg2), joint, r0, r1):
   slabs [r0, r1) of the next iterate of every volume into out, and their restart sums into sums (B float64); wd
   div's weights 1 / (L h_k), wg grad's 1 / h_k (_fgp_volume.c). */
static PyObject *py_step3(PyObject *self, PyObject *args)
{
    int is_double, joint;
    unsigned long long p, pp, out, f, lam, beta, sums;
    idx B, C, D, H, W, r0, r1;
    double L, wd[3], wg[3];
    if (!PyArg_ParseTuple(args, "pKKKKKdKKnnnnn(ddd)(ddd)pnn", &is_double, &p, &pp, &out, &f, &lam, &L, &beta, &sums,
                          &B, &C, &D, &H, &W, wd, wd + 1, wd + 2, wg, wg + 1, wg + 2, &joint, &r0, &r1))
        return NULL;
    if (!check_rows(D, r0, r1))
        return NULL;
    int ok;
    Py_BEGIN_ALLOW_THREADS
    ok = PICK(is_double, step3, ptr(p), ptr(pp), ptr(out), ptr(f), ptr(lam), L, ptr(beta), ptr(sums), B, C, D, H, W,
              wd, wg, joint, r0, r1);
    Py_END_ALLOW_THREADS
    if (!ok)
        return PyErr_NoMemory();
    Py_RETURN_NONE;
}

/* gap3(double, p, f, lam, L, (wg0, wg1, wg2), u, sums, B, C, D, H, W, joint, r0, r1): slabs [r0, r1) of
   u = f + lam div p (u 0: not written) and over them the float64 gap sums (B x 3) of the volumes. */
static PyObject *py_gap3(PyObject *self, PyObject *args)
{
    int is_double, joint;
    unsigned long long p, f, lam, u, sums;
    idx B, C, D, H, W, r0, r1;
    double L, wg[3];
    if (!PyArg_ParseTuple(args, "pKKKd(ddd)KKnnnnnpnn", &is_double, &p, &f, &lam, &L, wg, wg + 1, wg + 2, &u,
                          &sums, &B, &C, &D, &H, &W, &joint, &r0, &r1))
        return NULL;
    if (!check_rows(D, r0, r1))
        return NULL;
    int ok;
    Py_BEGIN_ALLOW_THREADS
    ok = PICK(is_double, gap3, ptr(p), ptr(f), ptr(lam), L, wg, ptr(u), ptr(sums), B, C, D, H, W, joint, r0,
              r1);
    Py_END_ALLOW_THREADS
    if (!ok)
        return PyErr_NoMemory();
    Py_RETURN_NONE;
}

/* certify3(double, f, u, p, lam, (wg0, wg1, wg2), sums, B, C, D, H, W, joint, r0, r1): over slabs [r0, r1) the
   float64 sums of the gap of any (u, p) on volumes (B x 4, as certify's). */
static PyObject *py_certify3(PyObject *self, PyObject *args)
{
    int is_double, joint;
    unsigned long long f, u, p, lam, sums;
    idx B, C, D, H, W, r0, r1;
    double wg[3];
    if (!PyArg_ParseTuple(args, "pKKKK(ddd)Knnnnnpnn", &is_double, &f, &u, &p, &lam, wg, wg + 1, wg + 2, &sums, &B,
                          &C, &D, &H, &W, &joint, &r0, &r1))
        return NULL;
    if (!check_rows(D, r0, r1))
        return NULL;
    int ok;
    Py_BEGIN_ALLOW_THREADS
    ok = PICK(is_double, certify3, ptr(f), ptr(u), ptr(p), ptr(lam), wg, ptr(sums), B, C, D, H, W, joint, r0, r1);
    Py_END_ALLOW_THREADS
    if (!ok)
        return PyErr_NoMemory();
    Py_RETURN_NONE;
}

/* tie_box(double, p, u, untied, move, B, C, (n0, n1, n2), (lo0, lo1, lo2), (hi0, hi1, hi2), axes, joint, lim,
   scratch, bytes): u (float64, in place) made its means on the box [lo, hi) as tie's, the pixels where untied
   (uint8, or 0) starting no tie; move (B float64): the sums of the squared changes added; scratch (8-aligned, or
   0): memory for its arrays (_tied.c). */
static PyObject *py_tie_box(PyObject *self, PyObject *args)
{
    int is_double, joint;
    unsigned long long p, u, untied, move, scratch;
    idx B, C, n[3], lo[3], hi[3], bytes;
    double lim;
    int ok, axes;
    if (!PyArg_ParseTuple(args, "pKKKKnn(nnn)(nnn)(nnn)ipdKn", &is_double, &p, &u, &untied, &move, &B, &C, n, n + 1,
                          n + 2, lo, lo + 1, lo + 2, hi, hi + 1, hi + 2, &axes, &joint, &lim, &scratch, &bytes))
        return NULL;
    for (int k = 0; k < 3; k++)
        if (lo[k] < 0 || lo[k] > hi[k] || hi[k] > n[k]) {
            PyErr_SetString(PyExc_ValueError, "tie_box: the box is out of the fields");
            return NULL;
        }
    if (axes < 2 || axes > 3 || (axes == 2 && n[0] != 1)) {
        PyErr_SetString(PyExc_ValueError, "tie_box: 2 axes (n0 = 1) or 3");
        return NULL;
    }
    Py_BEGIN_ALLOW_THREADS
    ok = PICK(is_double, tie_box, ptr(p), ptr(u), ptr(move), ptr(untied), B, C, axes, n, lo, hi, joint, lim,
              ptr(scratch), bytes);
    Py_END_ALLOW_THREADS
    if (!ok)
        return PyErr_NoMemory();
    Py_RETURN_NONE;
}

/* wide(flag) -> bool: run the AVX2 kernels if flag and the CPU has AVX2 (the default at import); returns whether
   they ran before (for the tests, which compare both). */
static PyObject *py_wide(PyObject *self, PyObject *args)
{
    int flag;
    if (!PyArg_ParseTuple(args, "p", &flag))
        return NULL;
#if WIDE
    int before = wide;
    __builtin_cpu_init();
    wide = flag && __builtin_cpu_supports("avx2");
    return PyBool_FromLong(before);
#else
    (void)flag;
    Py_RETURN_FALSE;
#endif
}

static PyMethodDef methods[] = {
    {"wide", py_wide, METH_VARARGS, "Run the AVX2 kernels where the CPU has AVX2; returns the previous choice."},
    {"step", py_step, METH_VARARGS, "Rows of one FGP iteration and their restart sums."},
    {"momentum", py_momentum, METH_VARARGS, "The restart rule and momentum from the restart sums."},
    {"steps", py_steps, METH_VARARGS, "Iterations of the FGP step and momentum on one thread."},
    {"gap", py_gap, METH_VARARGS, "Rows of u = f + lam div p and their float64 gap sums."},
    {"certify", py_certify, METH_VARARGS, "Rows of the float64 sums of the duality gap of any (u, p)."},
    {"project", py_project, METH_VARARGS, "Rows of p projected onto the unit ball."},
    {"step3", py_step3, METH_VARARGS, "Slabs of one FGP iteration of volumes and their restart sums."},
    {"certify3", py_certify3, METH_VARARGS, "Slabs of the float64 sums of the duality gap of any (u, p) of volumes."},
    {"gap3", py_gap3, METH_VARARGS, "Slabs of u = f + lam div p of volumes and their float64 gap sums."},
    {"tie_box", py_tie_box, METH_VARARGS, "The tied candidate on a box of the fields, in place, with its move."},
    {"fgp_data", py_fgp_data, METH_VARARGS, "Rows of grad f / (8 lam) and their float64 sums of |grad f|."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_fgp_kernel",
                                    "Fused CPU loops of the FGP iteration and its duality gap.", -1, methods};

PyMODINIT_FUNC PyInit__fgp_kernel(void)
{
#if WIDE
    __builtin_cpu_init();
    wide = __builtin_cpu_supports("avx2");
#endif
    return PyModule_Create(&module);
}

#else /* ------------------------------------------------------------------ the kernels, for one REAL */

/* Row i of the momentum point of one channel: q = p + beta (p - pp), both components, or with the last move held
   instead of pp (m0, m1 not NULL: float32), q = p + beta m (q = p where beta = 0, as the PyTorch path's
   z + 0 (z - p)). */
static void K(q_row)(const REAL *p0, const REAL *p1, const REAL *pp0, const REAL *pp1, const float *m0,
                     const float *m1, REAL beta, REAL *q0, REAL *q1, idx W)
{
    if (beta == 0) {
        memcpy(q0, p0, W * sizeof(REAL));
        memcpy(q1, p1, W * sizeof(REAL));
    } else if (m0) {
        for (idx j = 0; j < W; j++) {
            q0[j] = p0[j] + beta * (REAL)m0[j];
            q1[j] = p1[j] + beta * (REAL)m1[j];
        }
    } else {
        for (idx j = 0; j < W; j++) {
            q0[j] = p0[j] + beta * (p0[j] - pp0[j]);
            q1[j] = p1[j] + beta * (p1[j] - pp1[j]);
        }
    }
}

/* Row i of scale * div q from the rows i (q0, q1) and i - 1 (up: component 0, NULL on the first row), in the
   PyTorch path's order: ((q0 + q1) - q0[i-1]) - q1[j-1]. */
static void K(div_row)(const REAL *q0, const REAL *q1, const REAL *up, REAL scale, REAL *v, idx W)
{
    if (up)
        for (idx j = 0; j < W; j++)
            v[j] = (q0[j] + q1[j]) - up[j];
    else
        for (idx j = 0; j < W; j++)
            v[j] = q0[j] + q1[j];
    for (idx j = 1; j < W; j++)
        v[j] = (v[j] - q1[j - 1]);
    if (scale != 1)
        for (idx j = 0; j < W; j++)
            v[j] *= scale;
}

/* The next iterate's row before the projection: z = q + grad v + gf, v = div q / 8 on rows i (v) and i + 1 (vn,
   NULL on the last row). The gradient is zero on the last row (component 0) and column (component 1), so there
   z = q: zero in a whole image's field (its unused entries), a block's held edge duals into the next block. */
static void K(z_row)(const REAL *restrict q0, const REAL *restrict q1, const REAL *restrict v,
                     const REAL *restrict vn, const REAL *restrict g0, const REAL *restrict g1, REAL *restrict z0,
                     REAL *restrict z1, idx W)
{
    if (vn)
        for (idx j = 0; j < W; j++)
            z0[j] = ((vn[j] - v[j]) + q0[j]) + g0[j];
    else
        memcpy(z0, q0, W * sizeof(REAL));
    for (idx j = 0; j + 1 < W; j++)
        z1[j] = ((v[j + 1] - v[j]) + q1[j]) + g1[j];
    z1[W - 1] = q1[W - 1];
}

/* Row i of FGP's data term gf = grad f / (8 lam) (inv = 1 / (8 lam), rounded to REAL): the differences of f times
   inv in the working precision, as _rof_methods.k_fgp_data forms them, so that the loops may read f instead of
   holding gf (a field: twice the image). A difference of two values of f is exact or off by half an ulp of itself,
   so gf is within about 1.5 ulp of grad f / (8 lam) (no round-off of f's size enters it). xn: f on row i + 1,
   NULL on the last row. */
static void K(gf_row)(const REAL *restrict x, const REAL *restrict xn, double inv, REAL *restrict g0,
                      REAL *restrict g1, idx W)
{
    const REAL r = (REAL)inv;
    if (xn)
        for (idx j = 0; j < W; j++)
            g0[j] = (xn[j] - x[j]) * r;
    else
        memset(g0, 0, W * sizeof(REAL));
    for (idx j = 0; j + 1 < W; j++)
        g1[j] = (x[j + 1] - x[j]) * r;
    g1[W - 1] = 0;
}

/* The projection's factor 1 / sqrt(max(|z|^2, 1)) of one channel's row (s), or the squared norm over the
   channels accumulated (add: s += |z|^2). */
static void K(factor_row)(const REAL *restrict z0, const REAL *restrict z1, REAL *restrict s, idx W, int add,
                          int last)
{
    if (add)
        for (idx j = 0; j < W; j++)
            s[j] = (s[j] + z0[j] * z0[j]) + z1[j] * z1[j];
    else
        for (idx j = 0; j < W; j++)
            s[j] = z0[j] * z0[j] + z1[j] * z1[j];
    if (last)
        for (idx j = 0; j < W; j++) {
            REAL m = s[j] < 1 ? 1 : s[j];
            s[j] = 1 / SQRT(m);
        }
}

/* The projected row (y = z s) and the restart test's term <q - y, y - p> per pixel (t), in the working precision
   as in the PyTorch path; returns nothing, the caller sums t in float64. */
static void K(out_row)(const REAL *restrict z0, const REAL *restrict z1, const REAL *restrict s,
                       const REAL *restrict q0, const REAL *restrict q1, const REAL *restrict x0,
                       const REAL *restrict x1, REAL *restrict y0, REAL *restrict y1, REAL *restrict t, idx W)
{
    for (idx j = 0; j < W; j++) {
        REAL a = z0[j] * s[j], e = z1[j] * s[j];
        y0[j] = a;
        y1[j] = e;
        t[j] = (q0[j] - a) * (a - x0[j]) + (q1[j] - e) * (e - x1[j]);
    }
}

/* One component's row of the next iterate in place, with the last move held (float32): a = z s (q where fixed:
   the held duals keep their values, their move stays 0), the move m = beta m - (q - a) = a - p, the restart term
   <m, q - a> per pixel (t, added to), and p = a. */
static void K(move_row)(const REAL *restrict z, const REAL *restrict s, const REAL *restrict q,
                        const unsigned char *restrict fixed, REAL beta, float *restrict m, REAL *restrict x,
                        REAL *restrict t, int add, idx W)
{
    for (idx j = 0; j < W; j++) {
        REAL a = z[j] * s[j];
        if (fixed && fixed[j])
            a = q[j];
        REAL r = q[j] - a, n = (REAL)m[j] * beta - r;
        t[j] = add ? t[j] + n * r : n * r;
        m[j] = (float)n;
        x[j] = a;
    }
}

/* q_row and div_row (scale 1/8) of one row in one loop, for a row with a row above (up): q1[j - 1] is formed again
   rather than read back, so that the loop vectorises; the same operations in the same order, so the same bits. The
   momentum's direction is p - pp, or with m0, m1 (not NULL: float32) the last move held instead of pp (D0, D1: at
   column j of each component, W1: of component 1 at column j - 1). */
#define QDIV_LOOP(D0, D1, W1)                                                                                          \
    {                                                                                                                  \
        idx j = 0;                                                                                                     \
        REAL a = p0[j] + beta * (D0), e = p1[j] + beta * (D1);                                                         \
        q0[0] = a;                                                                                                     \
        q1[0] = e;                                                                                                     \
        v[0] = ((a + e) - up[0]) * eighth;                                                                             \
    }                                                                                                                  \
    for (idx j = 1; j < W; j++) {                                                                                      \
        REAL a = p0[j] + beta * (D0), e = p1[j] + beta * (D1), w = p1[j - 1] + beta * (W1);                            \
        q0[j] = a;                                                                                                     \
        q1[j] = e;                                                                                                     \
        v[j] = (((a + e) - up[j]) - w) * eighth;                                                                       \
    }
static void K(qdiv_row)(const REAL *restrict p0, const REAL *restrict p1, const REAL *restrict pp0,
                        const REAL *restrict pp1, const float *restrict m0, const float *restrict m1, REAL beta,
                        const REAL *restrict up, REAL *restrict q0, REAL *restrict q1, REAL *restrict v, idx W)
{
    const REAL eighth = (REAL)0.125;
    if (beta == 0) {
        q0[0] = p0[0];
        q1[0] = p1[0];
        v[0] = ((p0[0] + p1[0]) - up[0]) * eighth;
        for (idx j = 1; j < W; j++) {
            q0[j] = p0[j];
            q1[j] = p1[j];
            v[j] = (((p0[j] + p1[j]) - up[j]) - p1[j - 1]) * eighth;
        }
    } else if (m0) {
        QDIV_LOOP((REAL)m0[j], (REAL)m1[j], (REAL)m1[j - 1])
    } else {
        QDIV_LOOP(p0[j] - pp0[j], p1[j] - pp1[j], p1[j - 1] - pp1[j - 1])
    }
}
#undef QDIV_LOOP

/* z_row, factor_row (one channel) and out_row or move_row of one row in one loop: the next iterate's row and the
   restart terms, without the row buffers between them (the same operations in the same order). A pixel from its
   unprojected z0, z1 and gradient term h0, h1 (z = q + h; macros: an inline function kept such loops scalar):
   PROJECT_PX projects it (a, e); ZOUT_PX writes it beside the iterate before (x0, x1 into y0, y1); ZEST_PX does
   that and forms the step estimate's terms (see K(step)): |h| (hn) and the slack |h| - <h, y> (w); ZMOVE_PX in place
   (into x0, x1) with the last move (m0, m1, float32) updated. */
#define PROJECT_PX(Z0, Z1)                                                                                             \
    REAL z0 = (Z0), z1 = (Z1), m = z0 * z0 + z1 * z1;                                                                  \
    m = m < 1 ? 1 : m;                                                                                                 \
    REAL s = 1 / SQRT(m), a = z0 * s, e = z1 * s;
#define ZOUT_BODY(Z0, Z1)                                                                                              \
    PROJECT_PX(Z0, Z1)                                                                                                 \
    y0[j] = a;                                                                                                         \
    y1[j] = e;                                                                                                         \
    t[j] = (q0[j] - a) * (a - x0[j]) + (q1[j] - e) * (e - x1[j]);
#define ZOUT_PX(Z0, Z1, H0, H1)                                                                                        \
    {                                                                                                                  \
        ZOUT_BODY(Z0, Z1)                                                                                              \
    }
#define ZEST_PX(Z0, Z1, H0, H1)                                                                                        \
    {                                                                                                                  \
        ZOUT_BODY(Z0, Z1)                                                                                              \
        REAL h0 = (H0), h1 = (H1), hm = SQRT(h0 * h0 + h1 * h1);                                                       \
        hn[j] = hm;                                                                                                    \
        w[j] = hm - (h0 * a + h1 * e);                                                                                 \
    }
#define ZMOVE_PX(Z0, Z1, H0, H1)                                                                                       \
    {                                                                                                                  \
        PROJECT_PX(Z0, Z1)                                                                                             \
        REAL r0 = q0[j] - a, n0 = (REAL)m0[j] * beta - r0, r1 = q1[j] - e, n1 = (REAL)m1[j] * beta - r1;               \
        t[j] = n0 * r0 + n1 * r1;                                                                                      \
        m0[j] = (float)n0;                                                                                             \
        m1[j] = (float)n1;                                                                                             \
        x0[j] = a;                                                                                                     \
        x1[j] = e;                                                                                                     \
    }
/* The row loop of a pixel macro PX(Z0, Z1, H0, H1): h from the divergence's rows i and i + 1 (vn; NULL on the last
   row: h0 = 0, z0 = q0) and gf, h1 = 0 and z1 = q1 in the last column; z = (d + q) + gf for the difference d of v, in
   the PyTorch path's order. */
#define ROW_LOOP(PX)                                                                                                   \
    {                                                                                                                  \
        idx j = 0;                                                                                                     \
        if (vn)                                                                                                        \
            for (; j + 1 < W; j++)                                                                                     \
                PX(((vn[j] - v[j]) + q0[j]) + g0[j], ((v[j + 1] - v[j]) + q1[j]) + g1[j], (vn[j] - v[j]) + g0[j],      \
                   (v[j + 1] - v[j]) + g1[j])                                                                          \
        else                                                                                                           \
            for (; j + 1 < W; j++)                                                                                     \
                PX(q0[j], ((v[j + 1] - v[j]) + q1[j]) + g1[j], 0, (v[j + 1] - v[j]) + g1[j])                           \
        PX(vn ? ((vn[j] - v[j]) + q0[j]) + g0[j] : q0[j], q1[j], vn ? (vn[j] - v[j]) + g0[j] : 0, 0)                   \
    }
static void K(zest_row)(const REAL *restrict q0, const REAL *restrict q1, const REAL *restrict v,
                        const REAL *restrict vn, const REAL *restrict g0, const REAL *restrict g1,
                        const REAL *restrict x0, const REAL *restrict x1, REAL *restrict y0, REAL *restrict y1,
                        REAL *restrict t, REAL *restrict hn, REAL *restrict w, idx W)
{
    ROW_LOOP(ZEST_PX)
}

/* The row's sum of x (sq: of x^2) in the working precision, in LANES independent lanes (a row's part of an
   estimate; the caller adds it to float64). */
static REAL K(row_sum)(const REAL *restrict x, idx W, int sq)
{
    REAL acc[LANES] = {0};
    idx j = 0;
    if (sq)
        for (; j + LANES <= W; j += LANES)
            for (int l = 0; l < LANES; l++)
                acc[l] += x[j + l] * x[j + l];
    else
        for (; j + LANES <= W; j += LANES)
            for (int l = 0; l < LANES; l++)
                acc[l] += x[j + l];
    for (; j < W; j++)
        acc[0] += sq ? x[j] * x[j] : x[j];
    REAL total = 0;
    for (int l = 0; l < LANES; l++)
        total += acc[l];
    return total;
}
static void K(zout_row)(const REAL *restrict q0, const REAL *restrict q1, const REAL *restrict v,
                        const REAL *restrict vn, const REAL *restrict g0, const REAL *restrict g1,
                        const REAL *restrict x0, const REAL *restrict x1, REAL *restrict y0, REAL *restrict y1,
                        REAL *restrict t, idx W)
{
    ROW_LOOP(ZOUT_PX)
}
static void K(zmove_row)(const REAL *restrict q0, const REAL *restrict q1, const REAL *restrict v,
                         const REAL *restrict vn, const REAL *restrict g0, const REAL *restrict g1,
                         const unsigned char *restrict fixed, REAL beta, float *restrict m0, float *restrict m1,
                         REAL *restrict x0, REAL *restrict x1, REAL *restrict t, idx W)
{
    ROW_LOOP(ZMOVE_PX)
    if (!fixed)
        return;
    /* The held duals keep their values: their move is 0 (it starts so and stays so), so q = p there, and the
       projection's a = q gives the move 0 and the restart term 0. Set afterwards, eight flags at a time (a select
       in the loop above costs it a quarter of its speed), as the select would set them. */
    idx j = 0;
    for (; j < W; j += 8) {
        uint64_t any = 0;
        if (j + 8 <= W)
            memcpy(&any, fixed + j, 8);
        else
            for (idx l = j; l < W; l++)
                any |= fixed[l];
        if (!any)
            continue;
        for (idx l = j; l < j + 8 && l < W; l++)
            if (fixed[l]) {
                x0[l] = q0[l];
                x1[l] = q1[l];
                m0[l] = m1[l] = 0.0f;
                t[l] = 0;
            }
    }
}
#undef PROJECT_PX
#undef ZOUT_BODY
#undef ZOUT_PX
#undef ZEST_PX
#undef ZMOVE_PX
#undef ROW_LOOP

/* acc[l] += x[j] for j = l mod LANES: a float64 sum in independent lanes. */
static void K(lane_add)(double *restrict acc, const REAL *restrict x, idx W)
{
    idx j = 0;
    for (; j + LANES <= W; j += LANES)
        for (int l = 0; l < LANES; l++)
            acc[l] += (double)x[j + l];
    for (; j < W; j++)
        acc[0] += (double)x[j];
}

/* Per-channel row buffers: the momentum point's components on rows i and i + 1, the divergence on both. */
typedef struct {
    REAL *q0[2], *q1[2], *v[2];
} K(rows);

/* Rows [r0, r1) of one FGP iteration of every image: the next iterate into out and the restart sums <q - z, z - p>
   over those rows into sums (B, float64). gf: the data term grad f / (8 lam) (a field), or NULL: formed from the
   data f (B, C, H, W) and lams (lam per image) row by row, which costs a little time and saves the field's memory.
   With move (float32, not NULL) in place of pp, the last move p - p_prev: p and move are updated in place (out
   unused), which one call for every row (r0 = 0, r1 = H) allows, as rows i - 1 to i + 1 of p are read into row
   buffers before row i is written: a block's solve holds a field and a float32 field; there fixed (H x W, or
   NULL) marks the held duals.

   est (not NULL; out, not move; one channel or channels apart): the step's estimate of the duality gap, per image
   the float64 sums of (1) |h| - <h, y>, (2) |h| and (3) v^2 over every EST_STRIDE-th row (i mod EST_STRIDE =
   EST_STRIDE - 1) and (4) the pixels summed, with h = grad u_q / (8 lam) at the momentum point q (u_q = f + lam
   div q, v = div q / 8) and y the new iterate: lam^2 8 (1), scaled to the image, is the slack term of the gap of
   (u_q, y) (the solver's gap is that term at u_y), and lam^2 (32 (3) + 8 (2)) is P(u_q). */
#define EST_STRIDE 4
#define PP(o) (move ? NULL : pp + (o))
#define MV(o) (move ? move + (o) : NULL)
static int K(step)(REAL *p, const REAL *pp, float *move, REAL *out, const REAL *gf, const REAL *f,
                   const REAL *lams, const unsigned char *fixed, const REAL *betas, double *sums, double *est, idx B,
                   idx C, idx H, idx W, int joint, idx r0, idx r1)
{
    const idx N = H * W;
    const int over = joint && C > 1; /* the projection couples the channels */
    if (est && (over || move)) {
        for (idx k = 0; k < 4 * B; k++)
            est[k] = NAN;
        est = NULL;
    }
    /* per channel: 6 rows (q0, q1, v for rows i and i + 1) and the unprojected z0, z1 of row i; then the
       projection's factor, the restart terms and the data term's two components (rows); with est, |h| and the
       slack */
    const size_t rows_est = est ? 2 : 0;
    REAL *buf = malloc(sizeof(REAL) * (size_t)W * (8 * C + 4 + rows_est));
    K(rows) *r = malloc(sizeof(K(rows)) * (size_t)C);
    if (!buf || !r) {
        free(buf);
        free(r);
        return 0;
    }
    REAL *z = buf + 6 * C * W, *s = buf + 8 * C * W, *t = s + W, *g0 = t + W, *g1 = g0 + W;
    REAL *hn = g1 + W, *w = hn + W; /* est's rows */
    for (idx c = 0; c < C; c++)
        for (int a = 0; a < 2; a++) {
            r[c].q0[a] = buf + (6 * c + 3 * a) * W;
            r[c].q1[a] = r[c].q0[a] + W;
            r[c].v[a] = r[c].q1[a] + W;
        }
    for (idx b = 0; b < B; b++) {
        const REAL beta = betas[b];
        const double inv = gf ? 0.0 : 1.0 / (8.0 * (double)lams[b]);
        double acc[LANES] = {0}, acc_est[4] = {0};
        int cur = 0;
        sums[b] = 0.0;
        if (est)
            for (int k = 0; k < 4; k++)
                est[4 * b + k] = 0.0;
        if (r0 >= r1)
            continue;
        /* prime rows r0 (and r0 - 1 for the divergence) */
        for (idx c = 0; c < C; c++) {
            const idx o0 = (b * C + c) * 2 * N, o1 = o0 + N;
            REAL *up = NULL;
            if (r0 > 0) {
                idx k = (r0 - 1) * W;
                K(q_row)(p + o0 + k, p + o1 + k, PP(o0 + k), PP(o1 + k), MV(o0 + k), MV(o1 + k), beta, r[c].q0[1],
                         r[c].q1[1], W);
                up = r[c].q0[1];
            }
            idx k = r0 * W;
            K(q_row)(p + o0 + k, p + o1 + k, PP(o0 + k), PP(o1 + k), MV(o0 + k), MV(o1 + k), beta, r[c].q0[0],
                     r[c].q1[0], W);
            K(div_row)(r[c].q0[0], r[c].q1[0], up, (REAL)0.125, r[c].v[0], W);
        }
        for (idx i = r0; i < r1; i++) {
            const int nxt = 1 - cur;
            const idx k = i * W;
            if (!over) { /* one channel at a time: two loops a row */
                for (idx c = 0; c < C; c++) {
                    const idx o0 = (b * C + c) * 2 * N, o1 = o0 + N;
                    const REAL *vn = NULL, *gr0 = g0, *gr1 = g1;
                    if (i + 1 < H) {
                        K(qdiv_row)(p + o0 + k + W, p + o1 + k + W, PP(o0 + k + W), PP(o1 + k + W), MV(o0 + k + W),
                                    MV(o1 + k + W), beta, r[c].q0[cur], r[c].q0[nxt], r[c].q1[nxt], r[c].v[nxt], W);
                        vn = r[c].v[nxt];
                    }
                    if (gf) {
                        gr0 = gf + o0 + k;
                        gr1 = gf + o1 + k;
                    } else {
                        const REAL *x = f + (b * C + c) * N + k;
                        K(gf_row)(x, i + 1 < H ? x + W : NULL, inv, g0, g1, W);
                    }
                    if (move) {
                        K(zmove_row)(r[c].q0[cur], r[c].q1[cur], r[c].v[cur], vn, gr0, gr1, fixed ? fixed + k : NULL,
                                     beta, move + o0 + k, move + o1 + k, p + o0 + k, p + o1 + k, t, W);
                    } else if (est && i % EST_STRIDE == EST_STRIDE - 1) {
                        K(zest_row)(r[c].q0[cur], r[c].q1[cur], r[c].v[cur], vn, gr0, gr1, p + o0 + k, p + o1 + k,
                                    out + o0 + k, out + o1 + k, t, hn, w, W);
                        acc_est[0] += (double)K(row_sum)(w, W, 0);
                        acc_est[1] += (double)K(row_sum)(hn, W, 0);
                        acc_est[2] += (double)K(row_sum)(r[c].v[cur], W, 1);
                        acc_est[3] += (double)W;
                    } else {
                        K(zout_row)(r[c].q0[cur], r[c].q1[cur], r[c].v[cur], vn, gr0, gr1, p + o0 + k, p + o1 + k,
                                    out + o0 + k, out + o1 + k, t, W);
                    }
                    K(lane_add)(acc, t, W);
                }
                cur = nxt;
                continue;
            }
            for (idx c = 0; c < C; c++) {
                const idx o0 = (b * C + c) * 2 * N, o1 = o0 + N;
                REAL *z0 = z + 2 * c * W, *z1 = z0 + W;
                const REAL *vn = NULL;
                if (i + 1 < H) {
                    K(q_row)(p + o0 + k + W, p + o1 + k + W, PP(o0 + k + W), PP(o1 + k + W), MV(o0 + k + W),
                             MV(o1 + k + W), beta, r[c].q0[nxt], r[c].q1[nxt], W);
                    K(div_row)(r[c].q0[nxt], r[c].q1[nxt], r[c].q0[cur], (REAL)0.125, r[c].v[nxt], W);
                    vn = r[c].v[nxt];
                }
                if (gf) {
                    K(z_row)(r[c].q0[cur], r[c].q1[cur], r[c].v[cur], vn, gf + o0 + k, gf + o1 + k, z0, z1, W);
                } else {
                    const REAL *x = f + (b * C + c) * N + k;
                    K(gf_row)(x, i + 1 < H ? x + W : NULL, inv, g0, g1, W);
                    K(z_row)(r[c].q0[cur], r[c].q1[cur], r[c].v[cur], vn, g0, g1, z0, z1, W);
                }
                if (over)
                    K(factor_row)(z0, z1, s, W, c > 0, c == C - 1);
            }
            for (idx c = 0; c < C; c++) {
                const idx o0 = (b * C + c) * 2 * N, o1 = o0 + N;
                const REAL *z0 = z + 2 * c * W, *z1 = z0 + W;
                if (!over)
                    K(factor_row)(z0, z1, s, W, 0, 1);
                if (move) {
                    const unsigned char *fr = fixed ? fixed + k : NULL;
                    K(move_row)(z0, s, r[c].q0[cur], fr, beta, move + o0 + k, p + o0 + k, t, 0, W);
                    K(move_row)(z1, s, r[c].q1[cur], fr, beta, move + o1 + k, p + o1 + k, t, 1, W);
                } else {
                    K(out_row)(z0, z1, s, r[c].q0[cur], r[c].q1[cur], p + o0 + k, p + o1 + k, out + o0 + k,
                               out + o1 + k, t, W);
                }
                K(lane_add)(acc, t, W);
            }
            cur = nxt;
        }
        sums[b] = lane_sum(acc);
        if (est)
            for (int k = 0; k < 4; k++)
                est[4 * b + k] = acc_est[k];
    }
    free(buf);
    free(r);
    return 1;
}
#undef PP
#undef MV

static void K(momentum)(const double *sums, idx tasks, idx B, REAL *ts, REAL *betas)
{
    for (idx b = 0; b < B; b++) {
        double up = 0.0;
        for (idx k = 0; k < tasks; k++)
            up += sums[k * B + b];
        const REAL t = ts[b];
        if (up > 0) { /* the momentum points uphill: restart (O'Donoghue and Candes 2015) */
            ts[b] = 1;
            betas[b] = 0;
        } else {
            const REAL t_new = (REAL)0.5 * ((REAL)1 + SQRT((REAL)1 + (REAL)4 * t * t));
            ts[b] = t_new;
            betas[b] = (t - (REAL)1) / t_new;
        }
    }
}

/* n iterations of step and momentum on every row, the fields rotating (p, pp, out) -> (out, p, pp), est on the last. */
static int K(steps)(REAL *p, REAL *pp, REAL *out, const REAL *gf, REAL *ts, REAL *betas, double *sums, double *est,
                    idx B, idx C, idx H, idx W, int joint, idx n)
{
    for (idx k = 0; k < n; k++) {
        if (!K(step)(p, pp, NULL, out, gf, NULL, NULL, NULL, betas, sums, k == n - 1 ? est : NULL, B, C, H, W, joint,
                     0, H))
            return 0;
        K(momentum)(sums, 1, B, ts, betas);
        REAL *next = pp;
        pp = p;
        p = out;
        out = next;
    }
    return 1;
}

/* The float64 lanes of ||d||^2 over the columns [c0, c1) of a row. */
static void K(square_lanes)(double *restrict dsq, const REAL *restrict d, idx c0, idx c1)
{
    idx j = c0;
    for (; j + LANES <= c1; j += LANES)
        for (int l = 0; l < LANES; l++)
            dsq[l] += (double)d[j + l] * (double)d[j + l];
    for (; j < c1; j++)
        dsq[0] += (double)d[j] * (double)d[j];
}

/* The float64 lanes of sum n (tv) and sum al (slack) of a row. */
static void K(slack_lanes)(const REAL *restrict n, const REAL *restrict al, double *restrict tv,
                           double *restrict slack, idx W)
{
    idx j = 0;
    for (; j + LANES <= W; j += LANES)
        for (int l = 0; l < LANES; l++) {
            tv[l] += (double)n[j + l];
            slack[l] += (double)al[j + l];
        }
    for (; j < W; j++) {
        tv[0] += (double)n[j];
        slack[0] += (double)al[j];
    }
}

/* Row i of the gap's arrays: u = f + lam d (d = div p; u NULL: not written), grad u = lam (grad d + 8 gf) (dn: d on row i + 1, NULL on
   the last row), zero where fixed (a block's held duals, whose terms its gap leaves out), and the float64 lanes of
   ||d||^2 over the columns [c0, c1). */
static void K(gap_row)(const REAL *restrict f, const REAL *restrict d, const REAL *restrict dn,
                       const REAL *restrict g0, const REAL *restrict g1, const unsigned char *restrict fixed, REAL lam,
                       REAL *restrict u, REAL *restrict a0, REAL *restrict a1, double *restrict dsq, idx c0, idx c1,
                       idx W)
{
    if (u)
        for (idx j = 0; j < W; j++)
            u[j] = f[j] + lam * d[j];
    if (dn)
        for (idx j = 0; j < W; j++)
            a0[j] = ((dn[j] - d[j]) + 8 * g0[j]) * lam;
    else
        memset(a0, 0, W * sizeof(REAL));
    for (idx j = 0; j + 1 < W; j++)
        a1[j] = ((d[j + 1] - d[j]) + 8 * g1[j]) * lam;
    a1[W - 1] = 0;
    if (fixed)
        for (idx j = 0; j < W; j++)
            if (fixed[j])
                a0[j] = a1[j] = 0;
    K(square_lanes)(dsq, d, c0, c1);
}

/* gap_row, norm_row and slack_row's first loop of one channel's row in one loop (a channel on its own, no held
   duals: n gets |grad u|, al |grad u| - <grad u, p>; g0, g1: the row's data term), then the float64 lanes as
   gap_row and slack_row add them: the same operations in the same order (the zero components too, as 0 * 0 and
   0 * p can be -0 or NaN alike). */
static void K(gap_fused_row)(const REAL *restrict f, const REAL *restrict g0, const REAL *restrict g1,
                             const REAL *restrict d, const REAL *restrict dn, const REAL *restrict x0,
                             const REAL *restrict x1, REAL lam, REAL *restrict u, REAL *restrict n, REAL *restrict al,
                             double *restrict tv, double *restrict slack, double *restrict dsq, idx c0, idx c1, idx W)
{
    if (u)
        for (idx j = 0; j < W; j++)
            u[j] = f[j] + lam * d[j];
    idx j = 0;
    if (dn)
        for (; j + 1 < W; j++) {
            REAL a0 = ((dn[j] - d[j]) + 8 * g0[j]) * lam, a1 = ((d[j + 1] - d[j]) + 8 * g1[j]) * lam;
            REAL m = SQRT(a0 * a0 + a1 * a1);
            n[j] = m;
            al[j] = m - (a0 * x0[j] + a1 * x1[j]);
        }
    else
        for (; j + 1 < W; j++) {
            REAL a1 = ((d[j + 1] - d[j]) + 8 * g1[j]) * lam;
            REAL m = SQRT((REAL)0 * (REAL)0 + a1 * a1);
            n[j] = m;
            al[j] = m - ((REAL)0 * x0[j] + a1 * x1[j]);
        }
    { /* the last column: a1 = 0 */
        REAL a0 = dn ? ((dn[j] - d[j]) + 8 * g0[j]) * lam : 0;
        REAL m = SQRT(a0 * a0 + (REAL)0 * (REAL)0);
        n[j] = m;
        al[j] = m - (a0 * x0[j] + (REAL)0 * x1[j]);
    }
    K(square_lanes)(dsq, d, c0, c1);
    K(slack_lanes)(n, al, tv, slack, W);
}

/* |a|^2 (n) and <a, p> (al) of one channel's row, or added to them (add: the coupled channels). */
static void K(norm_row)(const REAL *restrict a0, const REAL *restrict a1, const REAL *restrict x0,
                        const REAL *restrict x1, REAL *restrict n, REAL *restrict al, idx W, int add)
{
    if (add)
        for (idx j = 0; j < W; j++) {
            n[j] = (n[j] + a0[j] * a0[j]) + a1[j] * a1[j];
            al[j] = (al[j] + a0[j] * x0[j]) + a1[j] * x1[j];
        }
    else
        for (idx j = 0; j < W; j++) {
            n[j] = a0[j] * a0[j] + a1[j] * a1[j];
            al[j] = a0[j] * x0[j] + a1[j] * x1[j];
        }
}

/* The float64 lanes of sum |a| (tv) and sum (|a| - <a, p>) (slack) of a row; n holds |a|^2, al <a, p>. */
static void K(slack_row)(REAL *restrict n, REAL *restrict al, double *restrict tv, double *restrict slack, idx W)
{
    for (idx j = 0; j < W; j++) {
        n[j] = SQRT(n[j]);
        al[j] = n[j] - al[j];
    }
    K(slack_lanes)(n, al, tv, slack, W);
}

/* Rows [r0, r1) of u = f + lam div p and over them the float64 sums (TV(u), sum(|grad u| - <grad u, p>), ||div p||^2)
   per image into sums (B x 3): the gradient terms over every pixel but the fixed ones (NULL: none), ||div p||^2
   over the region's rows [d0, d1) and columns [c0, c1). u NULL: the sums only (the gradient terms are formed from
   div p and f, not from u, so a caller that needs only the gap holds no image of u). */
static int K(gap)(const REAL *p, const REAL *f, const REAL *gf, const REAL *lams, const unsigned char *fixed, idx d0,
                  idx d1, idx c0, idx c1, REAL *u, double *sums, idx B, idx C, idx H, idx W, int joint, idx r0,
                  idx r1)
{
    const idx N = H * W;
    const int over = joint && C > 1; /* |grad u| couples the channels */
    /* per channel: div p on rows i and i + 1, the components of grad u on row i; then |grad u|^2, <grad u, p>, and
       the data term's two components */
    REAL *buf = malloc(sizeof(REAL) * (size_t)W * (4 * C + 4));
    if (!buf)
        return 0;
    REAL *n = buf + 4 * C * W, *al = n + W, *g0 = al + W, *g1 = g0 + W;
    for (idx b = 0; b < B; b++) {
        const REAL lam = lams[b];
        const double inv = 1.0 / (8.0 * (double)lams[b]);
        double tv[LANES] = {0}, slack[LANES] = {0}, dsq[LANES] = {0};
        int cur = 0;
        sums[3 * b] = sums[3 * b + 1] = sums[3 * b + 2] = 0.0;
        if (r0 >= r1)
            continue;
        for (idx c = 0; c < C; c++) {
            const idx o0 = (b * C + c) * 2 * N, o1 = o0 + N, k = r0 * W;
            K(div_row)(p + o0 + k, p + o1 + k, r0 > 0 ? p + o0 + k - W : NULL, 1, buf + 4 * c * W, W);
        }
        for (idx i = r0; i < r1; i++) {
            const int nxt = 1 - cur;
            const idx k = i * W;
            for (idx c = 0; c < C; c++) {
                const idx o0 = (b * C + c) * 2 * N, o1 = o0 + N, oi = (b * C + c) * N;
                REAL *d = buf + (4 * c + cur) * W, *dn = NULL, *a0 = buf + (4 * c + 2) * W, *a1 = a0 + W;
                if (i + 1 < H) {
                    dn = buf + (4 * c + nxt) * W;
                    K(div_row)(p + o0 + k + W, p + o1 + k + W, p + o0 + k, 1, dn, W);
                }
                const int in = i >= d0 && i < d1;
                const REAL *gr0 = g0, *gr1 = g1;
                if (gf) { /* the data term held (rof's state), as gf_row forms it */
                    gr0 = gf + o0 + k;
                    gr1 = gf + o1 + k;
                } else {
                    K(gf_row)(f + oi + k, i + 1 < H ? f + oi + k + W : NULL, inv, g0, g1, W);
                }
                if (!over && !fixed) {
                    K(gap_fused_row)(f + oi + k, gr0, gr1, d, dn, p + o0 + k, p + o1 + k, lam,
                                     u ? u + oi + k : NULL, n, al, tv, slack, dsq, in ? c0 : 0, in ? c1 : 0, W);
                    continue;
                }
                K(gap_row)(f + oi + k, d, dn, gr0, gr1, fixed ? fixed + k : NULL, lam, u ? u + oi + k : NULL, a0,
                           a1, dsq, in ? c0 : 0, in ? c1 : 0, W);
                K(norm_row)(a0, a1, p + o0 + k, p + o1 + k, n, al, W, over && c > 0);
                if (!over || c == C - 1)
                    K(slack_row)(n, al, tv, slack, W);
            }
            cur = nxt;
        }
        sums[3 * b] = lane_sum(tv);
        sums[3 * b + 1] = lane_sum(slack);
        sums[3 * b + 2] = lane_sum(dsq);
    }
    free(buf);
    return 1;
}

/* ---- the certificate of pdeflow.tv._rof_methods.gap_and_primal (any primal candidate u, not only f + lam div p),
   its projection onto |p| <= 1, and FGP's data gf = grad f / (8 lam): the PyTorch expressions they replace, in the
   same order of operations, one pass each. */

/* Row i of one channel of the certificate: grad u (a0, a1; zero in the last row, column), |grad u|^2 and
   <grad u, p> into n, al (or added to them: the coupled channels, channel by channel as PyTorch's sum over them),
   div p as pdeflow.ops.div forms it (((p0 - p0[i-1]) + p1) - p1[j-1], reading neither p0's last row nor p1's last
   column), and the float64 lanes of ||(u - f) - lam div p||^2 and ||u - f||^2. un: u on row i + 1 (NULL on the
   last row), up: p0 on row i - 1 (NULL on the first). */
static void K(cert_row)(const REAL *restrict u, const REAL *restrict un, const REAL *restrict f,
                        const REAL *restrict p0, const REAL *restrict up, const REAL *restrict p1, REAL lam,
                        REAL *restrict a0, REAL *restrict a1, REAL *restrict d, REAL *restrict n,
                        REAL *restrict al, int add, double *restrict resid, double *restrict fid, idx W)
{
    if (un)
        for (idx j = 0; j < W; j++)
            a0[j] = un[j] - u[j];
    else
        memset(a0, 0, W * sizeof(REAL));
    for (idx j = 0; j + 1 < W; j++)
        a1[j] = u[j + 1] - u[j];
    a1[W - 1] = 0;
    if (add)
        for (idx j = 0; j < W; j++) {
            n[j] = n[j] + (a0[j] * a0[j] + a1[j] * a1[j]);
            al[j] = al[j] + (a0[j] * p0[j] + a1[j] * p1[j]);
        }
    else
        for (idx j = 0; j < W; j++) {
            n[j] = a0[j] * a0[j] + a1[j] * a1[j];
            al[j] = a0[j] * p0[j] + a1[j] * p1[j];
        }
    if (un)
        memcpy(d, p0, W * sizeof(REAL));
    else
        memset(d, 0, W * sizeof(REAL));
    if (up)
        for (idx j = 0; j < W; j++)
            d[j] = d[j] - up[j];
    for (idx j = 0; j + 1 < W; j++)
        d[j] = d[j] + p1[j];
    for (idx j = 1; j < W; j++)
        d[j] = d[j] - p1[j - 1];
    for (idx j = 0; j < W; j++) {
        REAL e = u[j] - f[j];
        d[j] = e - lam * d[j];
        a0[j] = e * e;
        d[j] = d[j] * d[j];
    }
    K(lane_add)(resid, d, W);
    K(lane_add)(fid, a0, W);
}

/* sums (B x 4, float64): TV(u), sum(|grad u| - <grad u, p>), ||u - f - lam div p||^2, ||u - f||^2 over rows
   [r0, r1). */
static int K(certify)(const REAL *f, const REAL *u, const REAL *p, const REAL *lams, double *sums, idx B, idx C,
                      idx H, idx W, int joint, idx r0, idx r1)
{
    const idx N = H * W;
    const int over = joint && C > 1;
    REAL *buf = malloc(sizeof(REAL) * (size_t)W * 5);
    if (!buf)
        return 0;
    REAL *a0 = buf, *a1 = buf + W, *d = buf + 2 * W, *n = buf + 3 * W, *al = buf + 4 * W;
    for (idx b = 0; b < B; b++) {
        const REAL lam = lams[b];
        double tv[LANES] = {0}, slack[LANES] = {0}, resid[LANES] = {0}, fid[LANES] = {0};
        for (idx i = r0; i < r1; i++) {
            const idx k = i * W;
            for (idx c = 0; c < C; c++) {
                const idx oi = (b * C + c) * N, o0 = (b * C + c) * 2 * N, o1 = o0 + N;
                K(cert_row)(u + oi + k, i + 1 < H ? u + oi + k + W : NULL, f + oi + k, p + o0 + k,
                            i > 0 ? p + o0 + k - W : NULL, p + o1 + k, lam, a0, a1, d, n, al, over && c > 0,
                            resid, fid, W);
                if (!over || c == C - 1)
                    K(slack_row)(n, al, tv, slack, W);
            }
        }
        sums[4 * b] = lane_sum(tv);
        sums[4 * b + 1] = lane_sum(slack);
        sums[4 * b + 2] = lane_sum(resid);
        sums[4 * b + 3] = lane_sum(fid);
    }
    free(buf);
    return 1;
}

/* Rows [r0, r1) of p projected onto |p| <= 1 pointwise into out: p / max(sqrt(|p|^2), 1), |p|^2 = p0^2 + p1^2 per
   channel, summed over the channels in order where they are coupled (joint), as _rof_methods.project. */
static int K(project)(const REAL *p, REAL *out, idx B, idx C, idx H, idx W, int joint, idx r0, idx r1)
{
    const idx N = H * W;
    const int over = joint && C > 1;
    REAL *s = malloc(sizeof(REAL) * (size_t)W);
    if (!s)
        return 0;
    for (idx b = 0; b < B; b++)
        for (idx i = r0; i < r1; i++) {
            const idx k = i * W;
            for (idx c = 0; c < C; c++) {
                const REAL *p0 = p + (b * C + c) * 2 * N + k, *p1 = p0 + N;
                if (over && c > 0)
                    for (idx j = 0; j < W; j++)
                        s[j] = s[j] + (p0[j] * p0[j] + p1[j] * p1[j]);
                else
                    for (idx j = 0; j < W; j++)
                        s[j] = p0[j] * p0[j] + p1[j] * p1[j];
                if (over && c < C - 1)
                    continue;
                for (idx j = 0; j < W; j++) {
                    REAL m = SQRT(s[j]);
                    s[j] = m < 1 ? 1 : m;
                }
                for (idx c2 = over ? 0 : c; c2 <= c; c2++) {
                    const idx o0 = (b * C + c2) * 2 * N + k, o1 = o0 + N;
                    for (idx j = 0; j < W; j++) {
                        out[o0 + j] = p[o0 + j] / s[j];
                        out[o1 + j] = p[o1 + j] / s[j];
                    }
                }
            }
        }
    free(s);
    return 1;
}

/* Rows [r0, r1) of FGP's gf = grad f / (8 lam) (B, C, 2, H, W; NULL: not written), formed as gf_row forms it,
   and over them the float64 lanes of ||grad f||_1 per image into af (B): the round-off bound's data term
   (pdeflow.tv._fgp.gap_terms). */
static void K(fgp_data)(const REAL *f, const REAL *lams, REAL *gf, double *af, idx B, idx C, idx H, idx W, idx r0,
                        idx r1)
{
    const idx N = H * W;
    for (idx b = 0; b < B; b++) {
        const double inv = 1.0 / (8.0 * (double)lams[b]);
        double acc[LANES] = {0};
        for (idx c = 0; c < C; c++)
            for (idx i = r0; i < r1; i++) {
                const REAL *x = f + (b * C + c) * N + i * W;
                if (gf) {
                    REAL *g0 = gf + (b * C + c) * 2 * N + i * W;
                    K(gf_row)(x, i + 1 < H ? x + W : NULL, inv, g0, g0 + N, W);
                }
                for (idx j = 0; j < W; j++) {
                    double d0 = i + 1 < H ? (double)x[j + W] - (double)x[j] : 0.0;
                    double d1 = j + 1 < W ? (double)x[j + 1] - (double)x[j] : 0.0;
                    acc[j % LANES] += fabs(d0) + fabs(d1);
                }
            }
        af[b] = lane_sum(acc);
    }
}

#include "_fgp_volume.c"
#include "_tied.c"

#endif
