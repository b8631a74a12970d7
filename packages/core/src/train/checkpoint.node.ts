/**
 * Training checkpoints (Node only), shared by every training loop (the finetuning trainer, teacher
 * pretraining): `DIR/checkpoints/step-<n>/` holding
 *   trainable.safetensors   the trainable parameters under their state-dict names
 *   optimizer.safetensors   AdamW moments: `exp_avg.<name>`, `exp_avg_sq.<name>`
 *   state.json              step, optimizer step, data position, RNG state, LR, NaN streak (any JSON: `S`)
 *   (extra files)           whatever the loop adds (e.g. the official pretrain `.pth`), hashed like the rest
 *   manifest.json           written last: format, step, config hash, sha256 + size of every file
 * Saving is atomic: everything goes to a temp folder (each file fsynced), the folder is renamed into
 * place and the parent fsynced; the previous checkpoints are untouched until the new one is complete,
 * and only then is `keep_last` rotation applied. Loading checks the manifest and every hash; a
 * corrupted or partial checkpoint is reported and the previous one is used.
 */
import fs from 'node:fs';
import path from 'node:path';
import { createHash } from 'node:crypto';
import * as tf from '@tensorflow/tfjs';
import { SafetensorsFile, writeSafetensors } from '../safetensors.js';
import type { RngState } from '../rng.js';

export const CHECKPOINT_FORMAT = 'vrepa-train-checkpoint/1';

export interface TrainState {
  /** completed optimizer steps */
  step: number;
  /** AdamW's step counter (steps actually applied: skipped non-finite steps do not count) */
  optimizerStep: number;
  /** data order position: epoch and the index of the next sample in that epoch's permutation */
  epoch: number;
  position: number;
  rng: RngState;
  lr: number;
  nanStreak: number;
  skippedSteps: number;
}

export interface CheckpointManifest {
  format: string;
  step: number;
  config_hash: string;
  /** sha256 over the sorted "name:shape" list of the trainable parameters */
  params_signature: string;
  files: Record<string, { sha256: string; bytes: number }>;
  created: string;
}

export class CheckpointCorruptError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'CheckpointCorruptError';
  }
}

export class CheckpointMismatchError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'CheckpointMismatchError';
  }
}

export function paramsSignature(params: Map<string, { shape: number[] }>): string {
  const list = [...params].map(([n, p]) => `${n}:${p.shape.join('x')}`).sort();
  return createHash('sha256').update(list.join('\n')).digest('hex');
}

function sha256File(file: string): { sha256: string; bytes: number } {
  const h = createHash('sha256');
  const fd = fs.openSync(file, 'r');
  const buf = Buffer.allocUnsafe(1 << 20);
  let bytes = 0;
  try {
    for (;;) {
      const n = fs.readSync(fd, buf, 0, buf.length, null);
      if (n === 0) break;
      h.update(buf.subarray(0, n));
      bytes += n;
    }
  } finally {
    fs.closeSync(fd);
  }
  return { sha256: h.digest('hex'), bytes };
}

function fsyncPath(p: string): void {
  let fd: number | undefined;
  try {
    fd = fs.openSync(p, 'r');
    fs.fsyncSync(fd);
  } catch {
    // directories cannot be fsynced on every platform; best effort
  } finally {
    if (fd !== undefined) fs.closeSync(fd);
  }
}

function writeFileSynced(file: string, text: string): void {
  const fd = fs.openSync(file, 'w');
  try {
    fs.writeSync(fd, text);
    fs.fsyncSync(fd);
  } finally {
    fs.closeSync(fd);
  }
}

export interface SaveCheckpointInput<S extends object = TrainState> {
  step: number;
  configHash: string;
  params: Map<string, tf.Tensor>;
  exp_avg: Map<string, tf.Tensor>;
  exp_avg_sq: Map<string, tf.Tensor>;
  state: S;
  /** extra files written into the checkpoint folder (e.g. the LoRA in diffusers format); hashed too */
  extra?: (dir: string) => void;
  /** test hook: called after the data files are written, before the manifest (simulates a crash / full disk) */
  beforeManifest?: (dir: string) => void;
}

export function checkpointsDir(out: string): string {
  return path.join(out, 'checkpoints');
}

/** Completed checkpoints (folders named step-<n>), newest first. */
export function listCheckpoints(out: string): { step: number; dir: string }[] {
  const root = checkpointsDir(out);
  if (!fs.existsSync(root)) return [];
  return fs
    .readdirSync(root)
    .map((n) => /^step-(\d+)$/.exec(n))
    .filter((m): m is RegExpExecArray => !!m)
    .map((m) => ({ step: Number(m[1]), dir: path.join(root, m[0]) }))
    .sort((a, b) => b.step - a.step);
}

/** Write a checkpoint atomically, then rotate to the newest `keepLast` (0 keeps all). Returns its folder. */
export function saveCheckpoint<S extends object = TrainState>(out: string, input: SaveCheckpointInput<S>, keepLast: number): string {
  const root = checkpointsDir(out);
  fs.mkdirSync(root, { recursive: true });
  const final = path.join(root, `step-${input.step}`);
  const tmp = path.join(root, `.tmp-step-${input.step}-${process.pid}`);
  fs.rmSync(tmp, { recursive: true, force: true });
  fs.mkdirSync(tmp);
  try {
    writeSafetensors(path.join(tmp, 'trainable.safetensors'), input.params, { metadata: { format: CHECKPOINT_FORMAT, step: String(input.step) } });
    const opt = new Map<string, tf.Tensor>();
    for (const [n, t] of input.exp_avg) opt.set(`exp_avg.${n}`, t);
    for (const [n, t] of input.exp_avg_sq) opt.set(`exp_avg_sq.${n}`, t);
    writeSafetensors(path.join(tmp, 'optimizer.safetensors'), opt, { metadata: { format: CHECKPOINT_FORMAT } });
    writeFileSynced(path.join(tmp, 'state.json'), JSON.stringify(input.state, null, 2) + '\n');
    input.extra?.(tmp);
    input.beforeManifest?.(tmp);
    const files: CheckpointManifest['files'] = {};
    for (const f of fs.readdirSync(tmp).sort()) {
      const full = path.join(tmp, f);
      if (!fs.statSync(full).isFile()) continue;
      fsyncPath(full);
      files[f] = sha256File(full);
    }
    const manifest: CheckpointManifest = {
      format: CHECKPOINT_FORMAT,
      step: input.step,
      config_hash: input.configHash,
      params_signature: paramsSignature(input.params),
      files,
      created: new Date().toISOString(),
    };
    writeFileSynced(path.join(tmp, 'manifest.json'), JSON.stringify(manifest, null, 2) + '\n');
    fsyncPath(tmp);
    // a checkpoint of the same step (re-saved after resuming from an older one) is replaced only now
    const old = fs.existsSync(final) ? path.join(root, `.old-step-${input.step}-${process.pid}`) : null;
    if (old) fs.renameSync(final, old);
    fs.renameSync(tmp, final);
    fsyncPath(root);
    if (old) fs.rmSync(old, { recursive: true, force: true });
  } catch (e) {
    fs.rmSync(tmp, { recursive: true, force: true });
    throw new Error(`saveCheckpoint: writing step ${input.step} into ${root} failed (${(e as Error).message}); the previous checkpoints are untouched`);
  }
  if (keepLast > 0) for (const c of listCheckpoints(out).slice(keepLast)) fs.rmSync(c.dir, { recursive: true, force: true });
  return final;
}

/** Read and verify a checkpoint's manifest and hashes (throws CheckpointCorruptError). */
export function verifyCheckpoint(dir: string): CheckpointManifest {
  const mfile = path.join(dir, 'manifest.json');
  if (!fs.existsSync(mfile)) throw new CheckpointCorruptError(`checkpoint ${dir}: manifest.json is missing (partial write?)`);
  let m: CheckpointManifest;
  try {
    m = JSON.parse(fs.readFileSync(mfile, 'utf8')) as CheckpointManifest;
  } catch (e) {
    throw new CheckpointCorruptError(`checkpoint ${dir}: manifest.json is not valid JSON (${(e as Error).message})`);
  }
  if (m.format !== CHECKPOINT_FORMAT) throw new CheckpointCorruptError(`checkpoint ${dir}: format ${JSON.stringify(m.format)}, expected ${CHECKPOINT_FORMAT}`);
  for (const f of ['trainable.safetensors', 'optimizer.safetensors', 'state.json']) {
    if (!m.files?.[f]) throw new CheckpointCorruptError(`checkpoint ${dir}: manifest lists no ${f}`);
  }
  for (const [f, want] of Object.entries(m.files)) {
    const full = path.join(dir, f);
    if (!fs.existsSync(full)) throw new CheckpointCorruptError(`checkpoint ${dir}: ${f} is missing`);
    const got = sha256File(full);
    if (got.bytes !== want.bytes || got.sha256 !== want.sha256) {
      throw new CheckpointCorruptError(`checkpoint ${dir}: ${f} does not match its manifest (sha256 ${got.sha256.slice(0, 12)}…, ${got.bytes} bytes; expected ${want.sha256.slice(0, 12)}…, ${want.bytes} bytes)`);
    }
  }
  return m;
}

export interface LoadedCheckpoint<S extends object = TrainState> {
  dir: string;
  manifest: CheckpointManifest;
  state: S;
  params: Map<string, tf.Tensor>;
  exp_avg: Map<string, tf.Tensor>;
  exp_avg_sq: Map<string, tf.Tensor>;
}

function readTensors(file: string): Map<string, tf.Tensor> {
  const f = SafetensorsFile.open(file);
  const out = new Map<string, tf.Tensor>();
  try {
    for (const name of f.keys()) out.set(name, f.tensor(name));
  } finally {
    f.close();
  }
  return out;
}

/**
 * The newest valid checkpoint in `out` (corrupted / partial ones are reported through `warn` and
 * skipped). A checkpoint of another config or model is an error (CheckpointMismatchError). Returns
 * null when there is none.
 */
export function loadLatestCheckpoint<S extends object = TrainState>(
  out: string,
  expect: { configHash: string; paramsSignature: string },
  warn: (msg: string) => void = () => {},
): LoadedCheckpoint<S> | null {
  for (const c of listCheckpoints(out)) {
    let manifest: CheckpointManifest;
    try {
      manifest = verifyCheckpoint(c.dir);
    } catch (e) {
      if (!(e instanceof CheckpointCorruptError)) throw e;
      warn(`${e.message}; using the previous checkpoint`);
      continue;
    }
    if (manifest.config_hash !== expect.configHash) {
      throw new CheckpointMismatchError(`checkpoint ${c.dir} was written with another config (hash ${manifest.config_hash.slice(0, 12)}…, this run ${expect.configHash.slice(0, 12)}…); use a new --out folder or the original config`);
    }
    if (manifest.params_signature !== expect.paramsSignature) {
      throw new CheckpointMismatchError(`checkpoint ${c.dir} holds the trainable parameters of another model (parameter names/shapes differ)`);
    }
    const state = JSON.parse(fs.readFileSync(path.join(c.dir, 'state.json'), 'utf8')) as S;
    const params = readTensors(path.join(c.dir, 'trainable.safetensors'));
    const opt = readTensors(path.join(c.dir, 'optimizer.safetensors'));
    const exp_avg = new Map<string, tf.Tensor>();
    const exp_avg_sq = new Map<string, tf.Tensor>();
    for (const [n, t] of opt) {
      if (n.startsWith('exp_avg_sq.')) exp_avg_sq.set(n.slice('exp_avg_sq.'.length), t);
      else if (n.startsWith('exp_avg.')) exp_avg.set(n.slice('exp_avg.'.length), t);
      else t.dispose();
    }
    return { dir: c.dir, manifest, state, params, exp_avg, exp_avg_sq };
  }
  return null;
}

export function disposeLoaded(c: LoadedCheckpoint<object>): void {
  tf.dispose([...c.params.values(), ...c.exp_avg.values(), ...c.exp_avg_sq.values()]);
}
