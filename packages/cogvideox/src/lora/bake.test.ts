import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { afterAll, describe, expect, it, vi } from 'vitest';
import { Rng, SafetensorsFile, writeSafetensors } from '@vrepa/core';
import { tinyConfig } from '../transformer/test-config.js';
import { CogVideoXTransformer3DModel, LORA_ADAPTER_METADATA_KEY, LoraLinear, addLora, bakeLoraFile, commands, loadLora, loraModules, mergeLora, saveLora } from '../index.js';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'vrepa-bake-'));
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

const base = () => new CogVideoXTransformer3DModel(tinyConfig(), { rng: Rng.fromSeed(1), align: false });

/** A model with trained-looking adapters (non-zero B) of rank r and alpha α. */
function adapted(rank: number, alpha: number): CogVideoXTransformer3DModel {
  const m = base();
  addLora(m, { rank, alpha }, { rng: Rng.fromSeed(2) });
  const r = Rng.fromSeed(3);
  for (const l of loraModules(m).values()) l.lora!.B.weight.value.assign(tf.mul(r.randomTensor(l.lora!.B.weight.shape, 'normal'), 0.1));
  return m;
}

/** The adapted linears' weights after loading `file` into the base model and merging (the project's merge). */
function mergedWeights(file: string): Map<string, Float32Array> {
  const m = base();
  try {
    loadLora(m, file);
    mergeLora(m);
    const out = new Map<string, Float32Array>();
    for (const [n, l] of loraModules(m)) out.set(n, l.weight.value.dataSync() as Float32Array);
    return out;
  } finally {
    m.dispose();
  }
}

/** The same tensors without any metadata: what a loader that ignores lora_adapter_metadata sees (α = r). */
function withoutMetadata(file: string, out: string): string {
  const st = SafetensorsFile.open(file);
  try {
    writeSafetensors(out, new Map(st.keys().map((k) => [k, st.read(k)] as const)));
  } finally {
    st.close();
  }
  return out;
}

/** Worst |a − b| over all weights, relative to each weight matrix's largest |a| (float32 rounding ≈ 1e-7). */
function maxRelDiff(a: Map<string, Float32Array>, b: Map<string, Float32Array>): number {
  let worst = 0;
  expect([...a.keys()]).toEqual([...b.keys()]);
  for (const [k, x] of a) {
    const scale = x.reduce((m, v) => Math.max(m, Math.abs(v)), 0);
    x.forEach((v, i) => (worst = Math.max(worst, Math.abs(v - b.get(k)![i]!) / scale)));
  }
  return worst;
}

describe('LoRA with α/r baked into lora_B', () => {
  for (const [rank, alpha, tol] of [[4, 2, 0], [4, 3, 1e-6]] as const) {
    it(`r ${rank}, α ${alpha}: the baked file and the metadata file give the same merged weights, with or without metadata`, () => {
      const m = adapted(rank, alpha);
      try {
        const plain = saveLora(m, path.join(tmp, `plain-${alpha}.safetensors`));
        const baked = path.join(tmp, `baked-${alpha}.safetensors`);
        expect(bakeLoraFile(plain, baked)).toEqual({ rank, alpha, scaled: 8 });
        const before = tf.memory().numTensors;
        const direct = saveLora(m, path.join(tmp, `direct-${alpha}.safetensors`), { bakeScale: true });
        expect(tf.memory().numTensors).toBe(before);

        // the file: lora_alpha = r in the metadata, B scaled by α/r, A unchanged
        const p = SafetensorsFile.open(plain);
        const b = SafetensorsFile.open(baked);
        const d = SafetensorsFile.open(direct);
        try {
          const meta = JSON.parse(b.metadata[LORA_ADAPTER_METADATA_KEY]!) as Record<string, unknown>;
          expect([meta['transformer.lora_alpha'], meta['transformer.r']]).toEqual([rank, rank]);
          expect(JSON.parse(d.metadata[LORA_ADAPTER_METADATA_KEY]!)).toEqual(meta);
          for (const k of p.keys()) {
            const want = Array.from(p.read(k).data as Float32Array, (v) => (k.endsWith('.lora_B.weight') ? Math.fround(v * (alpha / rank)) : v));
            const got = Array.from(b.read(k).data as Float32Array);
            expect(got.every((v, i) => Math.abs(v - want[i]!) <= tol * Math.abs(want[i]!))).toBe(true);
            const dgot = Array.from(d.read(k).data as Float32Array);
            expect(dgot.every((v, i) => Math.abs(v - got[i]!) <= tol * Math.abs(got[i]!) + 1e-12)).toBe(true);
          }
        } finally {
          p.close();
          b.close();
          d.close();
        }

        // merged weights: metadata file (α applied) = baked file = baked file read without its metadata
        const ref = mergedWeights(plain);
        expect(maxRelDiff(ref, mergedWeights(baked))).toBeLessThanOrEqual(tol);
        expect(maxRelDiff(ref, mergedWeights(direct))).toBeLessThanOrEqual(tol);
        expect(maxRelDiff(ref, mergedWeights(withoutMetadata(baked, path.join(tmp, `baked-nometa-${alpha}.safetensors`))))).toBeLessThanOrEqual(tol);

        // the problem it solves: the metadata file read by a loader that ignores metadata runs at scale 1,
        // i.e. its update W_merged − W is r/α times the trained one
        const wrong = mergedWeights(withoutMetadata(plain, path.join(tmp, `plain-nometa-${alpha}.safetensors`)));
        const w0 = base();
        try {
          let checked = 0;
          for (const [n, l] of w0.namedModules()) {
            if (!ref.has(n) || !(l instanceof LoraLinear)) continue;
            checked++;
            const w = l.weight.value.dataSync();
            const trained = ref.get(n)!;
            const got = wrong.get(n)!;
            let worst = 0;
            let size = 0;
            w.forEach((v, i) => {
              const want = v + (rank / alpha) * (trained[i]! - v);
              worst = Math.max(worst, Math.abs(got[i]! - want));
              size = Math.max(size, Math.abs(trained[i]! - v));
            });
            expect(size).toBeGreaterThan(1e-4); // the adapters do something
            expect(worst).toBeLessThan(1e-5);
          }
          expect(checked).toBe(ref.size);
        } finally {
          w0.dispose();
        }
      } finally {
        m.dispose();
      }
    });
  }

  it('a file without metadata needs α; vrepa lora bake writes the copy, refuses to overwrite', async () => {
    const m = adapted(4, 2);
    const plain = saveLora(m, path.join(tmp, 'cmd-plain.safetensors'));
    m.dispose();
    const bare = withoutMetadata(plain, path.join(tmp, 'cmd-bare.safetensors'));
    expect(() => bakeLoraFile(bare, path.join(tmp, 'x.safetensors'))).toThrow(/has no lora_adapter_metadata .* pass alpha/);
    expect(bakeLoraFile(bare, path.join(tmp, 'x.safetensors'), { alpha: 2 })).toEqual({ rank: 4, alpha: 2, scaled: 8 });
    expect(maxRelDiff(mergedWeights(plain), mergedWeights(path.join(tmp, 'x.safetensors')))).toBe(0);

    const cmd = commands.find((c) => c.name === 'lora bake')!;
    const out = vi.spyOn(process.stdout, 'write').mockImplementation(() => true);
    const err = vi.spyOn(process.stderr, 'write').mockImplementation(() => true);
    try {
      const dst = path.join(tmp, 'cmd-baked.safetensors');
      expect(await cmd.run(['--lora', plain, '--out', dst])).toBe(0);
      expect(String(out.mock.calls.at(-1)?.[0])).toMatch(/8 lora_B × α\/r = 2\/4; lora_alpha = 4/);
      expect(await cmd.run(['--lora', plain, '--out', dst])).toBe(2);
      expect(String(err.mock.calls.at(-1)?.[0])).toMatch(/exists \(pass --overwrite/);
      expect(await cmd.run(['--lora', plain, '--out', dst, '--overwrite'])).toBe(0);
      expect(await cmd.run(['--lora', plain, '--out', path.join(tmp, 'y.bin')])).toBe(2);
      expect(await cmd.run(['--lora', bare, '--out', path.join(tmp, 'z.safetensors')])).toBe(1);
      expect(String(err.mock.calls.at(-1)?.[0])).toMatch(/pass alpha \(--alpha\)/);
    } finally {
      out.mockRestore();
      err.mockRestore();
    }
  });
});
