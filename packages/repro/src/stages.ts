/**
 * The stage runner: every stage of the study (data, teacher, pretrained student, each arm × seed, each
 * measure) lives in `OUT/stages/<name>-<hash>/`, where the hash is that of the stage's config (its own
 * settings plus the hashes of the stages it reads). A stage is built in a temporary sibling folder and
 * renamed into place with a `done.json` marker (wall time, config) only when it finished: a crashed run
 * leaves no half stage, a re-run reuses every finished one, and a changed arm gets a new hash and reruns
 * alone.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { createHash } from 'node:crypto';

/** Stable JSON (sorted keys, undefined dropped): the form that is hashed. */
export function canonical(v: unknown): string {
  if (Array.isArray(v)) return `[${v.map(canonical).join(',')}]`;
  if (typeof v === 'object' && v !== null) {
    const o = v as Record<string, unknown>;
    return `{${Object.keys(o)
      .sort()
      .filter((k) => o[k] !== undefined)
      .map((k) => `${JSON.stringify(k)}:${canonical(o[k])}`)
      .join(',')}}`;
  }
  return JSON.stringify(v);
}

/** The first 12 hex digits of sha256(canonical(config)). */
export function configHash(config: unknown): string {
  return createHash('sha256').update(canonical(config)).digest('hex').slice(0, 12);
}

export interface StageRecord {
  name: string;
  hash: string;
  dir: string;
  /** wall seconds of the run that built it (from its done marker when reused) */
  seconds: number;
  /** CPU seconds (user + system, all threads) of this process while building it; a load-independent cost */
  cpuSeconds: number | null;
  /** true when this process found it finished and did not rebuild it */
  cached: boolean;
  config: unknown;
}

export interface StageRunnerOptions {
  /** the study's output folder; stages go to `<out>/stages` */
  out: string;
  log?: (msg: string) => void;
}

const DONE = 'done.json';

/** Runs and caches stages; records each stage's wall time. */
export class StageRunner {
  readonly records: StageRecord[] = [];
  private readonly log: (msg: string) => void;
  readonly root: string;

  constructor(readonly opts: StageRunnerOptions) {
    this.root = path.join(opts.out, 'stages');
    this.log = opts.log ?? ((m) => process.stderr.write(`${m}\n`));
    fs.mkdirSync(this.root, { recursive: true });
  }

  /** The folder a stage with this name and config lives in. */
  dirOf(name: string, config: unknown): string {
    if (!/^[a-z0-9][a-z0-9._-]*$/i.test(name)) throw new Error(`stage name '${name}' must be letters, digits, '.', '_' or '-'`);
    return path.join(this.root, `${name}-${configHash(config)}`);
  }

  /** Whether a finished stage with this name and config exists. */
  isDone(name: string, config: unknown): boolean {
    return fs.existsSync(path.join(this.dirOf(name, config), DONE));
  }

  /**
   * Run `build(tmpDir)` unless the stage is already finished; returns its folder. `build` writes into the
   * temporary folder it is given; the folder becomes the stage only when `build` resolves.
   */
  async run(name: string, config: unknown, build: (dir: string) => Promise<void> | void): Promise<StageRecord> {
    const dir = this.dirOf(name, config);
    const hash = path.basename(dir).slice(name.length + 1);
    const marker = path.join(dir, DONE);
    if (fs.existsSync(marker)) {
      const done = JSON.parse(fs.readFileSync(marker, 'utf8')) as { seconds: number; cpuSeconds?: number };
      const rec = { name, hash, dir, seconds: done.seconds, cpuSeconds: done.cpuSeconds ?? null, cached: true, config };
      this.records.push(rec);
      this.log(`stage ${name}-${hash}: cached (built in ${done.seconds.toFixed(1)} s)`);
      return rec;
    }
    // an unfinished folder of a crashed run (no marker) is discarded: stages restart whole
    if (fs.existsSync(dir)) fs.rmSync(dir, { recursive: true, force: true });
    const tmp = `${dir}.tmp-${process.pid}`;
    fs.rmSync(tmp, { recursive: true, force: true });
    fs.mkdirSync(tmp, { recursive: true });
    this.log(`stage ${name}-${hash}: running`);
    const t0 = performance.now();
    const cpu0 = process.cpuUsage();
    try {
      await build(tmp);
    } catch (e) {
      fs.rmSync(tmp, { recursive: true, force: true });
      throw e;
    }
    const seconds = (performance.now() - t0) / 1000;
    const cpu = process.cpuUsage(cpu0);
    const cpuSeconds = (cpu.user + cpu.system) / 1e6;
    fs.writeFileSync(path.join(tmp, 'config.json'), JSON.stringify(config, null, 2) + '\n');
    fs.writeFileSync(path.join(tmp, DONE), JSON.stringify({ name, hash, seconds, cpuSeconds, load: os.loadavg()[0], finished: new Date().toISOString() }) + '\n');
    fs.renameSync(tmp, dir);
    const rec = { name, hash, dir, seconds, cpuSeconds, cached: false, config };
    this.records.push(rec);
    this.log(`stage ${name}-${hash}: done in ${seconds.toFixed(1)} s (${cpuSeconds.toFixed(1)} CPU s, load ${os.loadavg()[0]!.toFixed(1)})`);
    return rec;
  }
}

/** Write a file atomically (temporary file in the same folder, then rename). */
export function writeFileAtomic(file: string, data: string | Uint8Array): void {
  fs.mkdirSync(path.dirname(file), { recursive: true });
  const tmp = `${file}.tmp-${process.pid}`;
  fs.writeFileSync(tmp, data);
  fs.renameSync(tmp, file);
}

export function readJson<T>(file: string): T {
  return JSON.parse(fs.readFileSync(file, 'utf8')) as T;
}
