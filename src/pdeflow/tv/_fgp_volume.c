/* Volumes: _fgp_kernel.c's FGP iteration, gap and certificate on fields (B, C, 3, D, H, W) over any spacing, a row
   (row r of slab i: W voxels) at a time, with pdeflow.tv._grid.Grid's weights (div: scale / h_k, grad: 1 / h_k) and
   its order of operations; the data term of the iteration in the working precision (Grid's is rounded once from
   float64: iterates agree to round-off). A field's unused entries (component k on the last slab along axis k) are
   zero, read so and written so. Included by _fgp_kernel.c once per REAL. */

/* A row of w . div q from the row's components (q0, q1, q2), component 0 on the previous slab (up0) and component
   1 on the previous row (up1) (NULL: none): ((w0 q0 + w1 q1) + w2 q2) - w0 up0 - w1 up1 - w2 q2[j - 1], the
   order of Grid.div_into. */
static void K(div_row3)(const REAL *restrict q0, const REAL *restrict q1, const REAL *restrict q2,
                        const REAL *restrict up0, const REAL *restrict up1, const REAL *w, REAL *restrict v, idx W)
{
    for (idx j = 0; j < W; j++)
        v[j] = (w[0] * q0[j] + w[1] * q1[j]) + w[2] * q2[j];
    if (up0)
        for (idx j = 0; j < W; j++)
            v[j] = v[j] - w[0] * up0[j];
    if (up1)
        for (idx j = 0; j < W; j++)
            v[j] = v[j] - w[1] * up1[j];
    for (idx j = 1; j < W; j++)
        v[j] = v[j] - w[2] * q2[j - 1];
}

/* A row of component k of grad u = (dd g + L e) lam, dd the difference of d to its neighbour nb (nb[j] next to
   d[j]; NULL: none, n: the entries that have one); with e NULL a plain difference dd g. 0 without a neighbour. */
static void K(g_row3)(const REAL *restrict d, const REAL *restrict nb, const REAL *restrict e, REAL g, REAL L,
                      REAL lam, REAL *restrict a, idx n, idx W)
{
    if (!nb)
        n = 0;
    if (!e) /* a plain forward difference */
        for (idx j = 0; j < n; j++)
            a[j] = (nb[j] - d[j]) * g;
    else
        for (idx j = 0; j < n; j++)
            a[j] = ((nb[j] - d[j]) * g + L * e[j]) * lam;
    for (idx j = n; j < W; j++)
        a[j] = 0;
}

/* acc[l] += x[j]^2 for j = l mod LANES. */
static void K(lane_sq)(double *restrict acc, const REAL *restrict x, idx W)
{
    idx j = 0;
    for (; j + LANES <= W; j += LANES)
        for (int l = 0; l < LANES; l++)
            acc[l] += (double)x[j + l] * (double)x[j + l];
    for (; j < W; j++)
        acc[0] += (double)x[j] * (double)x[j];
}

/* A row of the data term e_k = grad_k f / (L lam) (ih: 1 / h_k, inv: 1 / (L lam)) formed in float64 and rounded
   once, as Grid's, from f's rows (i, r) (x), (i, r + 1) (below) and (i + 1, r) (next; NULL: none). */
static void K(data_row3)(const REAL *restrict x, const REAL *restrict below, const REAL *restrict next,
                         const double *ih, double inv, REAL *restrict e, idx W)
{
    REAL *e0 = e, *e1 = e + W, *e2 = e + 2 * W;
    for (idx j = 0; j < W; j++)
        e0[j] = next ? (REAL)((((double)next[j] - (double)x[j]) * ih[0]) * inv) : 0;
    for (idx j = 0; j < W; j++)
        e1[j] = below ? (REAL)((((double)below[j] - (double)x[j]) * ih[1]) * inv) : 0;
    for (idx j = 0; j + 1 < W; j++)
        e2[j] = (REAL)((((double)x[j + 1] - (double)x[j]) * ih[2]) * inv);
    e2[W - 1] = 0;
}

#define AT(c, k, i, r) ((((b * C + (c)) * 3 + (k)) * D + (i)) * S + (r) * W)
#define FAT(c, i, r) (((b * C + (c)) * D + (i)) * S + (r) * W)
#define ROWS(x, c, i, r) x + AT(c, 0, i, r), x + AT(c, 1, i, r), x + AT(c, 2, i, r)

/* A row of w . div q on one slab, the momentum point q = p + beta (p - pp) formed on the fly (pp = p where beta = 0:
   pp is not an iterate yet), from the row's components (p_k, pp_k), component 0 on the slab before (b0, bb0: its p
   and pp; a row of zeros on the first slab) and component 1 on the row before (up1, q's, kept by the caller; zeros
   on the first row): (((w0 q0 + w1 q1) + w2 q2) - w0 q0[slab before]) - w1 q1[row before] - w2 q2[j - 1], the
   order of Grid.div_into; q1 written for the next row. */
static void K(div_q_row)(const REAL *restrict p0, const REAL *restrict p1, const REAL *restrict p2,
                         const REAL *restrict pp0, const REAL *restrict pp1, const REAL *restrict pp2,
                         const REAL *restrict b0, const REAL *restrict bb0, const REAL *restrict up1, REAL beta,
                         const REAL *w, REAL *restrict v, REAL *restrict q1, idx W)
{
    for (idx j = 0; j < W; j++) {
        const REAL a = p0[j] + beta * (p0[j] - pp0[j]), c = p1[j] + beta * (p1[j] - pp1[j]);
        const REAL e = p2[j] + beta * (p2[j] - pp2[j]), back = b0[j] + beta * (b0[j] - bb0[j]);
        v[j] = ((((w[0] * a + w[1] * c) + w[2] * e) - w[0] * back) - w[1] * up1[j]);
        q1[j] = c;
    }
    for (idx j = 1; j < W; j++)
        v[j] = v[j] - w[2] * (p2[j - 1] + beta * (p2[j - 1] - pp2[j - 1]));
}

/* A row of the next iterate before the projection, z_k = ((v' - v) g_k + q_k) + e_k, and s = old + |z|^2 (old: s for
   the coupled channels, else zeros): q as in div_q_row, v' v's neighbour along axis k (vn, vb on the next slab and
   row; v itself where there is none, and then z_k = q_k exactly), e_k formed from f's rows x, xn, xb alike. */
static void K(z_row3)(const REAL *restrict p0, const REAL *restrict p1, const REAL *restrict p2,
                      const REAL *restrict pp0, const REAL *restrict pp1, const REAL *restrict pp2, REAL beta,
                      const REAL *restrict v, const REAL *restrict vn, const REAL *restrict vb,
                      const REAL *restrict x, const REAL *restrict xn, const REAL *restrict xb, const REAL *g,
                      const double *ih, double inv, REAL *restrict z0, REAL *restrict z1, REAL *restrict z2,
                      REAL *s, const REAL *old, idx W)
{
    const REAL h[3] = {(REAL)ih[0], (REAL)ih[1], (REAL)ih[2]}, r = (REAL)inv;
    for (idx j = 0; j < W; j++) {
        const REAL q0 = p0[j] + beta * (p0[j] - pp0[j]), q1 = p1[j] + beta * (p1[j] - pp1[j]);
        const REAL e0 = ((xn[j] - x[j]) * h[0]) * r, e1 = ((xb[j] - x[j]) * h[1]) * r;
        z0[j] = ((vn[j] - v[j]) * g[0] + q0) + e0;
        z1[j] = ((vb[j] - v[j]) * g[1] + q1) + e1;
        z2[j] = p2[j] + beta * (p2[j] - pp2[j]);
    }
    for (idx j = 0; j + 1 < W; j++)
        z2[j] = ((v[j + 1] - v[j]) * g[2] + z2[j]) + ((x[j + 1] - x[j]) * h[2]) * r;
    for (idx j = 0; j < W; j++)
        s[j] = old[j] + ((z0[j] * z0[j] + z1[j] * z1[j]) + z2[j] * z2[j]);
}

/* A row of the projected iterate y_k = z_k / sqrt(max(s, 1)) and the restart term <q - y, y - p> per voxel into t. */
static void K(out_row3)(const REAL *restrict p0, const REAL *restrict p1, const REAL *restrict p2,
                        const REAL *restrict pp0, const REAL *restrict pp1, const REAL *restrict pp2, REAL beta,
                        const REAL *restrict z0, const REAL *restrict z1, const REAL *restrict z2,
                        const REAL *restrict s, REAL *restrict y0, REAL *restrict y1, REAL *restrict y2,
                        REAL *restrict t, idx W)
{
    for (idx j = 0; j < W; j++) {
        const REAL k = 1 / SQRT(s[j] < 1 ? 1 : s[j]);
        const REAL a = z0[j] * k, c = z1[j] * k, e = z2[j] * k;
        const REAL q0 = p0[j] + beta * (p0[j] - pp0[j]), q1 = p1[j] + beta * (p1[j] - pp1[j]);
        const REAL q2 = p2[j] + beta * (p2[j] - pp2[j]);
        y0[j] = a;
        y1[j] = c;
        y2[j] = e;
        t[j] = ((q0 - a) * (a - p0[j]) + (q1 - c) * (c - p1[j])) + (q2 - e) * (e - p2[j]);
    }
}

/* Slabs [r0, r1) of one FGP iteration of every image into out and their restart sums <q - z, z - p> into sums
   (B, float64); q and the data term formed on the fly from p, pp, f (B, C, D, H, W) and lams (B); wd: div's weights
   1 / (L h_k), wg: grad's 1 / h_k. div q is held for slab i (formed one slab before) and slab i + 1 (row by row). */
static int K(step3)(const REAL *p, const REAL *pp, REAL *out, const REAL *f, const REAL *lams, double L,
                    const REAL *betas, double *sums, idx B, idx C, idx D, idx H, idx W, const double *wd,
                    const double *wg, int joint, idx r0, idx r1)
{
    const idx S = H * W;
    const int over = joint && C > 1; /* the projection couples the channels */
    const REAL w[3] = {(REAL)wd[0], (REAL)wd[1], (REAL)wd[2]}, g[3] = {(REAL)wg[0], (REAL)wg[1], (REAL)wg[2]};
    /* per channel: div q on two slabs; rows of z and of q1 (rows r - 1 and r); then the squared norms, the restart
       terms and a row of zeros */
    REAL *buf = malloc(sizeof(REAL) * ((size_t)S * 2 * C + (size_t)W * (5 * C + 3)));
    if (!buf)
        return 0;
    REAL *rows = buf + 2 * C * S, *s = rows + 5 * C * W, *t = s + W, *zero = t + W;
    memset(zero, 0, W * sizeof(REAL));
#define V(c, a) (buf + (2 * (c) + (a)) * S)
#define Z(c, k) (rows + (5 * (c) + (k)) * W)
#define Q1(c, h) (rows + (5 * (c) + 3 + (h)) * W)
    for (idx b = 0; b < B; b++) {
        const REAL beta = betas[b];
        const REAL *pq = beta == 0 ? p : pp; /* pp where it enters q */
        const double inv = 1.0 / (L * (double)lams[b]);
        double acc[LANES] = {0};
        int a = 0; /* V(c, a) holds div q of slab i */
        sums[b] = 0.0;
        if (r0 >= r1)
            continue;
        for (idx c = 0; c < C; c++)
            for (idx r = 0; r < H; r++)
                K(div_q_row)(ROWS(p, c, r0, r), ROWS(pq, c, r0, r), r0 > 0 ? p + AT(c, 0, r0 - 1, r) : zero,
                             r0 > 0 ? pq + AT(c, 0, r0 - 1, r) : zero, r > 0 ? Q1(c, 1 - (r & 1)) : zero, beta, w,
                             V(c, a) + r * W, Q1(c, r & 1), W);
        for (idx i = r0; i < r1; i++) {
            for (idx r = 0; r < H; r++) {
                const int h = r & 1;
                for (idx c = 0; c < C; c++) {
                    const REAL *v = V(c, a) + r * W, *vn = v, *x = f + FAT(c, i, r);
                    if (i + 1 < D) {
                        vn = V(c, 1 - a) + r * W;
                        K(div_q_row)(ROWS(p, c, i + 1, r), ROWS(pq, c, i + 1, r), p + AT(c, 0, i, r),
                                     pq + AT(c, 0, i, r), r > 0 ? Q1(c, 1 - h) : zero, beta, w, (REAL *)vn, Q1(c, h),
                                     W);
                    }
                    K(z_row3)(ROWS(p, c, i, r), ROWS(pq, c, i, r), beta, v, vn, r + 1 < H ? v + W : v, x,
                              i + 1 < D ? x + S : x, r + 1 < H ? x + W : x, g, wg, inv, Z(c, 0), Z(c, 1), Z(c, 2), s,
                              over && c > 0 ? s : zero, W);
                    if (!over) {
                        K(out_row3)(ROWS(p, c, i, r), ROWS(pq, c, i, r), beta, Z(c, 0), Z(c, 1), Z(c, 2), s,
                                    ROWS(out, c, i, r), t, W);
                        K(lane_add)(acc, t, W);
                    }
                }
                for (idx c = 0; over && c < C; c++) {
                    K(out_row3)(ROWS(p, c, i, r), ROWS(pq, c, i, r), beta, Z(c, 0), Z(c, 1), Z(c, 2), s,
                                ROWS(out, c, i, r), t, W);
                    K(lane_add)(acc, t, W);
                }
            }
            a = 1 - a;
        }
        sums[b] = lane_sum(acc);
    }
    free(buf);
    return 1;
#undef V
#undef Z
#undef Q1
}

/* |a|^2 and <a, x> of a row's three components, into n and al or added to them (add: the coupled channels). */
static void K(norm_row3)(const REAL *restrict a0, const REAL *restrict a1, const REAL *restrict a2,
                         const REAL *restrict x0, const REAL *restrict x1, const REAL *restrict x2, REAL *restrict n,
                         REAL *restrict al, int add, idx W)
{
    for (idx j = 0; j < W; j++) {
        const REAL m = (a0[j] * a0[j] + a1[j] * a1[j]) + a2[j] * a2[j];
        const REAL l = (a0[j] * x0[j] + a1[j] * x1[j]) + a2[j] * x2[j];
        n[j] = add ? n[j] + m : m;
        al[j] = add ? al[j] + l : l;
    }
}

/* Slabs [r0, r1) of u = f + lam div p (u NULL: not written) and over them the float64 sums TV(u),
   sum(|grad u| - <grad u, p>), ||div p||^2 per image into sums (B x 3), grad u = (grad div p + L e) lam as Grid forms
   it (wg: 1 / h_k, div's weights too), div p formed on rows (i, r), (i, r + 1) and (i + 1, r). */
static int K(gap3)(const REAL *p, const REAL *f, const REAL *lams, double Ld, const double *wgd, REAL *u, double *sums,
                   idx B, idx C, idx D, idx H, idx W, int joint, idx r0, idx r1)
{
    const idx S = H * W;
    const int over = joint && C > 1; /* |grad u| couples the channels */
    const REAL wg[3] = {(REAL)wgd[0], (REAL)wgd[1], (REAL)wgd[2]}, L = (REAL)Ld;
    /* per channel: div p on rows (i, r), (i, r + 1), (i + 1, r), grad u; then |grad u|^2, <grad u, p>, the data term */
    REAL *buf = malloc(sizeof(REAL) * (size_t)W * (6 * C + 5));
    if (!buf)
        return 0;
    REAL *n = buf + 6 * C * W, *al = n + W, *e = al + W;
#define DV(c, k) (buf + (6 * (c) + (k)) * W)
#define G(c, k) (buf + (6 * (c) + 3 + (k)) * W)
    for (idx b = 0; b < B; b++) {
        const REAL lam = lams[b];
        const double inv = 1.0 / (Ld * (double)lam);
        double acc[3][LANES] = {{0}}; /* TV(u), the slack, ||div p||^2 */
        for (idx i = r0; i < r1; i++) {
            int cur = 0;
            for (idx c = 0; c < C; c++)
                K(div_row3)(ROWS(p, c, i, 0), i > 0 ? p + AT(c, 0, i - 1, 0) : NULL, NULL, wg, DV(c, cur), W);
            for (idx r = 0; r < H; r++) {
                for (idx c = 0; c < C; c++) {
                    const REAL *d = DV(c, cur), *below = NULL, *next = NULL, *x = f + FAT(c, i, r);
                    if (r + 1 < H) {
                        below = DV(c, 1 - cur);
                        K(div_row3)(ROWS(p, c, i, r + 1), i > 0 ? p + AT(c, 0, i - 1, r + 1) : NULL, p + AT(c, 1, i, r),
                                    wg, (REAL *)below, W);
                    }
                    if (i + 1 < D) {
                        next = DV(c, 2);
                        K(div_row3)(ROWS(p, c, i + 1, r), p + AT(c, 0, i, r), r > 0 ? p + AT(c, 1, i + 1, r - 1) : NULL,
                                    wg, (REAL *)next, W);
                    }
                    if (u)
                        for (idx j = 0; j < W; j++)
                            u[FAT(c, i, r) + j] = x[j] + lam * d[j];
                    K(data_row3)(x, r + 1 < H ? x + W : NULL, i + 1 < D ? x + S : NULL, wgd, inv, e, W);
                    K(lane_sq)(acc[2], d, W);
                    K(g_row3)(d, next, e, wg[0], L, lam, G(c, 0), W, W);
                    K(g_row3)(d, below, e + W, wg[1], L, lam, G(c, 1), W, W);
                    K(g_row3)(d, d + 1, e + 2 * W, wg[2], L, lam, G(c, 2), W - 1, W);
                    K(norm_row3)(G(c, 0), G(c, 1), G(c, 2), ROWS(p, c, i, r), n, al, over && c > 0, W);
                    if (!over || c == C - 1)
                        K(slack_row)(n, al, acc[0], acc[1], W);
                }
                cur = 1 - cur;
            }
        }
        for (int k = 0; k < 3; k++)
            sums[3 * b + k] = lane_sum(acc[k]);
    }
    free(buf);
    return 1;
#undef DV
#undef G
}

/* Slabs [r0, r1) of the float64 sums TV(u), sum(|grad u| - <grad u, p>), ||u - f - lam div p||^2, ||u - f||^2 per
   image into sums (B x 4): gap_and_primal's certificate of any candidate u (wg: 1 / h_k, div's weights too). */
static int K(certify3)(const REAL *f, const REAL *u, const REAL *p, const REAL *lams, const double *wgd, double *sums,
                       idx B, idx C, idx D, idx H, idx W, int joint, idx r0, idx r1)
{
    const idx S = H * W;
    const int over = joint && C > 1;
    const REAL wg[3] = {(REAL)wgd[0], (REAL)wgd[1], (REAL)wgd[2]};
    REAL *buf = malloc(sizeof(REAL) * (size_t)W * 6);
    if (!buf)
        return 0;
    REAL *a = buf, *d = buf + 3 * W, *n = buf + 4 * W, *al = buf + 5 * W;
    for (idx b = 0; b < B; b++) {
        const REAL lam = lams[b];
        double acc[4][LANES] = {{0}};
        for (idx i = r0; i < r1; i++)
            for (idx r = 0; r < H; r++)
                for (idx c = 0; c < C; c++) {
                    const REAL *x = u + FAT(c, i, r), *y = f + FAT(c, i, r);
                    K(g_row3)(x, i + 1 < D ? x + S : NULL, NULL, wg[0], 0, 1, a, W, W);
                    K(g_row3)(x, r + 1 < H ? x + W : NULL, NULL, wg[1], 0, 1, a + W, W, W);
                    K(g_row3)(x, x + 1, NULL, wg[2], 0, 1, a + 2 * W, W - 1, W);
                    K(norm_row3)(a, a + W, a + 2 * W, ROWS(p, c, i, r), n, al, over && c > 0, W);
                    if (!over || c == C - 1)
                        K(slack_row)(n, al, acc[0], acc[1], W);
                    K(div_row3)(ROWS(p, c, i, r), i > 0 ? p + AT(c, 0, i - 1, r) : NULL,
                                r > 0 ? p + AT(c, 1, i, r - 1) : NULL, wg, d, W);
                    for (idx j = 0; j < W; j++) {
                        const REAL e = x[j] - y[j], q = e - lam * d[j];
                        a[j] = e * e;
                        d[j] = q * q;
                    }
                    K(lane_add)(acc[2], d, W);
                    K(lane_add)(acc[3], a, W);
                }
        for (int k = 0; k < 4; k++)
            sums[4 * b + k] = lane_sum(acc[k]);
    }
    free(buf);
    return 1;
}
#undef AT
#undef FAT
#undef ROWS
