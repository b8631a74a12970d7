/** Readable shape checks: `expected [B, N, 768], got [2, 3600, 1024] for teacher tokens`. */
import * as tf from '@tensorflow/tfjs';

/** A dimension spec: a number must match exactly; a string names a symbol bound on first use; null is free. */
export type DimSpec = number | string | null;

export class ShapeError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ShapeError';
  }
}

const fmtSpec = (spec: DimSpec[]) => `[${spec.map((d) => (d === null ? '*' : String(d))).join(', ')}]`;

/**
 * Check `x`'s shape against `spec`; symbols (strings) are bound in `bindings` so that several checks
 * can share them. Returns the bindings. Throws one ShapeError naming `what`, the expected and the actual.
 */
export function assertShape(
  x: tf.Tensor | readonly number[],
  spec: DimSpec[],
  what: string,
  bindings: Record<string, number> = {},
): Record<string, number> {
  const shape = x instanceof tf.Tensor ? x.shape : x;
  const fail = (why?: string) => {
    const shown = spec.map((d) => (typeof d === 'string' && d in bindings ? `${d}=${bindings[d]}` : d === null ? '*' : String(d)));
    throw new ShapeError(`expected [${shown.join(', ')}], got [${shape.join(', ')}] for ${what}${why ? ` (${why})` : ''}`);
  };
  if (shape.length !== spec.length) fail(`rank ${shape.length}, expected rank ${spec.length}`);
  spec.forEach((d, i) => {
    const actual = shape[i]!;
    if (d === null) return;
    if (typeof d === 'number') {
      if (actual !== d) fail(`dim ${i}`);
    } else if (d in bindings) {
      if (bindings[d] !== actual) fail(`${d} is ${bindings[d]} elsewhere`);
    } else bindings[d] = actual;
  });
  return bindings;
}

export { fmtSpec as formatShapeSpec };

/** Throw unless `cond`; `message` is built lazily. */
export function check(cond: unknown, message: () => string): asserts cond {
  if (!cond) throw new Error(message());
}
