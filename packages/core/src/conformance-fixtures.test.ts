import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { afterAll, describe, expect, it } from 'vitest';
import { parseTolerance, runHandlersOnFixtures } from './conformance.js';
import { writeSafetensors } from './safetensors.js';

// A two-sub-case fixture set: y = 2·x, with sub-case 'b' holding a wrong reference.
const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'vrepa-conf-'));
const caseDir = path.join(dir, 'double');
fs.mkdirSync(caseDir);
fs.writeFileSync(
  path.join(caseDir, 'manifest.json'),
  JSON.stringify({ case: 'double', subcases: [{ name: 'a', params: { k: 2 }, tolerances: { y: 'absolute 1e-6' } }, { name: 'b', params: { k: 2 }, tolerances: { y: 'absolute 1e-6' } }] }),
);
writeSafetensors(path.join(caseDir, 'a.safetensors'), { x: tf.tensor1d([1, 2, 3]), y: tf.tensor1d([2, 4, 6]) });
writeSafetensors(path.join(caseDir, 'b.safetensors'), { x: tf.tensor1d([1, 2, 3]), y: tf.tensor1d([2, 4, 7]) });
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

const handlers = {
  double: async (ctx: any) => {
    ctx.compare('y', tf.mul(ctx.ref('x'), ctx.params.k), ctx.subcase.tolerances.y);
  },
};

describe('runHandlersOnFixtures', () => {
  it('registers the handlers, runs the cases and lists exactly the failing sub-cases', async () => {
    const r = await runHandlersOnFixtures(handlers, undefined, dir);
    expect(r.results.map((x) => [x.subcase, x.pass, x.tensors])).toEqual([
      ['a', true, 1],
      ['b', false, 1],
    ]);
    expect(r.failures).toHaveLength(1);
    expect(r.failures[0]).toMatch(/^double\/b: y ratio /);
    expect(r.table.split('\n')).toHaveLength(2);
    expect(r.table).toMatch(/^double\/a: ok, 1 tensors/);
  });

  it('a named case missing from the set is a failure, and no fixture set is a clear error', async () => {
    const r = await runHandlersOnFixtures(handlers, ['nope'], dir);
    expect(r.failures).toEqual([`nope/-: no case 'nope' under ${dir}`]);
    await expect(runHandlersOnFixtures(handlers, ['double'], '')).rejects.toThrow(/no fixture set found/);
  });
});

describe('parseTolerance', () => {
  it('"absolute A * max(F, max|want|)" scales by max|want| with floor F (hand values)', () => {
    const t = parseTolerance('absolute 1e-4 * max(1e-3, max|want|) (float32 backward)');
    expect(t.allowed(0, 1e-5)).toBeCloseTo(1e-7, 15);
    expect(t.allowed(0, 20)).toBeCloseTo(2e-3, 12);
    const one = parseTolerance('absolute 1e-5 * max(1, max|want|)');
    expect(one.allowed(0, 0.5)).toBeCloseTo(1e-5, 15);
    expect(one.allowed(0, 3)).toBeCloseTo(3e-5, 15);
  });
});
