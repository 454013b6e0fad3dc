/* The per-frame sums of passes/features.py in one pass over the 8-bit analysis image (issue 20).
 *
 * Pure integer arithmetic, except the two centre-weighted sums (double, accumulated in a fixed
 * order): the same frame gives the same numbers on every run and in every process. No numpy C API:
 * the image and the weights come in through the buffer protocol, the results go back as bytes that
 * passes/features.py reads with numpy.frombuffer. passes/features.py keeps a numpy version of every
 * sum (used when this module was not built) and tests/test_features_kernels.py checks both against
 * the plain numpy definitions.
 *
 * frame_sums(image, h, w, g, nb, wx, wy) -> (glob, tiles, noise, clipped, hist, centre, edges, layout)
 *   image   h*w uint8, row-major (any contiguous buffer of h*w bytes is read as such)
 *   g       the tile grid (g x g tiles of the (h-2) x (w-2) interior; remainder rows/cols dropped)
 *   nb      the noise block edge (nb x nb blocks of the interior; remainder dropped)
 *   wx, wy  float64 weights of the interior's columns (w-2) and rows (h-2)
 * over the interior, with c the pixel, and the [1 -2 1] second differences dh (x), dv (y),
 * dd (diagonal), da (anti-diagonal), lap = dh + dv and Immerkaer's residual r (dv of dh):
 *   glob    int64[5][2]       sum and sum of squares of lap, dh, dv, dd, da over the whole interior
 *   tiles   int64[5][2][g][g] the same per tile
 *   noise   int64[NH][NW]     sum of |r| per noise block
 *   clipped uint8[NH][NW]     1 where a block holds a pixel <= 6 or >= 249
 *   hist    int64[256]        histogram of the whole image
 *   centre  (sum_y wy[y] * sum_x wx[x] * lap, the same with lap * lap)
 *   edges   the number of edge pixels in the central region (edge_count below)
 *   layout  int64[16][16] sums over a 16 x 16 grid of blocks of the whole image (empty below 16 px)
 * (h, w >= 8)
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <string.h>

/* AVX2 where the CPU has it, else the baseline: integer arithmetic is exact either way, and the
 * double sums are written as four interleaved partial sums in a fixed order, which no compiler may
 * reorder (no -ffast-math), so every build gives the same numbers. */
#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && defined(__linux__)
#define KERNEL __attribute__((target_clones("avx2", "default")))
#else
#define KERNEL
#endif

/* the sum and the sum of squares of n int16 values, in int32 over runs of 512 (512 x 2040^2 < 2^31) */
static inline void sum_sq(const int16_t *restrict d, Py_ssize_t n, int64_t *restrict s, int64_t *restrict q) {
    for (Py_ssize_t i0 = 0; i0 < n; i0 += 512) {
        const Py_ssize_t i1 = i0 + 512 < n ? i0 + 512 : n;
        int32_t ss = 0, qq = 0;
        for (Py_ssize_t i = i0; i < i1; i++) {
            ss += d[i];
            qq += (int32_t)d[i] * d[i];
        }
        *s += ss;
        *q += qq;
    }
}

/* the x second difference of one row, on the interior columns */
static inline void row_dx(const uint8_t *restrict r, Py_ssize_t iw, int16_t *restrict out) {
    for (Py_ssize_t i = 0; i < iw; i++)
        out[i] = (int16_t)((int16_t)r[i] + r[i + 2] - 2 * (int16_t)r[i + 1]);
}

/* one row of the interior: the second differences (dx of the rows above, at and below given), the
 * Laplacian, |Immerkaer's residual| and whether the pixel is clipped (<= 6 or >= 249) */
static inline void row_differences(const uint8_t *restrict a0, const uint8_t *restrict a1, const uint8_t *restrict a2,
                                   const int16_t *restrict up, const int16_t *restrict at,
                                   const int16_t *restrict dn, Py_ssize_t iw, int16_t *restrict lap,
                                   int16_t *restrict dh, int16_t *restrict dv, int16_t *restrict dd,
                                   int16_t *restrict da, int16_t *restrict res, uint8_t *restrict clip) {
    for (Py_ssize_t x = 0; x < iw; x++) {
        const int16_t cc = (int16_t)(2 * a1[x + 1]);
        const int16_t v = (int16_t)((int16_t)a0[x + 1] + a2[x + 1] - cc);
        const int16_t r = (int16_t)(up[x] + dn[x] - 2 * at[x]);
        dh[x] = at[x];
        dv[x] = v;
        dd[x] = (int16_t)((int16_t)a0[x] + a2[x + 2] - cc);
        da[x] = (int16_t)((int16_t)a0[x + 2] + a2[x] - cc);
        lap[x] = (int16_t)(at[x] + v);
        res[x] = (int16_t)(r < 0 ? -r : r);
        clip[x] = (uint8_t)((a1[x + 1] <= 6) | (a1[x + 1] >= 249));
    }
}

/* the centre-weighted sums of one row's Laplacian and its square: four partial sums (column 4j + m
 * into the m-th), added in order at the end -- a fixed order, whatever the compiler */
static inline void row_centre(const int16_t *restrict lap, const double *restrict wx, Py_ssize_t iw, double *r1,
                              double *r2) {
    double s0 = 0.0, s1 = 0.0, s2 = 0.0, s3 = 0.0, q0 = 0.0, q1 = 0.0, q2 = 0.0, q3 = 0.0;
    Py_ssize_t x = 0;
    for (; x + 4 <= iw; x += 4) {
        const double l0 = lap[x], l1 = lap[x + 1], l2 = lap[x + 2], l3 = lap[x + 3];
        s0 += wx[x] * l0;
        s1 += wx[x + 1] * l1;
        s2 += wx[x + 2] * l2;
        s3 += wx[x + 3] * l3;
        q0 += wx[x] * (l0 * l0);
        q1 += wx[x + 1] * (l1 * l1);
        q2 += wx[x + 2] * (l2 * l2);
        q3 += wx[x + 3] * (l3 * l3);
    }
    double *s[4] = {&s0, &s1, &s2, &s3}, *q[4] = {&q0, &q1, &q2, &q3};
    for (int m = 0; x < iw; x++, m++) {
        const double l = lap[x];
        *s[m] += wx[x] * l;
        *q[m] += wx[x] * (l * l);
    }
    *r1 = ((s0 + s1) + s2) + s3;
    *r2 = ((q0 + q1) + q2) + q3;
}

/* the centre's edge count: pixels of the central region (rows h/4 .. h - h/4, the same for columns)
 * whose 3x3-mean gradient (central differences) is longer than 8 levels. With S the 3x3 sum (9 x the
 * mean), the gradient is (S(x+1) - S(x-1)) / 18 along each axis, so the test is exact in integers:
 * dSx^2 + dSy^2 > (8 * 18)^2. Reads at most 2 pixels beyond the region (h, w >= 8). */
static inline void row_box3(const uint8_t *restrict p0, const uint8_t *restrict p1, const uint8_t *restrict p2,
                            Py_ssize_t n, int16_t *restrict out) {  /* 3x3 sums centred on p1[0 .. n) */
    for (Py_ssize_t i = 0; i < n; i++)
        out[i] = (int16_t)((int16_t)p0[i - 1] + p0[i] + p0[i + 1] + p1[i - 1] + p1[i] + p1[i + 1] + p2[i - 1] + p2[i]
                           + p2[i + 1]);
}

static inline Py_ssize_t row_edges(const int16_t *restrict up, const int16_t *restrict at, const int16_t *restrict dn,
                                   Py_ssize_t n) {  /* edge pixels at[1 .. n - 1) */
    int32_t count = 0;
    for (Py_ssize_t i = 1; i < n - 1; i++) {
        const int32_t gx = at[i + 1] - at[i - 1], gy = dn[i] - up[i];
        count += gx * gx + gy * gy > 144 * 144;
    }
    return count;
}

static inline Py_ssize_t edge_count(const uint8_t *a, Py_ssize_t h, Py_ssize_t w, int16_t *buf) {
    const Py_ssize_t ch = h / 4, cw = w / 4, x0 = cw - 1, n = w - 2 * cw + 2;  /* S on columns x0 .. x0 + n */
    int16_t *rows[3] = {buf, buf + n, buf + 2 * n};
    Py_ssize_t count = 0;
    for (Py_ssize_t r = ch - 1; r <= h - ch; r++) {  /* the 3x3 sums of row r */
        int16_t *out = rows[(r - (ch - 1)) % 3];
        row_box3(a + (r - 1) * w + x0, a + r * w + x0, a + (r + 1) * w + x0, n, out);
        if (r >= ch + 1)  /* the centre row r - 1 has its sums above, at and below */
            count += row_edges(rows[(r - 2 - (ch - 1)) % 3], rows[(r - 1 - (ch - 1)) % 3], out, n);
    }
    return count;
}

/* the layout: sums over a 16 x 16 grid of equal blocks of the whole image (remainder dropped) */
static inline void layout_sums(const uint8_t *a, Py_ssize_t h, Py_ssize_t w, int64_t *out) {
    const Py_ssize_t bh = h / 16, bw = w / 16;
    for (Py_ssize_t y = 0; y < 16 * bh; y++) {
        const uint8_t *row = a + y * w;
        int64_t *o = out + (y / bh) * 16;
        for (Py_ssize_t bx = 0; bx < 16; bx++) {
            int64_t acc = 0;  /* a block row can be wider than 2^31 / 255 pixels */
            for (Py_ssize_t x = bx * bw; x < (bx + 1) * bw; x++)
                acc += row[x];
            o[bx] += acc;
        }
    }
}

KERNEL static void sums(const uint8_t *a, Py_ssize_t h, Py_ssize_t w, Py_ssize_t g, Py_ssize_t nb, const double *wx,
                        const double *wy, int64_t *glob, int64_t *tiles, int64_t *noise, uint8_t *clipped,
                        int64_t *hist, double *centre, int16_t *buf, int16_t *ebuf, Py_ssize_t *edges,
                        int64_t *layout) {
    const Py_ssize_t ih = h - 2, iw = w - 2, th = ih / g, tw = iw / g, NH = ih / nb, NW = iw / nb;
    int16_t *d[5] = {buf, buf + iw, buf + 2 * iw, buf + 3 * iw, buf + 4 * iw};  /* lap, dh, dv, dd, da */
    int16_t *hx[3] = {buf + 5 * iw, buf + 6 * iw, buf + 7 * iw};  /* dx of the rows above, at, below */
    int16_t *res = buf + 8 * iw;
    uint8_t *clip = (uint8_t *)(buf + 9 * iw);
    int64_t hs[4][256];
    memset(hs, 0, sizeof(hs));
    Py_ssize_t i = 0;
    for (; i + 4 <= h * w; i += 4) {  /* four histograms: no store-to-load stall on runs of a level */
        hs[0][a[i]]++;
        hs[1][a[i + 1]]++;
        hs[2][a[i + 2]]++;
        hs[3][a[i + 3]]++;
    }
    for (; i < h * w; i++)
        hs[0][a[i]]++;
    for (int v = 0; v < 256; v++)
        hist[v] = hs[0][v] + hs[1][v] + hs[2][v] + hs[3][v];
    double c1 = 0.0, c2 = 0.0;
    row_dx(a, iw, hx[0]);
    row_dx(a + w, iw, hx[1]);
    for (Py_ssize_t iy = 0; iy < ih; iy++) {
        const uint8_t *a0 = a + iy * w, *a1 = a0 + w, *a2 = a1 + w;
        row_dx(a2, iw, hx[2]);
        row_differences(a0, a1, a2, hx[0], hx[1], hx[2], iw, d[0], d[1], d[2], d[3], d[4], res, clip);
        const Py_ssize_t ty = iy < th * g ? iy / th : -1;
        for (int k = 0; k < 5; k++) {
            for (Py_ssize_t t = 0; t < g; t++) {
                int64_t s = 0, q = 0;
                sum_sq(d[k] + t * tw, tw, &s, &q);
                glob[2 * k] += s;
                glob[2 * k + 1] += q;
                if (ty >= 0) {
                    tiles[((2 * k) * g + ty) * g + t] += s;
                    tiles[((2 * k + 1) * g + ty) * g + t] += q;
                }
            }
            sum_sq(d[k] + g * tw, iw - g * tw, &glob[2 * k], &glob[2 * k + 1]);
        }
        double r1, r2;
        row_centre(d[0], wx, iw, &r1, &r2);
        c1 += wy[iy] * r1;
        c2 += wy[iy] * r2;
        if (iy < NH * nb) {
            const Py_ssize_t by = iy / nb;
            for (Py_ssize_t bx = 0; bx < NW; bx++) {
                int32_t acc = 0;
                uint8_t any = 0;
                for (Py_ssize_t j = bx * nb; j < (bx + 1) * nb; j++) {
                    acc += res[j];
                    any |= clip[j];
                }
                noise[by * NW + bx] += acc;
                clipped[by * NW + bx] |= any;
            }
        }
        int16_t *t = hx[0];
        hx[0] = hx[1];
        hx[1] = hx[2];
        hx[2] = t;
    }
    centre[0] = c1;
    centre[1] = c2;
    *edges = edge_count(a, h, w, ebuf);
    if (h >= 16 && w >= 16)
        layout_sums(a, h, w, layout);
}

static PyObject *frame_sums(PyObject *self, PyObject *args) {
    (void)self;
    Py_buffer img, bwx, bwy;
    Py_ssize_t h, w, g, nb;
    if (!PyArg_ParseTuple(args, "y*nnnny*y*", &img, &h, &w, &g, &nb, &bwx, &bwy))
        return NULL;
    PyObject *result = NULL;
    int64_t *tiles = NULL, *noise = NULL;
    uint8_t *clipped = NULL;
    int16_t *buf = NULL;
    int16_t *ebuf = NULL;
    const Py_ssize_t ih = h - 2, iw = w - 2;
    if (((uintptr_t)bwx.buf | (uintptr_t)bwy.buf) % sizeof(double)) {  /* read as doubles below */
        PyErr_SetString(PyExc_ValueError, "frame_sums: the weights are not aligned float64");
        goto done;
    }
    if (h < 8 || w < 8 || h > PY_SSIZE_T_MAX / w || g < 1 || nb < 1 || ih / g < 1 || iw / g < 1 || img.len != h * w
        || bwx.len != (Py_ssize_t)sizeof(double) * iw || bwy.len != (Py_ssize_t)sizeof(double) * ih) {
        PyErr_SetString(PyExc_ValueError, "frame_sums: sizes do not match");
        goto done;
    }
    const Py_ssize_t NH = ih / nb, NW = iw / nb;
    int64_t glob[10] = {0}, hist[256] = {0};
    double centre[2] = {0.0, 0.0};
    tiles = PyMem_Calloc((size_t)(10 * g * g), sizeof(int64_t));
    noise = PyMem_Calloc((size_t)(NH * NW + 1), sizeof(int64_t));
    clipped = PyMem_Calloc((size_t)(NH * NW + 1), 1);
    buf = PyMem_Calloc((size_t)(10 * iw), sizeof(int16_t));
    ebuf = PyMem_Calloc((size_t)(3 * w), sizeof(int16_t));
    int64_t layout[256] = {0};
    Py_ssize_t edges = 0;
    if (!tiles || !noise || !clipped || !buf || !ebuf) {
        PyErr_NoMemory();
        goto done;
    }
    Py_BEGIN_ALLOW_THREADS
    sums((const uint8_t *)img.buf, h, w, g, nb, (const double *)bwx.buf, (const double *)bwy.buf, glob, tiles, noise,
         clipped, hist, centre, buf, ebuf, &edges, layout);
    Py_END_ALLOW_THREADS
    result = Py_BuildValue("(y#y#y#y#y#(dd)ny#)", (const char *)glob, (Py_ssize_t)sizeof(glob), (const char *)tiles,
                           (Py_ssize_t)(10 * g * g * sizeof(int64_t)), (const char *)noise,
                           (Py_ssize_t)(NH * NW * sizeof(int64_t)), (const char *)clipped, NH * NW,
                           (const char *)hist, (Py_ssize_t)sizeof(hist), centre[0], centre[1], edges,
                           (const char *)layout, (Py_ssize_t)(h >= 16 && w >= 16 ? sizeof(layout) : 0));
done:
    PyMem_Free(tiles);
    PyMem_Free(noise);
    PyMem_Free(clipped);
    PyMem_Free(buf);
    PyMem_Free(ebuf);
    PyBuffer_Release(&img);
    PyBuffer_Release(&bwx);
    PyBuffer_Release(&bwy);
    return result;
}

static PyMethodDef methods[] = {
    {"frame_sums", frame_sums, METH_VARARGS, "The per-frame sums of passes/features.py (see the source's header)."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "qrate._kernels", NULL, -1, methods, NULL, NULL, NULL, NULL};

PyMODINIT_FUNC PyInit__kernels(void) { return PyModule_Create(&module); }
