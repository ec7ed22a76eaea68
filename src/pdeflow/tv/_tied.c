/* pdeflow.tv._tied's candidate by union-find: fields (B, C, A, n0, n1, n2), A = 2 axes (n0 = 1) or 3. Included by
   _fgp_kernel.c once per REAL. */

/* The root of x's tree, halving the path on the way. */
static uint32_t K(root)(uint32_t *parent, uint32_t x)
{
    while (parent[x] != x) {
        parent[x] = parent[parent[x]];
        x = parent[x];
    }
    return x;
}

/* v (float64) = u's means on the components of the pixels whose squared dual norm (float64, the Python path's
   sum; joint: over the channels, each keeping its means) is below lim, each tied to its forward neighbours. The
   smaller root becomes the root, so one raster pass resolves every root. 0: out of memory (or 2^32 pixels). */
static int K(tie)(const REAL *p, const REAL *u, double *v, idx B, idx C, int A, const idx *n, int joint, double lim)
{
    idx S = n[0] * n[1] * n[2], stride[3] = {n[1] * n[2], n[2], 1};
    if (S >= (idx)UINT32_MAX)
        return 0;
    uint32_t *parent = malloc((size_t)S * sizeof(uint32_t)), *count = malloc((size_t)S * sizeof(uint32_t));
    double *sums = malloc((size_t)S * sizeof(double));
    if (!parent || !count || !sums) {
        free(parent), free(count), free(sums);
        return 0;
    }
    idx G = joint ? 1 : C, per = joint ? C : 1;
    for (idx b = 0; b < B; b++)
        for (idx g = 0; g < G; g++) {
            const REAL *pg = p + (b * C + g * per) * A * S;
            for (idx i = 0; i < S; i++)
                parent[i] = (uint32_t)i;
            for (idx i0 = 0, i = 0; i0 < n[0]; i0++)
                for (idx i1 = 0; i1 < n[1]; i1++)
                    for (idx i2 = 0; i2 < n[2]; i2++, i++) {
                        double sq = 0.0;
                        for (idx c = 0; c < per; c++) {
                            double t = 0.0;
                            for (int k = 0; k < A; k++)
                                t += (double)pg[(c * A + k) * S + i] * (double)pg[(c * A + k) * S + i];
                            sq += t;
                        }
                        if (!(sq < lim))
                            continue;
                        idx at[3] = {i0, i1, i2};
                        for (int k = 3 - A; k < 3; k++)
                            if (at[k] + 1 < n[k]) {
                                uint32_t x = K(root)(parent, (uint32_t)i);
                                uint32_t y = K(root)(parent, (uint32_t)(i + stride[k]));
                                parent[x < y ? y : x] = x < y ? x : y;
                            }
                    }
            memset(count, 0, (size_t)S * sizeof(uint32_t));
            for (idx i = 0; i < S; i++) {
                parent[i] = parent[parent[i]];
                count[parent[i]]++;
            }
            for (idx c = g * per; c < (g + 1) * per; c++) {
                const REAL *uc = u + (b * C + c) * S;
                double *vc = v + (b * C + c) * S;
                memset(sums, 0, (size_t)S * sizeof(double));
                for (idx i = 0; i < S; i++)
                    sums[parent[i]] += (double)uc[i];
                for (idx i = 0; i < S; i++) /* the means (a vector loop: 0 / 1 off the roots) */
                    sums[i] = sums[i] / (double)(count[i] + (count[i] == 0));
                for (idx i = 0; i < S; i++)
                    vc[i] = sums[parent[i]];
            }
        }
    free(parent), free(count), free(sums);
    return 1;
}
