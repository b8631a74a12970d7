import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { encodeServerDef, serverDefForCluster } from './server-def.js';
import { parseTfConfig } from './tf-config.js';

// Bytes made by TensorFlow 2.21's own ServerDef class (__testdata__/make-server-defs.py).
const fixture = JSON.parse(fs.readFileSync(path.join(import.meta.dirname, '__testdata__', 'server-defs.json'), 'utf8')) as {
  tensorflow: string;
  cases: Array<{ tfConfig: object; hex: string }>;
};
const hex = (b: Uint8Array) => Buffer.from(b).toString('hex');

describe('serverDefForCluster', () => {
  it.each(fixture.cases.map((c, i) => [i, c] as const))('case %i is byte-identical to TensorFlow Python SerializeToString', (_i, c) => {
    const cluster = parseTfConfig(c.tfConfig)!;
    expect(hex(serverDefForCluster(cluster))).toBe(c.hex);
  });

  it('writes multi-byte varints and omits proto3 zeros', () => {
    // Hand-derived: port 300 = 0b1_0010_1100 → varint ac 02 after tag (6<<3|0)=0x30; task_index 0 omitted.
    const b = encodeServerDef({ cluster: { worker: ['h:300'] }, jobName: 'worker', taskIndex: 0, port: 300, collectiveGroupLeader: 'x', deviceFilters: [] });
    expect(hex(b.slice(-3))).toBe('30ac02');
    expect(hex(b)).not.toContain('1800');
  });
});
