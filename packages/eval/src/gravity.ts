/**
 * Reference-free gravity consistency of tracked trajectories (for clips with no ground truth to compare
 * against, e.g. generated from a caption alone). In a side view with gravity pointing down the image, nothing
 * in our scenes pushes an object downward harder than gravity: a downward acceleration well above g between
 * consecutive frames is a physics violation (teleports, objects yanked down). Upward accelerations
 * (bounces, support) and horizontal motion are legal and not counted.
 */

/** One object's centroid per frame in pixels (image y grows downward); undefined where not visible. */
export type Track = ([number, number] | undefined)[];

export interface GravityConsistency {
  /** Frame triples (f−1, f, f+1) with the object visible in all three. */
  triples: number;
  /** Triples whose downward acceleration exceeds `limit`. */
  violations: number;
  /** violations / triples (NaN without triples). */
  rate: number;
  /** The acceleration limit used (px/frame²). */
  limit: number;
}

/**
 * Count frame triples whose downward acceleration c_y[f+1] − 2c_y[f] + c_y[f−1] exceeds
 * `factor`·g + `slackPx` (tracking noise), with g in px/frame² (= 9.81 · pixels per metre / fps²).
 */
export function gravityConsistency(tracks: Track[], gPxPerFrame2: number, opts: { factor?: number; slackPx?: number } = {}): GravityConsistency {
  if (!(gPxPerFrame2 > 0)) throw new RangeError(`gravityConsistency: g must be > 0 px/frame², got ${gPxPerFrame2}.`);
  const limit = (opts.factor ?? 1.5) * gPxPerFrame2 + (opts.slackPx ?? 1);
  let triples = 0;
  let violations = 0;
  for (const tr of tracks)
    for (let f = 1; f + 1 < tr.length; f++) {
      const a = tr[f - 1];
      const b = tr[f];
      const c = tr[f + 1];
      if (!a || !b || !c) continue;
      triples++;
      if (c[1] - 2 * b[1] + a[1] > limit) violations++;
    }
  return { triples, violations, rate: triples ? violations / triples : NaN, limit };
}

/** g in pixels per frame² for a clip: 9.81 m/s² · pixels per metre / fps². */
export function gravityPxPerFrame2(pixelsPerMeter: number, fps: number): number {
  if (!(pixelsPerMeter > 0) || !(fps > 0)) throw new RangeError(`gravityPxPerFrame2: pixels per metre and fps must be > 0, got ${pixelsPerMeter} and ${fps}.`);
  return (9.81 * pixelsPerMeter) / (fps * fps);
}
