/** Test helpers: synthetic fixture directories written with the real safetensors writer. */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { writeSafetensors, type ConformanceHandler, type HostTensor } from '@vrepa/core';
import type { LoadedPackage } from './packages.js';

const made: string[] = [];

/** A fresh temp dir, removed by `removeTempDirs()` (call it in afterAll). */
export function tempDir(prefix = 'vrepa-cli-'): string {
  const d = fs.mkdtempSync(path.join(os.tmpdir(), prefix));
  made.push(d);
  return d;
}

export function removeTempDirs(): void {
  for (const d of made.splice(0)) fs.rmSync(d, { recursive: true, force: true });
}

export interface SyntheticSubcase {
  name: string;
  scale: number;
  x: number[];
  /** The stored reference y (defaults to scale·x). */
  y?: number[];
  tolerance: string;
}

/** Write `<dir>/<caseName>/manifest.json` and one safetensors file per sub-case. */
export function writeSyntheticCase(dir: string, caseName: string, subcases: SyntheticSubcase[]): string {
  const caseDir = path.join(dir, caseName);
  fs.mkdirSync(caseDir, { recursive: true });
  const manifest = {
    case: caseName,
    notes: 'synthetic: y = scale · x',
    subcases: subcases.map((s) => ({
      name: s.name,
      params: { scale: s.scale },
      tensors: { x: { shape: [s.x.length], dtype: 'F32' }, y: { shape: [s.x.length], dtype: 'F32' } },
      tolerances: { y: s.tolerance },
    })),
  };
  fs.writeFileSync(path.join(caseDir, 'manifest.json'), JSON.stringify(manifest, null, 2));
  for (const s of subcases) {
    const x: HostTensor = { dtype: 'F32', shape: [s.x.length], data: Float32Array.from(s.x) };
    const y: HostTensor = { dtype: 'F32', shape: [s.x.length], data: Float32Array.from(s.y ?? s.x.map((v) => v * s.scale)) };
    writeSafetensors(path.join(caseDir, `${s.name}.safetensors`), { x, y });
  }
  return caseDir;
}

/** The handler of the synthetic cases: everything from the manifest (scale, tolerance) and the file (x). */
export const scaleHandler: ConformanceHandler = (ctx) => {
  const x = ctx.file.read('x').data as Float32Array;
  const scale = Number(ctx.params.scale);
  const y = Array.from(x, (v) => v * scale);
  ctx.compare('y', y, ctx.subcase.tolerances.y);
};

export function fakePackage(name: string, module: Record<string, unknown>): LoadedPackage {
  return { name, module };
}
