/**
 * The memo of each teacher's weights hash (cache.ts computes it with Node's crypto; teacher.ts clears it
 * when weights are reloaded). Kept apart so the teacher model needs nothing of the Node-only cache.
 */
export const weightsHashMemo = new WeakMap<object, string>();

/** Forget a model's memoised weights hash (called when its weights are reloaded). */
export function forgetWeightsHash(model: object): void {
  weightsHashMemo.delete(model);
}
