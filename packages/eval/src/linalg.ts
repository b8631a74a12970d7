/** Small dense float64 linear algebra for the kernel probe (row-major Float64Array). */

/**
 * In-place Cholesky factorisation A = L·Lᵀ of a symmetric positive-definite m×m matrix (row-major; only the lower
 * triangle is read; L overwrites it). Throws when a pivot is not positive (the matrix is not positive definite).
 */
export function choleskyInPlace(a: Float64Array, m: number): void {
  for (let j = 0; j < m; j++) {
    const rj = j * m;
    const s = a[rj + j]! - rowDot(a, rj, rj, j);
    if (!(s > 0)) throw new Error(`cholesky: pivot ${j} of ${m} is ${s}; the matrix is not positive definite.`);
    const d = Math.sqrt(s);
    a[rj + j] = d;
    const inv = 1 / d;
    for (let i = j + 1; i < m; i++) {
      const ri = i * m;
      a[ri + j] = (a[ri + j]! - rowDot(a, ri, rj, j)) * inv;
    }
  }
}

/** Σ_{k<len} a[p+k]·a[q+k], with four independent accumulators (the add latency, not the loads, bounds a plain loop). */
function rowDot(a: Float64Array, p: number, q: number, len: number): number {
  let s0 = 0;
  let s1 = 0;
  let s2 = 0;
  let s3 = 0;
  let k = 0;
  for (; k + 3 < len; k += 4) {
    s0 += a[p + k]! * a[q + k]!;
    s1 += a[p + k + 1]! * a[q + k + 1]!;
    s2 += a[p + k + 2]! * a[q + k + 2]!;
    s3 += a[p + k + 3]! * a[q + k + 3]!;
  }
  for (; k < len; k++) s0 += a[p + k]! * a[q + k]!;
  return s0 + s1 + (s2 + s3);
}

/** Solve L·Lᵀ x = b given the lower Cholesky factor (row-major); returns x. */
export function choleskySolve(l: Float64Array, m: number, b: ArrayLike<number>): Float64Array {
  const y = Float64Array.from(b);
  for (let i = 0; i < m; i++) {
    const ri = i * m;
    let s = y[i]!;
    for (let k = 0; k < i; k++) s -= l[ri + k]! * y[k]!;
    y[i] = s / l[ri + i]!;
  }
  for (let i = m - 1; i >= 0; i--) {
    let s = y[i]!;
    for (let k = i + 1; k < m; k++) s -= l[k * m + i]! * y[k]!;
    y[i] = s / l[i * m + i]!;
  }
  return y;
}

/** y = A·x for a row-major m×m matrix. */
export function matVec(a: Float64Array, m: number, x: ArrayLike<number>): Float64Array {
  const y = new Float64Array(m);
  for (let i = 0; i < m; i++) {
    const ri = i * m;
    let s = 0;
    for (let k = 0; k < m; k++) s += a[ri + k]! * x[k]!;
    y[i] = s;
  }
  return y;
}

export function dot(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let s = 0;
  for (let i = 0; i < a.length; i++) s += a[i]! * b[i]!;
  return s;
}
