/**
 * Plain 2D geometry of scene objects (independent of the physics engine): world poses of parts, signed distances
 * used by the renderer (anti-aliasing), the contact cross-check and the tracker tests.
 */

export type Vec2 = [number, number];

/** A collider/visual part in body-local coordinates. */
export type Part =
  | { kind: 'ball'; r: number; dx: number; dy: number }
  | { kind: 'box'; hx: number; hy: number; dx: number; dy: number; da: number }
  | { kind: 'poly'; points: Vec2[] };

export interface Pose {
  x: number;
  y: number;
  angle: number;
}

/** A part placed in the world: a circle or a convex polygon (counter-clockwise vertices). */
export type WorldShape = { kind: 'circle'; cx: number; cy: number; r: number } | { kind: 'poly'; points: Vec2[] };

export function worldShape(part: Part, pose: Pose): WorldShape {
  const c = Math.cos(pose.angle);
  const s = Math.sin(pose.angle);
  const tf = (x: number, y: number): Vec2 => [pose.x + c * x - s * y, pose.y + s * x + c * y];
  if (part.kind === 'ball') {
    const [cx, cy] = tf(part.dx, part.dy);
    return { kind: 'circle', cx, cy, r: part.r };
  }
  if (part.kind === 'box') {
    const ca = Math.cos(part.da);
    const sa = Math.sin(part.da);
    const local = ([
      [-part.hx, -part.hy],
      [part.hx, -part.hy],
      [part.hx, part.hy],
      [-part.hx, part.hy],
    ] as Vec2[]).map(([x, y]): Vec2 => [part.dx + ca * x - sa * y, part.dy + sa * x + ca * y]);
    return { kind: 'poly', points: local.map(([x, y]) => tf(x, y)) };
  }
  return { kind: 'poly', points: ccw(part.points.map(([x, y]) => tf(x, y))) };
}

function ccw(points: Vec2[]): Vec2[] {
  let area = 0;
  for (let i = 0; i < points.length; i++) {
    const [x1, y1] = points[i]!;
    const [x2, y2] = points[(i + 1) % points.length]!;
    area += x1 * y2 - x2 * y1;
  }
  return area >= 0 ? points : [...points].reverse();
}

/** Exact signed distance from a point to a convex CCW polygon (negative inside). */
export function polygonSignedDistance(points: Vec2[], px: number, py: number): number {
  let inside = true;
  let best = Infinity;
  let maxPlane = -Infinity;
  for (let i = 0; i < points.length; i++) {
    const [ax, ay] = points[i]!;
    const [bx, by] = points[(i + 1) % points.length]!;
    const ex = bx - ax;
    const ey = by - ay;
    const len = Math.hypot(ex, ey) || 1e-12;
    // outward normal of a CCW polygon: (ey, -ex)
    const plane = ((px - ax) * ey - (py - ay) * ex) / len;
    if (plane > 0) inside = false;
    maxPlane = Math.max(maxPlane, plane);
    const t = Math.max(0, Math.min(1, ((px - ax) * ex + (py - ay) * ey) / (len * len)));
    best = Math.min(best, Math.hypot(px - (ax + t * ex), py - (ay + t * ey)));
  }
  return inside ? maxPlane : best;
}

/** Signed distance between two world shapes (negative when they overlap; exact for circle pairs and circle–polygon, polygon pairs use vertex–edge distances / SAT depth). */
export function shapeDistance(a: WorldShape, b: WorldShape): number {
  if (a.kind === 'circle' && b.kind === 'circle') return Math.hypot(a.cx - b.cx, a.cy - b.cy) - a.r - b.r;
  if (a.kind === 'circle' && b.kind === 'poly') return polygonSignedDistance(b.points, a.cx, a.cy) - a.r;
  if (a.kind === 'poly' && b.kind === 'circle') return shapeDistance(b, a);
  const pa = (a as { points: Vec2[] }).points;
  const pb = (b as { points: Vec2[] }).points;
  let sep = -Infinity;
  for (const [p, q] of [
    [pa, pb],
    [pb, pa],
  ] as const) {
    for (let i = 0; i < p.length; i++) {
      const [ax, ay] = p[i]!;
      const [bx, by] = p[(i + 1) % p.length]!;
      const len = Math.hypot(bx - ax, by - ay) || 1e-12;
      const nx = (by - ay) / len;
      const ny = -(bx - ax) / len;
      let minProj = Infinity;
      for (const [x, y] of q) minProj = Math.min(minProj, (x - ax) * nx + (y - ay) * ny);
      sep = Math.max(sep, minProj);
    }
  }
  if (sep <= 0) return sep;
  let best = Infinity;
  for (const v of pa) best = Math.min(best, polygonSignedDistance(pb, v[0], v[1]));
  for (const v of pb) best = Math.min(best, polygonSignedDistance(pa, v[0], v[1]));
  return best;
}

/** Axis-aligned bounds [minX, minY, maxX, maxY] of a world shape. */
export function shapeBounds(s: WorldShape): [number, number, number, number] {
  if (s.kind === 'circle') return [s.cx - s.r, s.cy - s.r, s.cx + s.r, s.cy + s.r];
  const xs = s.points.map((p) => p[0]);
  const ys = s.points.map((p) => p[1]);
  return [Math.min(...xs), Math.min(...ys), Math.max(...xs), Math.max(...ys)];
}

/** Area of a part (for the tracker's size checks). */
export function partArea(p: Part): number {
  if (p.kind === 'ball') return Math.PI * p.r * p.r;
  if (p.kind === 'box') return 4 * p.hx * p.hy;
  let a = 0;
  for (let i = 0; i < p.points.length; i++) {
    const [x1, y1] = p.points[i]!;
    const [x2, y2] = p.points[(i + 1) % p.points.length]!;
    a += x1 * y2 - x2 * y1;
  }
  return Math.abs(a) / 2;
}

/** Area and centroid of a world shape: [cx, cy, area]. */
export function shapeCentroidArea(s: WorldShape): [number, number, number] {
  if (s.kind === 'circle') return [s.cx, s.cy, Math.PI * s.r * s.r];
  let a = 0;
  let cx = 0;
  let cy = 0;
  for (let i = 0; i < s.points.length; i++) {
    const [x1, y1] = s.points[i]!;
    const [x2, y2] = s.points[(i + 1) % s.points.length]!;
    const c = x1 * y2 - x2 * y1;
    a += c;
    cx += (x1 + x2) * c;
    cy += (y1 + y2) * c;
  }
  a /= 2;
  return [cx / (6 * a), cy / (6 * a), Math.abs(a)];
}

/** Area-weighted centroid and total area of several shapes (an object's parts): [cx, cy, area]. */
export function shapesCentroidArea(shapes: WorldShape[]): [number, number, number] {
  let a = 0;
  let x = 0;
  let y = 0;
  for (const s of shapes) {
    const [cx, cy, ar] = shapeCentroidArea(s);
    a += ar;
    x += cx * ar;
    y += cy * ar;
  }
  return [x / a, y / a, a];
}
