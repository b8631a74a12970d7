/**
 * An independent float64 plain-JS reference of the TRD forms (DESIGN.md §4), written from the definitions
 * (counts of entries, not the weights used by the implementation), for tests only. Tokens are flat
 * row-major `[B, N, D]` arrays.
 */
export type Form64 = 'official' | 'paper' | 'spatial' | 'temporal';

export interface Pair64 {
  B: number;
  N: number;
  Ds: number;
  Dt: number;
  student: Float64Array | number[];
  teacher: Float64Array | number[];
  frames: number;
}

/** Rows normalised as torch F.normalize (x / max(‖x‖, 1e-12)). */
export function normalize64(x: ArrayLike<number>, rows: number, dim: number): Float64Array {
  const out = new Float64Array(rows * dim);
  for (let i = 0; i < rows; i++) {
    let s = 0;
    for (let k = 0; k < dim; k++) s += x[i * dim + k]! ** 2;
    const r = Math.max(Math.sqrt(s), 1e-12);
    for (let k = 0; k < dim; k++) out[i * dim + k] = x[i * dim + k]! / r;
  }
  return out;
}

/** [B, N, N] relation matrices in float64. */
export function relations64(x: ArrayLike<number>, B: number, N: number, D: number): Float64Array {
  const n = normalize64(x, B * N, D);
  const S = new Float64Array(B * N * N);
  for (let b = 0; b < B; b++)
    for (let i = 0; i < N; i++)
      for (let j = 0; j < N; j++) {
        let s = 0;
        for (let k = 0; k < D; k++) s += n[(b * N + i) * D + k]! * n[(b * N + j) * D + k]!;
        S[(b * N + i) * N + j] = s;
      }
  return S;
}

/** The loss of `form` with hinge margin `m`, float64. */
export function trd64(p: Pair64, m: number, form: Form64): number {
  const { B, N, frames: F } = p;
  const P = N / F;
  const Ss = relations64(p.student, B, N, p.Ds);
  const St = relations64(p.teacher, B, N, p.Dt);
  let same = 0;
  let off = 0;
  let nSame = 0;
  let nOff = 0;
  for (let b = 0; b < B; b++)
    for (let i = 0; i < N; i++)
      for (let j = 0; j < N; j++) {
        const k = (b * N + i) * N + j;
        const e = Math.max(Math.abs(Ss[k]! - St[k]!) - m, 0);
        if (Math.floor(i / P) === Math.floor(j / P)) {
          same += e;
          nSame++;
        } else {
          off += e;
          nOff++;
        }
      }
  switch (form) {
    case 'official':
      return (same + off) / (B * N * N);
    case 'spatial':
      return same / nSame;
    case 'temporal':
      // official ablation: same-frame entries zeroed, mean over all entries, times F/(F−1)
      return ((off / (B * N * N)) * F) / (F - 1);
    case 'paper':
      return same / nSame + (nOff > 0 ? off / nOff : 0);
  }
}

/** Smallest | |S_s − S_t| − m | over off-diagonal pairs (how close any pair sits to the hinge). */
export function kinkGap64(p: Pair64, m: number): number {
  const { B, N } = p;
  const Ss = relations64(p.student, B, N, p.Ds);
  const St = relations64(p.teacher, B, N, p.Dt);
  let gap = Infinity;
  for (let b = 0; b < B; b++)
    for (let i = 0; i < N; i++)
      for (let j = 0; j < N; j++) {
        if (i === j) continue;
        const k = (b * N + i) * N + j;
        gap = Math.min(gap, Math.abs(Math.abs(Ss[k]! - St[k]!) - m));
      }
  return gap;
}

/** Central finite differences of trd64 with respect to the student, step h. */
export function trdFiniteDiff64(p: Pair64, m: number, form: Form64, h = 1e-6): Float64Array {
  const x = Float64Array.from(p.student);
  const g = new Float64Array(x.length);
  for (let i = 0; i < x.length; i++) {
    const x0 = x[i]!;
    x[i] = x0 + h;
    const up = trd64({ ...p, student: x }, m, form);
    x[i] = x0 - h;
    const down = trd64({ ...p, student: x }, m, form);
    x[i] = x0;
    g[i] = (up - down) / (2 * h);
  }
  return g;
}

/** A seeded uniform generator (mulberry32) and standard normals from it (Box–Muller). */
export function rng(seed: number): { uniform: () => number; normal: () => number } {
  let a = seed >>> 0;
  const uniform = () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  const normal = () => {
    const u = Math.max(uniform(), 1e-12);
    return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * uniform());
  };
  return { uniform, normal };
}

/** A random d×d orthogonal matrix (Gram–Schmidt of a Gaussian matrix), row-major. */
export function randomOrthogonal(d: number, seed: number): Float64Array {
  const { normal } = rng(seed);
  const q = new Float64Array(d * d);
  for (let i = 0; i < d; i++) {
    for (;;) {
      const v = Array.from({ length: d }, normal);
      for (let j = 0; j < i; j++) {
        let dot = 0;
        for (let k = 0; k < d; k++) dot += v[k]! * q[j * d + k]!;
        for (let k = 0; k < d; k++) v[k] = v[k]! - dot * q[j * d + k]!;
      }
      const nrm = Math.sqrt(v.reduce((s, t) => s + t * t, 0));
      if (nrm < 1e-6) continue;
      for (let k = 0; k < d; k++) q[i * d + k] = v[k]! / nrm;
      break;
    }
  }
  return q;
}
