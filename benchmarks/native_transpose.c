/* A native transposing copy for benchmarks/bench_transpose.py --native (benchmark only: numerflow itself
 * ships no native code). Columns given as pointers (Arrow's column buffers, or rows of a gathered buffer)
 * are written into a row-major int8 matrix in 16 x 16 byte blocks transposed in SSE2 registers (four
 * rounds of byte unpacks; bit-reversed register order in and out), tiles of TILE rows, scalar edges. */
#include <stdint.h>
#include <stddef.h>
#if defined(__SSE2__)
#include <emmintrin.h>
#endif

#ifndef TILE
#define TILE 256
#endif

static const int REV4[16] = {0,8,4,12,2,10,6,14,1,9,5,13,3,11,7,15};

#if defined(__SSE2__)
/* rows r..r+15 of columns src[0..15] -> 16 rows of dst (ld bytes apart), 16 bytes each */
static inline void block16(int8_t *dst, ptrdiff_t ld, const int8_t *const *src, ptrdiff_t r) {
    __m128i a[16], b[16];
    for (int c = 0; c < 16; c++) a[REV4[c]] = _mm_loadu_si128((const __m128i *)(src[c] + r));
    for (int k = 0; k < 2; k++) {
        for (int j = 0; j < 8; j++) {
            b[j] = _mm_unpacklo_epi8(a[2 * j], a[2 * j + 1]);
            b[j + 8] = _mm_unpackhi_epi8(a[2 * j], a[2 * j + 1]);
        }
        for (int j = 0; j < 8; j++) {
            a[j] = _mm_unpacklo_epi8(b[2 * j], b[2 * j + 1]);
            a[j + 8] = _mm_unpackhi_epi8(b[2 * j], b[2 * j + 1]);
        }
    }
    for (int i = 0; i < 16; i++) _mm_storeu_si128((__m128i *)(dst + i * ld), a[REV4[i]]);
}
#endif

/* X[i*ld + c] = cols[c][i] for i < n, c < ncols */
void nf_gather_t(int8_t *X, ptrdiff_t ld, const int8_t *const *cols, ptrdiff_t ncols, ptrdiff_t n) {
    for (ptrdiff_t t0 = 0; t0 < n; t0 += TILE) {
        ptrdiff_t t1 = t0 + TILE < n ? t0 + TILE : n;
        ptrdiff_t c = 0;
#if defined(__SSE2__)
        ptrdiff_t full = t0 + ((t1 - t0) & ~(ptrdiff_t)15);
        for (; c + 16 <= ncols; c += 16) {
            ptrdiff_t r = t0;
            for (; r < full; r += 16) block16(X + r * ld + c, ld, cols + c, r);
            for (; r < t1; r++)
                for (int k = 0; k < 16; k++) X[r * ld + c + k] = cols[c + k][r];
        }
#endif
        for (; c < ncols; c++) {
            const int8_t *s = cols[c];
            for (ptrdiff_t r = t0; r < t1; r++) X[r * ld + c] = s[r];
        }
    }
}
