/* pdeflow.tv._tied's candidate by union-find: fields (B, C, A, n0, n1, n2), A = 2 axes (n0 = 1) or 3. Included by
   _fgp_kernel.c once per REAL. */

#ifndef ALONE
#define ALONE UINT32_MAX /* the label of a pixel tied to none */
#endif

/* The root of x's tree, halving the path on the way. */
static uint32_t K(root)(uint32_t *parent, uint32_t x)
{
    while (parent[x] != x) {
        parent[x] = parent[parent[x]];
        x = parent[x];
    }
    return x;
}

/* The tie of the box [lo, hi) of fields (B, C, A, n0, n1, n2): u (float64) made, in place on the box, its means
   on the components of the box's pixels whose squared dual norm (float64, the Python path's sum; joint: over the
   channels, each keeping its means) is below lim and that are not untied (uint8, the pixels' layout, or NULL),
   each tied to its forward neighbours in the box; move (or NULL): per image, the sum over the box of the squared
   changes added. The smaller root becomes the root, so one raster pass resolves every root. Its arrays go into
   scratch (8-aligned, its bytes given) where they fit, else are allocated. 0: out of memory (or 2^32 pixels). */
static int K(tie_box)(const REAL *p, double *u, double *move,
                      const unsigned char *untied, idx B, idx C, int A, const idx *n, const idx *lo, const idx *hi,
                      int joint, double lim, void *scratch, idx scratch_bytes)
{
    idx m[3] = {hi[0] - lo[0], hi[1] - lo[1], hi[2] - lo[2]};
    idx S = m[0] * m[1] * m[2], N = n[0] * n[1] * n[2], stride[3] = {m[1] * m[2], m[2], 1};
    idx origin = (lo[0] * n[1] + lo[1]) * n[2] + lo[2], skip1 = n[2] - m[2], skip0 = (n[1] - m[1]) * n[2];
    if (S >= (idx)UINT32_MAX)
        return 0;
    if (S == 0)
        return 1;
    size_t held = ((size_t)S * sizeof(uint32_t) + 7) & ~(size_t)7, spare = scratch ? (size_t)scratch_bytes : 0;
    uint32_t *parent = held <= spare ? scratch : malloc((size_t)S * sizeof(uint32_t)), *count = NULL;
    double *sums = NULL;
    if (!parent)
        return 0;
#define RELEASE(x) ((void *)(x) >= scratch && (char *)(x) < (char *)scratch + scratch_bytes ? (void)0 : free(x))
    char *rest = (char *)scratch + (parent == scratch ? held : 0);
    spare -= parent == scratch ? held : 0;
    uint8_t *joined = malloc((size_t)S / 8 + 1); /* a bit a pixel: in a component of two or more */
    if (!joined) {
        RELEASE(parent);
        return 0;
    }
/* i: the pixel's index in the box; at: in the fields */
#define BOX_LOOP(...)                                                                                               \
    for (idx i0 = 0, i = 0, at = origin; i0 < m[0]; i0++, at += skip0)                                              \
        for (idx i1 = 0; i1 < m[1]; i1++, at += skip1)                                                              \
            for (idx i2 = 0; i2 < m[2]; i2++, i++, at++) {                                                          \
                __VA_ARGS__                                                                                         \
            }
    idx G = joint ? 1 : C, per = joint ? C : 1;
    for (idx b = 0; b < B; b++)
        for (idx g = 0; g < G; g++) {
            const REAL *pg = p + (b * C + g * per) * A * N;
            for (idx i = 0; i < S; i++)
                parent[i] = (uint32_t)i;
            memset(joined, 0, (size_t)S / 8 + 1);
            BOX_LOOP({
                if (untied && untied[at])
                    continue;
                double sq = 0.0;
                for (idx c = 0; c < per; c++) {
                    double t = 0.0;
                    for (int k = 0; k < A; k++)
                        t += (double)pg[(c * A + k) * N + at] * (double)pg[(c * A + k) * N + at];
                    sq += t;
                }
                if (!(sq < lim))
                    continue;
                idx pos[3] = {i0, i1, i2};
                for (int k = 3 - A; k < 3; k++)
                    if (pos[k] + 1 < m[k]) {
                        uint32_t x = K(root)(parent, (uint32_t)i);
                        uint32_t y = K(root)(parent, (uint32_t)(i + stride[k]));
                        parent[x < y ? y : x] = x < y ? x : y;
                        joined[i >> 3] |= (uint8_t)(1u << (i & 7));
                        joined[(i + stride[k]) >> 3] |= (uint8_t)(1u << ((i + stride[k]) & 7));
                    }
            })
            /* each pixel of a component of two or more to its number (roots numbered in raster order, a root
               before its pixels), the others ALONE: the sums and counts take those components' values only */
            uint32_t R = 0;
            for (idx i = 0; i < S; i++)
                parent[i] = parent[i] != (uint32_t)i ? parent[parent[i]]
                            : joined[i >> 3] >> (i & 7) & 1 ? R++ : ALONE;
            if (R && (size_t)R * (sizeof(double) + sizeof(uint32_t)) <= spare)
                sums = (double *)rest, count = (uint32_t *)(rest + (size_t)R * sizeof(double));
            else /* (one value at least: malloc(0) may be NULL) */
                sums = malloc((size_t)(R + 1) * sizeof(double)), count = malloc((size_t)(R + 1) * sizeof(uint32_t));
            if (!count || !sums) {
                RELEASE(parent), RELEASE(count), RELEASE(sums), free(joined);
                return 0;
            }
            memset(count, 0, (size_t)R * sizeof(uint32_t));
            for (idx i = 0; i < S; i++)
                if (parent[i] != ALONE)
                    count[parent[i]]++;
            for (idx c = g * per; c < (g + 1) * per; c++) {
                double *uc = u + (b * C + c) * N, acc = 0.0;
                memset(sums, 0, (size_t)R * sizeof(double));
                BOX_LOOP(if (parent[i] != ALONE) sums[parent[i]] += uc[at];)
                for (uint32_t r = 0; r < R; r++) /* the means */
                    sums[r] /= (double)count[r];
                BOX_LOOP({
                    if (parent[i] != ALONE) {
                        double d = uc[at] - sums[parent[i]];
                        acc += d * d;
                        uc[at] = sums[parent[i]];
                    }
                })
                if (move)
                    move[b] += acc;
            }
            RELEASE(count), RELEASE(sums);
        }
#undef BOX_LOOP
    RELEASE(parent);
    free(joined);
#undef RELEASE
    return 1;
}
