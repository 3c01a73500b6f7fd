//! Dot products, the inner loops of both vector scans (the knowledge base's passages, the
//! semantic cache's questions): in `f32`, and in integers for 8-bit rows. For the latter the
//! query is widened to 16 bits once, so each step is a sign extension of the row and a
//! multiply-add of 16-bit pairs into 32 bits; integer sums are exact, so any order of summation
//! gives the same result.

/// Dot product with eight independent accumulators: floating-point addition is not
/// associative, so the compiler vectorises a sum only when the code already splits it.
pub fn dot(a: &[f32], b: &[f32]) -> f32 {
    let n = a.len().min(b.len());
    let (a, b) = (&a[..n], &b[..n]);
    let mut acc = [0.0f32; 8];
    let chunks = n / 8;
    for (ca, cb) in a.chunks_exact(8).zip(b.chunks_exact(8)) {
        for j in 0..8 {
            acc[j] += ca[j] * cb[j];
        }
    }
    let mut tail = 0.0;
    for j in chunks * 8..n {
        tail += a[j] * b[j];
    }
    (acc[0] + acc[4]) + (acc[1] + acc[5]) + (acc[2] + acc[6]) + (acc[3] + acc[7]) + tail
}

/// Writes `v` as 8-bit integers into `out`, its largest magnitude becoming 127; returns the
/// factor that turns the integers back. One scale per vector, or one for a whole matrix when
/// `v` is all its rows, which keeps the rows' integer dot products comparable.
pub fn quantize(v: &[f32], out: &mut [i8]) -> f32 {
    let max = v.iter().fold(0.0f32, |m, x| m.max(x.abs()));
    let scale = if max > 0.0 && max.is_finite() {
        max / 127.0
    } else {
        1.0
    };
    for (q, x) in out.iter_mut().zip(v) {
        *q = (x / scale).round().clamp(-127.0, 127.0) as i8;
    }
    scale
}

/// A query as `score_rows` takes it (quantized, widened to 16 bits once), with its scale.
pub fn query(v: &[f32]) -> (Vec<i16>, f32) {
    let mut q = vec![0i8; v.len()];
    let scale = quantize(v, &mut q);
    (q.into_iter().map(i16::from).collect(), scale)
}

/// `out[i]` = dot product of `q` with row `i` of `rows` (rows of `q.len()` values).
pub fn score_rows(q: &[i16], rows: &[i8], out: &mut [i32]) {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") {
        // SAFETY: the CPU has AVX2, checked just above.
        unsafe { avx2::score_rows(q, rows, out) };
        return;
    }
    for (row, s) in rows.chunks_exact(q.len()).zip(out) {
        *s = dot_i8(q, row);
    }
}

/// Sixteen independent lanes: the shape SSE2 and NEON vectorise without being asked.
fn dot_i8(q: &[i16], row: &[i8]) -> i32 {
    const LANES: usize = 16;
    let mut acc = [0i32; LANES];
    let (qs, rs) = (q.chunks_exact(LANES), row.chunks_exact(LANES));
    let tail: i32 = qs
        .remainder()
        .iter()
        .zip(rs.remainder())
        .map(|(&a, &b)| i32::from(a) * i32::from(b))
        .sum();
    for (a, b) in qs.zip(rs) {
        for j in 0..LANES {
            acc[j] += i32::from(a[j]) * i32::from(b[j]);
        }
    }
    acc.iter().sum::<i32>() + tail
}

/// x86-64 CPUs since 2013 have AVX2, but the baseline the compiler may assume is SSE2, so
/// this path is compiled apart and chosen at run time.
#[cfg(target_arch = "x86_64")]
mod avx2 {
    use std::arch::x86_64::{
        __m128i, __m256i, _mm256_add_epi32, _mm256_cvtepi8_epi16, _mm256_loadu_si256,
        _mm256_madd_epi16, _mm256_setzero_si256, _mm256_storeu_si256, _mm_loadu_si128,
    };

    #[target_feature(enable = "avx2")]
    pub fn score_rows(q: &[i16], rows: &[i8], out: &mut [i32]) {
        let dims = q.len();
        let body = dims - dims % 16;
        for (row, s) in rows.chunks_exact(dims).zip(out) {
            let mut acc = _mm256_setzero_si256();
            for i in (0..body).step_by(16) {
                // SAFETY: i + 16 <= body <= dims = q.len() = row.len(), so both 16-value
                // loads are in bounds; the loads are unaligned ones.
                let (r, a) = unsafe {
                    (
                        _mm_loadu_si128(row.as_ptr().add(i).cast::<__m128i>()),
                        _mm256_loadu_si256(q.as_ptr().add(i).cast::<__m256i>()),
                    )
                };
                acc = _mm256_add_epi32(acc, _mm256_madd_epi16(_mm256_cvtepi8_epi16(r), a));
            }
            let mut lanes = [0i32; 8];
            // SAFETY: `lanes` is 32 bytes, the size of the store.
            unsafe { _mm256_storeu_si256(lanes.as_mut_ptr().cast::<__m256i>(), acc) };
            *s = lanes.iter().sum::<i32>() + super::dot_i8(&q[body..], &row[body..]);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dot_matches_the_naive_sum() {
        for n in [0, 1, 7, 8, 9, 384, 1000] {
            let a: Vec<f32> = (0..n).map(|i| (i as f32 * 0.37).sin()).collect();
            let b: Vec<f32> = (0..n).map(|i| (i as f32 * 0.11).cos()).collect();
            let naive: f32 = a.iter().zip(&b).map(|(x, y)| x * y).sum();
            assert!((dot(&a, &b) - naive).abs() < 1e-3, "n={n}");
        }
    }

    #[test]
    fn fast_kernel_matches_the_plain_dot_product() {
        use rand::{Rng, SeedableRng};
        let mut rng = rand::rngs::StdRng::seed_from_u64(5);
        for dims in [1, 15, 16, 17, 64, 384, 385] {
            let q: Vec<i16> = (0..dims).map(|_| rng.random_range(-127..=127)).collect();
            let rows: Vec<i8> = (0..dims * 9)
                .map(|_| rng.random_range(-127..=127))
                .collect();
            let mut fast = [0i32; 9];
            score_rows(&q, &rows, &mut fast);
            let plain: Vec<i32> = rows
                .chunks_exact(dims)
                .map(|row| {
                    q.iter()
                        .zip(row)
                        .map(|(&a, &b)| i32::from(a) * i32::from(b))
                        .sum()
                })
                .collect();
            assert_eq!(fast[..], plain[..], "dims={dims}");
        }
    }
}
