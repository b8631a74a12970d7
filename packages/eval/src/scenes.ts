/**
 * Synthetic physics scenes (an offline Physion-OCP analogue): 2D side-view rigid-body scenarios simulated with
 * Rapier (deterministic build), a red "agent" ball and a yellow "patient" among distractors, rendered
 * anti-aliased to RGB frames, with the contact label taken from the simulation.
 *
 * World: metres, y up, gravity −9.81; the camera shows x ∈ [0, WORLD_WIDTH] and y ∈ [0, WORLD_WIDTH·H/W]; pixel
 * (u, v) = (x·s, H − y·s) with s = W / WORLD_WIDTH pixels per metre (u, v measured from the image's top-left
 * corner, pixel centres at +0.5). Frame 0 is the initial state; frame f is the state after f/fps seconds.
 */
import type { Collider, ColliderDesc, RigidBody, World } from '@dimforge/rapier2d-deterministic-compat';
import { partArea, polygonSignedDistance, shapeBounds, shapeDistance, worldShape, type Part, type Pose, type Vec2, type WorldShape } from './geometry.js';
import { Rng } from './rng.js';

export const SUBSETS = ['roll', 'contain', 'collide', 'drop', 'dominoes', 'support'] as const;
export type Subset = (typeof SUBSETS)[number];

export const WORLD_WIDTH = 8;
export const FLOOR_TOP = 0.4;
/** The engine reports a contact when the agent–patient contact distance is at most this (metres). */
export const CONTACT_DISTANCE = 0.005;
/** A no-contact clip is kept only if agent and patient stay at least this far apart (metres): no near misses. */
export const NEAR_MISS_MARGIN = 0.06;

export type RGB = [number, number, number];
export type Role = 'agent' | 'patient' | 'distractor' | 'static';

export interface SceneObject {
  id: string;
  role: Role;
  dynamic: boolean;
  parts: Part[];
  color: RGB;
  x: number;
  y: number;
  angle: number;
  vx: number;
  vy: number;
  omega: number;
  density: number;
  friction: number;
  restitution: number;
  linearDamping: number;
  angularDamping: number;
}

export interface SceneSpec {
  subset: Subset;
  seed: number;
  background: RGB;
  /** Floor colour (the floor is a static box under y = FLOOR_TOP). */
  floor: RGB;
  objects: SceneObject[];
  /** Subset-specific parameters worth recording (ramp angle, launch speed, …). */
  params: Record<string, number | string>;
}

export interface VideoOptions {
  width: number;
  height: number;
  frames: number;
  fps: number;
  /** Physics steps per frame (default: enough for ≥ 240 Hz). */
  substeps?: number;
}

export const DEFAULT_VIDEO: VideoOptions = { width: 240, height: 160, frames: 49, fps: 16 };

/** State of every object per frame: `[frames][objects]` → x, y, angle, vx, vy, omega (world units). */
export type ObjectState = [number, number, number, number, number, number];

export interface SimResult {
  states: ObjectState[][];
  contact: 0 | 1;
  /** First frame index at or after the state in which the engine first reports contact; −1 without contact. */
  firstContactFrame: number;
  /** Minimum geometric agent–patient distance over the recorded frames (metres). */
  minDistance: number;
}

// ───────────────────────────── scene sampling ─────────────────────────────

const DISTRACTOR_COLORS: RGB[] = [
  [60, 110, 200],
  [70, 160, 90],
  [140, 80, 170],
  [120, 120, 130],
  [40, 150, 160],
  [90, 70, 50],
];

function jitter(rng: Rng, c: RGB, amount: number): RGB {
  return c.map((v) => Math.max(0, Math.min(255, Math.round(v + rng.uniform(-amount, amount))))) as RGB;
}

function base(rng: Rng, o: Partial<SceneObject> & Pick<SceneObject, 'id' | 'role' | 'dynamic' | 'parts' | 'color' | 'x' | 'y'>): SceneObject {
  return {
    angle: 0,
    vx: 0,
    vy: 0,
    omega: 0,
    density: rng.uniform(0.5, 3),
    friction: rng.uniform(0.2, 0.9),
    restitution: rng.uniform(0, 0.5),
    linearDamping: 0,
    angularDamping: 0,
    ...o,
  };
}

const agentColor = (rng: Rng) => jitter(rng, [215, 30, 30], 15);
const patientColor = (rng: Rng) => jitter(rng, [235, 200, 25], 12);

function patientShape(rng: Rng): Part[] {
  return rng.next() < 0.5
    ? [{ kind: 'ball', r: rng.uniform(0.2, 0.4), dx: 0, dy: 0 }]
    : [{ kind: 'box', hx: rng.uniform(0.2, 0.45), hy: rng.uniform(0.2, 0.5), dx: 0, dy: 0, da: 0 }];
}

function partHalfHeight(p: Part): number {
  return p.kind === 'ball' ? p.r : p.kind === 'box' ? p.hy : 0;
}

function distractors(rng: Rng, count: number, xRange: [number, number], avoid: number[]): SceneObject[] {
  const out: SceneObject[] = [];
  for (let i = 0; i < count; i++) {
    let x = rng.uniform(...xRange);
    for (let t = 0; t < 10 && avoid.some((a) => Math.abs(a - x) < 0.7); t++) x = rng.uniform(...xRange);
    avoid.push(x);
    const ball = rng.next() < 0.35;
    const part: Part = ball ? { kind: 'ball', r: rng.uniform(0.12, 0.3), dx: 0, dy: 0 } : { kind: 'box', hx: rng.uniform(0.1, 0.35), hy: rng.uniform(0.12, 0.5), dx: 0, dy: 0, da: 0 };
    out.push(base(rng, { id: `distractor${i}`, role: 'distractor', dynamic: rng.next() < 0.6, parts: [part], color: rng.pick(DISTRACTOR_COLORS), x, y: FLOOR_TOP + partHalfHeight(part) }));
  }
  return out;
}

function sampleRoll(rng: Rng): Pick<SceneSpec, 'objects' | 'params'> {
  const theta = rng.uniform(12, 35) * (Math.PI / 180);
  const len = rng.uniform(1.4, 2.6);
  const x0 = rng.uniform(0.1, 0.5);
  const h = len * Math.tan(theta);
  const ramp = base(rng, {
    id: 'ramp', role: 'static', dynamic: false, color: jitter(rng, [150, 120, 90], 20), x: 0, y: 0,
    parts: [{ kind: 'poly', points: [[x0, FLOOR_TOP], [x0 + len, FLOOR_TOP], [x0, FLOOR_TOP + h]] }],
  });
  const r = rng.uniform(0.18, 0.32);
  const along = rng.uniform(0.15, 0.45) * len; // distance from the ramp's top along the slope
  const sx = x0 + along * Math.cos(theta);
  const sy = FLOOR_TOP + h - along * Math.sin(theta);
  const v0 = rng.uniform(0, 2.5);
  const agent = base(rng, {
    id: 'agent', role: 'agent', dynamic: true, parts: [{ kind: 'ball', r, dx: 0, dy: 0 }], color: agentColor(rng),
    x: sx + r * Math.sin(theta) + 0.01, y: sy + r * Math.cos(theta) + 0.01,
    vx: v0 * Math.cos(theta), vy: -v0 * Math.sin(theta),
    linearDamping: rng.uniform(0, 1.0), angularDamping: rng.uniform(0, 1.0),
  });
  const parts = patientShape(rng);
  const px = rng.uniform(x0 + len + 0.6, WORLD_WIDTH - 0.5);
  const patient = base(rng, { id: 'patient', role: 'patient', dynamic: true, parts, color: patientColor(rng), x: px, y: FLOOR_TOP + partHalfHeight(parts[0]!) });
  const ds = distractors(rng, rng.int(3), [x0 + len + 0.3, WORLD_WIDTH - 0.3], [px]);
  return { objects: [ramp, ...ds, patient, agent], params: { ramp_angle_deg: (theta * 180) / Math.PI, ramp_length: len, launch_speed: v0 } };
}

function sampleContain(rng: Rng): Pick<SceneSpec, 'objects' | 'params'> {
  const w = rng.uniform(0.8, 1.5);
  const wallH = rng.uniform(0.35, 0.8);
  const t = rng.uniform(0.1, 0.16);
  const cx = rng.uniform(3.8, 6.8);
  const parts: Part[] = [
    { kind: 'box', hx: w / 2, hy: t / 2, dx: 0, dy: t / 2, da: 0 },
    { kind: 'box', hx: t / 2, hy: wallH / 2, dx: -w / 2 + t / 2, dy: wallH / 2, da: 0 },
    { kind: 'box', hx: t / 2, hy: wallH / 2, dx: w / 2 - t / 2, dy: wallH / 2, da: 0 },
  ];
  const patient = base(rng, { id: 'patient', role: 'patient', dynamic: true, parts, color: patientColor(rng), x: cx, y: FLOOR_TOP + 0.001, density: rng.uniform(1, 4) });
  const r = rng.uniform(0.14, 0.26);
  const ax = rng.uniform(0.4, 1.6);
  const ay = rng.uniform(1.2, 3.6);
  const agent = base(rng, {
    id: 'agent', role: 'agent', dynamic: true, parts: [{ kind: 'ball', r, dx: 0, dy: 0 }], color: agentColor(rng),
    x: ax, y: ay, vx: rng.uniform(1, 5.5), vy: rng.uniform(-1, 3), linearDamping: rng.uniform(0, 0.8),
  });
  const ds = distractors(rng, rng.int(3), [ax + 0.8, WORLD_WIDTH - 0.3], [cx, cx - w / 2, cx + w / 2]);
  return { objects: [...ds, patient, agent], params: { container_width: w, wall_height: wallH, launch_vx: agent.vx, launch_vy: agent.vy } };
}

function sampleCollide(rng: Rng): Pick<SceneSpec, 'objects' | 'params'> {
  const r = rng.uniform(0.18, 0.34);
  const ax = rng.uniform(0.4, 1.6);
  const agent = base(rng, {
    id: 'agent', role: 'agent', dynamic: true, parts: [{ kind: 'ball', r, dx: 0, dy: 0 }], color: agentColor(rng),
    x: ax, y: FLOOR_TOP + r + 0.002, vx: rng.uniform(0.8, 5), omega: 0, linearDamping: rng.uniform(0, 1.2), angularDamping: rng.uniform(0, 1.2),
  });
  agent.omega = -agent.vx / r; // rolling, not sliding
  const parts = patientShape(rng);
  const px = rng.uniform(ax + 2.4, WORLD_WIDTH - 0.5);
  const patient = base(rng, { id: 'patient', role: 'patient', dynamic: true, parts, color: patientColor(rng), x: px, y: FLOOR_TOP + partHalfHeight(parts[0]!) });
  const ds = distractors(rng, rng.int(3), [ax + 0.6, WORLD_WIDTH - 0.3], [px, ax]);
  return { objects: [...ds, patient, agent], params: { launch_speed: agent.vx, agent_damping: agent.linearDamping } };
}

function sampleDrop(rng: Rng): Pick<SceneSpec, 'objects' | 'params'> {
  const r = rng.uniform(0.16, 0.3);
  const ax = rng.uniform(1, 7);
  const agent = base(rng, {
    id: 'agent', role: 'agent', dynamic: true, parts: [{ kind: 'ball', r, dx: 0, dy: 0 }], color: agentColor(rng),
    x: ax, y: rng.uniform(3, 4.6), vx: rng.uniform(-0.6, 0.6),
  });
  const parts = patientShape(rng);
  const px = Math.min(WORLD_WIDTH - 0.5, Math.max(0.5, ax + rng.uniform(-1.5, 1.5)));
  const patient = base(rng, { id: 'patient', role: 'patient', dynamic: true, parts, color: patientColor(rng), x: px, y: FLOOR_TOP + partHalfHeight(parts[0]!) });
  const planks: SceneObject[] = [];
  const nPlanks = 1 + rng.int(2);
  for (let i = 0; i < nPlanks; i++) {
    planks.push(
      base(rng, {
        id: `plank${i}`, role: 'static', dynamic: false, color: jitter(rng, [110, 90, 70], 20),
        parts: [{ kind: 'box', hx: rng.uniform(0.4, 0.9), hy: 0.04, dx: 0, dy: 0, da: 0 }],
        x: ax + rng.uniform(-1.2, 1.2), y: rng.uniform(1.2, 2.6), angle: rng.uniform(-0.6, 0.6),
      }),
    );
  }
  const ds = distractors(rng, rng.int(2), [0.4, WORLD_WIDTH - 0.4], [px]);
  return { objects: [...planks, ...ds, patient, agent], params: { drop_height: agent.y, planks: nPlanks } };
}

/** A chain of dominoes is tipped from the left: will the red domino hit the yellow one after it? */
function sampleDominoes(rng: Rng): Pick<SceneSpec, 'objects' | 'params'> {
  const objects: SceneObject[] = [];
  const before = rng.int(3);
  const friction = rng.uniform(0.5, 0.9);
  let x = rng.uniform(0.8, 2.2);
  const domino = (id: string, role: Role, color: RGB): SceneObject => {
    const hx = rng.uniform(0.05, 0.09);
    const hy = rng.uniform(0.28, 0.5);
    return base(rng, { id, role, dynamic: true, parts: [{ kind: 'box', hx, hy, dx: 0, dy: 0, da: 0 }], color, x, y: FLOOR_TOP + hy + 0.001, friction, restitution: rng.uniform(0, 0.2), density: rng.uniform(1, 3) });
  };
  const spacing = () => rng.uniform(0.3, 0.75);
  for (let i = 0; i < before; i++) {
    objects.push(domino(`domino${i}`, 'distractor', rng.pick(DISTRACTOR_COLORS)));
    x += spacing();
  }
  const agent = domino('agent', 'agent', agentColor(rng));
  const agentHeight = 2 * (agent.parts[0] as { hy: number }).hy;
  const gap = rng.uniform(0.5, 1.35) * agentHeight;
  x += gap;
  const patient = domino('patient', 'patient', patientColor(rng));
  objects.push(patient, agent);
  // the push: the first domino of the chain starts tipping to the right
  const first = before > 0 ? objects[0]! : agent;
  first.omega = -rng.uniform(1.5, 4);
  first.vx = rng.uniform(0, 0.6);
  const ds = distractors(rng, rng.int(2), [x + 0.6, WORLD_WIDTH - 0.3], []);
  return { objects: [...ds, ...objects], params: { dominoes_before_agent: before, gap_over_height: gap / agentHeight, push_omega: -first.omega } };
}

/**
 * A red block slides along a shelf towards its edge (friction decides whether it stays supported); a yellow
 * object waits on the floor below: will the block fall onto it?
 */
function sampleSupport(rng: Rng): Pick<SceneSpec, 'objects' | 'params'> {
  const shelfY = rng.uniform(1.1, 2.3);
  const shelfLen = rng.uniform(1.2, 2.6);
  const x0 = rng.uniform(0.2, 1.2);
  const edge = x0 + shelfLen;
  const shelf = base(rng, {
    id: 'shelf', role: 'static', dynamic: false, color: jitter(rng, [130, 105, 80], 20),
    parts: [{ kind: 'box', hx: shelfLen / 2, hy: 0.06, dx: 0, dy: 0, da: 0 }], x: x0 + shelfLen / 2, y: shelfY,
  });
  const hx = rng.uniform(0.15, 0.3);
  const hy = rng.uniform(0.12, 0.25);
  const mu = rng.uniform(0.1, 0.5);
  const agent = base(rng, {
    id: 'agent', role: 'agent', dynamic: true, parts: [{ kind: 'box', hx, hy, dx: 0, dy: 0, da: 0 }], color: agentColor(rng),
    x: x0 + hx + rng.uniform(0.05, 0.4), y: shelfY + 0.06 + hy + 0.001, vx: rng.uniform(1.5, 4.5), friction: mu, restitution: 0,
  });
  shelf.friction = mu;
  const parts = patientShape(rng);
  const px = Math.min(WORLD_WIDTH - 0.4, edge + rng.uniform(0.1, 1.3));
  const patient = base(rng, { id: 'patient', role: 'patient', dynamic: true, parts, color: patientColor(rng), x: px, y: FLOOR_TOP + partHalfHeight(parts[0]!) });
  const ds = distractors(rng, rng.int(2), [0.4, WORLD_WIDTH - 0.4], [px, px - 0.5, px + 0.5]);
  return { objects: [shelf, ...ds, patient, agent], params: { shelf_height: shelfY, shelf_length: shelfLen, push_vx: agent.vx, friction: mu, patient_offset: px - edge } };
}

const SAMPLERS: Record<Subset, (rng: Rng) => Pick<SceneSpec, 'objects' | 'params'>> = {
  dominoes: sampleDominoes,
  support: sampleSupport,
  roll: sampleRoll,
  contain: sampleContain,
  collide: sampleCollide,
  drop: sampleDrop,
};

/** The scene of `subset` for a clip seed (deterministic). */
export function sampleScene(subset: Subset, seed: number): SceneSpec {
  if (!(SUBSETS as readonly string[]).includes(subset)) throw new RangeError(`sampleScene: subset must be one of ${SUBSETS.join(', ')}, got '${subset}'.`);
  const rng = new Rng(seed);
  const background = jitter(rng, rng.pick([[225, 232, 240], [240, 235, 222], [228, 240, 228], [236, 228, 240]] as RGB[]), 10);
  const floor = jitter(rng, rng.pick([[95, 95, 100], [120, 100, 80], [80, 105, 85]] as RGB[]), 12);
  const { objects, params } = SAMPLERS[subset](rng);
  return { subset, seed, background, floor, objects, params };
}

// ───────────────────────────── simulation ─────────────────────────────

type Rapier = typeof import('@dimforge/rapier2d-deterministic-compat').default;
let RAPIER: Rapier;
let rapierReady: Promise<void> | undefined;
/** Load and initialise the Rapier wasm module once (loaded on first use: importing @vrepa/eval stays cheap). */
export function initPhysics(): Promise<void> {
  rapierReady ??= (async () => {
    const mod = await import('@dimforge/rapier2d-deterministic-compat');
    const r = ((mod as { default?: Rapier }).default ?? mod) as Rapier;
    await r.init();
    RAPIER = r;
  })();
  return rapierReady;
}

function poseOf(s: ObjectState | SceneObject): Pose {
  return Array.isArray(s) ? { x: s[0], y: s[1], angle: s[2] } : { x: s.x, y: s.y, angle: s.angle };
}

/** World shapes of an object at a pose. */
export function objectShapes(o: SceneObject, pose: Pose = poseOf(o)): WorldShape[] {
  return o.parts.map((p) => worldShape(p, pose));
}

/** Geometric agent–patient distance (metres) for one frame's states — independent of the engine's contacts. */
export function agentPatientDistance(spec: SceneSpec, frame: ObjectState[]): number {
  const ia = spec.objects.findIndex((o) => o.role === 'agent');
  const ip = spec.objects.findIndex((o) => o.role === 'patient');
  const a = objectShapes(spec.objects[ia]!, poseOf(frame[ia]!));
  const p = objectShapes(spec.objects[ip]!, poseOf(frame[ip]!));
  let best = Infinity;
  for (const s of a) for (const t of p) best = Math.min(best, shapeDistance(s, t));
  return best;
}

/** Simulate a scene with Rapier and record every object's state per frame and the agent–patient contact. */
export async function simulateScene(spec: SceneSpec, video: VideoOptions = DEFAULT_VIDEO): Promise<SimResult> {
  await initPhysics();
  const substeps = video.substeps ?? Math.max(1, Math.ceil(240 / video.fps));
  const world = new RAPIER.World({ x: 0, y: -9.81 });
  try {
    world.timestep = 1 / (video.fps * substeps);
    const height = (WORLD_WIDTH * video.height) / video.width;
    const fixed = world.createRigidBody(RAPIER.RigidBodyDesc.fixed());
    // floor and two side walls just outside the view
    world.createCollider(RAPIER.ColliderDesc.cuboid(WORLD_WIDTH, 0.5).setTranslation(WORLD_WIDTH / 2, FLOOR_TOP - 0.5).setFriction(0.7), fixed);
    world.createCollider(RAPIER.ColliderDesc.cuboid(0.5, height * 2).setTranslation(-0.5, height), fixed);
    world.createCollider(RAPIER.ColliderDesc.cuboid(0.5, height * 2).setTranslation(WORLD_WIDTH + 0.5, height), fixed);
    const bodies: RigidBody[] = [];
    const colliders: Collider[][] = [];
    for (const o of spec.objects) {
      const desc = (o.dynamic ? RAPIER.RigidBodyDesc.dynamic() : RAPIER.RigidBodyDesc.fixed())
        .setTranslation(o.x, o.y)
        .setRotation(o.angle)
        .setLinvel(o.vx, o.vy)
        .setAngvel(o.omega)
        .setLinearDamping(o.linearDamping)
        .setAngularDamping(o.angularDamping)
        .setCcdEnabled(o.dynamic);
      const body = world.createRigidBody(desc);
      bodies.push(body);
      colliders.push(
        o.parts.map((p) => {
          let cd: ColliderDesc;
          if (p.kind === 'ball') cd = RAPIER.ColliderDesc.ball(p.r).setTranslation(p.dx, p.dy);
          else if (p.kind === 'box') cd = RAPIER.ColliderDesc.cuboid(p.hx, p.hy).setTranslation(p.dx, p.dy).setRotation(p.da);
          else {
            const hull = RAPIER.ColliderDesc.convexHull(Float32Array.from(p.points.flat()));
            if (!hull) throw new Error(`simulateScene: object '${o.id}' has a degenerate polygon.`);
            cd = hull;
          }
          cd.setDensity(o.density).setFriction(o.friction).setRestitution(o.restitution);
          return world.createCollider(cd, body);
        }),
      );
    }
    const ia = spec.objects.findIndex((o) => o.role === 'agent');
    const ip = spec.objects.findIndex((o) => o.role === 'patient');
    const record = (): ObjectState[] =>
      bodies.map((b) => {
        const t = b.translation();
        const v = b.linvel();
        return [t.x, t.y, b.rotation(), v.x, v.y, b.angvel()];
      });
    const states: ObjectState[][] = [record()];
    // Rapier's step runs collision detection on the positions before it integrates, so contacts reported by
    // step g (1-based) belong to the state after g − 1 steps; the first contact frame is the first frame at or
    // after that state. A final detection pass checks the last state.
    let firstContactFrame = -1;
    let g = 0;
    const check = () => {
      if (firstContactFrame < 0 && touching(world, colliders[ia]!, colliders[ip]!)) firstContactFrame = Math.ceil((g - 1) / substeps);
    };
    for (let f = 1; f < video.frames; f++) {
      for (let s = 0; s < substeps; s++) {
        world.step();
        g++;
        check();
      }
      states.push(record());
    }
    if (firstContactFrame < 0) {
      world.step();
      g++;
      check();
      if (firstContactFrame >= video.frames) firstContactFrame = -1;
    }
    let minDistance = Infinity;
    for (const fr of states) minDistance = Math.min(minDistance, agentPatientDistance(spec, fr));
    return { states, contact: firstContactFrame >= 0 ? 1 : 0, firstContactFrame, minDistance };
  } finally {
    world.free();
  }
}

function touching(world: World, a: Collider[], b: Collider[]): boolean {
  let hit = false;
  for (const ca of a)
    for (const cb of b)
      world.contactPair(ca, cb, (m) => {
        for (let i = 0; i < m.numContacts(); i++) if (m.contactDist(i) <= CONTACT_DISTANCE) hit = true;
      });
  return hit;
}

// ───────────────────────────── rendering ─────────────────────────────

/** Pixels per metre for an image width. */
export function pixelsPerMeter(width: number): number {
  return width / WORLD_WIDTH;
}

/** World (x, y) → pixel (u, v) from the image's top-left corner. */
export function worldToPixel(x: number, y: number, video: Pick<VideoOptions, 'width' | 'height'>): Vec2 {
  const s = pixelsPerMeter(video.width);
  return [x * s, video.height - y * s];
}

/**
 * Render one frame to RGB bytes `[H, W, 3]`: background, floor, then every object in spec order, each shape
 * anti-aliased by its signed distance at the pixel centre (coverage = clamp(0.5 − d/px, 0, 1)).
 */
export function renderFrame(spec: SceneSpec, frame: ObjectState[] | undefined, video: Pick<VideoOptions, 'width' | 'height'>, out?: Uint8Array): Uint8Array {
  const { width: W, height: H } = video;
  const img = out ?? new Uint8Array(W * H * 3);
  const buf = new Float32Array(W * H * 3);
  const s = pixelsPerMeter(W);
  for (let i = 0; i < W * H; i++) {
    buf[3 * i] = spec.background[0];
    buf[3 * i + 1] = spec.background[1];
    buf[3 * i + 2] = spec.background[2];
  }
  const floorPoly: WorldShape = { kind: 'poly', points: [[-1, -1], [WORLD_WIDTH + 1, -1], [WORLD_WIDTH + 1, FLOOR_TOP], [-1, FLOOR_TOP]] };
  drawShape(buf, W, H, s, floorPoly, spec.floor);
  spec.objects.forEach((o, k) => {
    for (const sh of objectShapes(o, frame ? poseOf(frame[k]!) : poseOf(o))) drawShape(buf, W, H, s, sh, o.color);
  });
  for (let i = 0; i < img.length; i++) img[i] = Math.round(buf[i]!);
  return img;
}

function drawShape(buf: Float32Array, W: number, H: number, s: number, shape: WorldShape, color: RGB): void {
  const [x0, y0, x1, y1] = shapeBounds(shape);
  const u0 = Math.max(0, Math.floor(x0 * s) - 1);
  const u1 = Math.min(W - 1, Math.ceil(x1 * s) + 1);
  const v0 = Math.max(0, Math.floor(H - y1 * s) - 1);
  const v1 = Math.min(H - 1, Math.ceil(H - y0 * s) + 1);
  for (let v = v0; v <= v1; v++) {
    const wy = (H - (v + 0.5)) / s;
    for (let u = u0; u <= u1; u++) {
      const wx = (u + 0.5) / s;
      let d: number;
      if (shape.kind === 'circle') d = Math.hypot(wx - shape.cx, wy - shape.cy) - shape.r;
      else {
        // the largest edge-plane distance bounds the true distance from below outside and equals it inside:
        // far outside or deep inside needs no exact distance
        const plane = maxPlaneDistance(shape.points, wx, wy);
        d = plane > 1 / s || plane < -1 / s ? plane : polygonSignedDistance(shape.points, wx, wy);
      }
      const cov = Math.min(1, Math.max(0, 0.5 - d * s));
      if (cov <= 0) continue;
      const i = 3 * (v * W + u);
      buf[i] = buf[i]! + cov * (color[0] - buf[i]!);
      buf[i + 1] = buf[i + 1]! + cov * (color[1] - buf[i + 1]!);
      buf[i + 2] = buf[i + 2]! + cov * (color[2] - buf[i + 2]!);
    }
  }
}

function maxPlaneDistance(points: Vec2[], px: number, py: number): number {
  let m = -Infinity;
  for (let i = 0; i < points.length; i++) {
    const [ax, ay] = points[i]!;
    const [bx, by] = points[(i + 1) % points.length]!;
    const ex = bx - ax;
    const ey = by - ay;
    m = Math.max(m, ((px - ax) * ey - (py - ay) * ex) / (Math.hypot(ex, ey) || 1e-12));
  }
  return m;
}

/** Render all frames of a simulated clip, concatenated `[frames, H, W, 3]`. */
export function renderClip(spec: SceneSpec, sim: SimResult, video: VideoOptions): Uint8Array {
  const size = video.width * video.height * 3;
  const out = new Uint8Array(size * sim.states.length);
  sim.states.forEach((fr, f) => renderFrame(spec, fr, video, out.subarray(f * size, (f + 1) * size)));
  return out;
}

// ───────────────────────────── clips with labels ─────────────────────────────

export interface ClipOptions extends VideoOptions {
  /** Context frames K: the OCP question is asked after the first K frames; no contact may happen before frame K. */
  context: number;
}

export const DEFAULT_CONTEXT = 16;

export interface Clip {
  spec: SceneSpec;
  sim: SimResult;
  /** The seed the scene was sampled from (regenerates the clip). */
  seed: number;
}

/** Whether a simulated clip is usable: no contact before the context ends, and no near misses for label 0. */
export function clipIsValid(sim: SimResult, context: number): boolean {
  if (sim.contact) return sim.firstContactFrame >= context;
  return sim.minDistance >= NEAR_MISS_MARGIN;
}

/** Mix integers into a 32-bit clip seed. */
export function mixSeed(...xs: number[]): number {
  let h = 0x811c9dc5;
  for (const x of xs) {
    h = Math.imul(h ^ (x >>> 0), 0x01000193) >>> 0;
    h = Math.imul(h ^ (h >>> 15), 0x2c1b3c6d) >>> 0;
  }
  return h >>> 0;
}

/**
 * Sample scenes from derived seeds until one has the wanted label and is valid (see clipIsValid); returns the
 * clip and the seed that produced it.
 */
export async function generateLabelledClip(subset: Subset, baseSeed: number, want: 0 | 1, opts: ClipOptions, maxAttempts = 400): Promise<Clip> {
  for (let attempt = 0; attempt < maxAttempts; attempt++) {
    const seed = mixSeed(baseSeed, attempt);
    const spec = sampleScene(subset, seed);
    const sim = await simulateScene(spec, opts);
    if (sim.contact === want && clipIsValid(sim, opts.context)) return { spec, sim, seed };
  }
  throw new Error(`generateLabelledClip: no valid ${subset} clip with contact = ${want} after ${maxAttempts} attempts (seed ${baseSeed}); the frames/context settings may make it impossible.`);
}

/** Object areas (m²), for size-constancy checks. */
export function objectArea(o: SceneObject): number {
  return o.parts.reduce((a, p) => a + partArea(p), 0);
}
