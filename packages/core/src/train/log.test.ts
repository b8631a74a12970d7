import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { TensorBoardWriter, crc32c, encodeEvent, readRecords } from './tensorboard.node.js';
import { ProgressBar, formatDuration } from './progress.js';
import { defaultLossSeries, lossCurveSpec, writeLossPlot } from './log.node.js';

/** A minimal protobuf reader (independent of the writer) for the Event fields we write. */
function decode(buf: Uint8Array): Map<number, (number | Uint8Array)[]> {
  const out = new Map<number, (number | Uint8Array)[]>();
  const dv = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  let o = 0;
  const varint = () => {
    let v = 0;
    let s = 1;
    for (;;) {
      const b = buf[o++]!;
      v += (b & 0x7f) * s;
      s *= 128;
      if (!(b & 0x80)) return v;
    }
  };
  while (o < buf.length) {
    const k = varint();
    const [field, wire] = [Math.floor(k / 8), k & 7];
    let v: number | Uint8Array;
    if (wire === 0) v = varint();
    else if (wire === 1) (v = dv.getFloat64(o, true)), (o += 8);
    else if (wire === 5) (v = dv.getFloat32(o, true)), (o += 4);
    else {
      const n = varint();
      v = buf.subarray(o, o + n);
      o += n;
    }
    out.set(field, [...(out.get(field) ?? []), v]);
  }
  return out;
}

describe('TensorBoard event files', () => {
  it('crc32c matches the standard check value', () => {
    expect(crc32c(new TextEncoder().encode('123456789')).toString(16)).toBe('e3069283');
  });

  it('writes a version record then one scalar Event per value, framed with valid CRCs', () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'vrepa-tb-'));
    const w = new TensorBoardWriter(dir);
    w.scalar('loss/total', 0.5, 1);
    w.scalar('lr', 1e-4, 300);
    w.close();
    expect(path.basename(w.file)).toMatch(/^events\.out\.tfevents\.\d+\..+\.\d+\.0$/);
    const recs = readRecords(w.file);
    expect(recs).toHaveLength(3);
    const v = decode(recs[0]!);
    expect(new TextDecoder().decode(v.get(3)![0] as Uint8Array)).toBe('brain.Event:2');
    const e = decode(recs[2]!);
    expect(e.get(2)).toEqual([300]);
    const summary = decode(e.get(5)![0] as Uint8Array);
    const value = decode(summary.get(1)![0] as Uint8Array);
    expect(new TextDecoder().decode(value.get(1)![0] as Uint8Array)).toBe('lr');
    expect(value.get(2)![0]).toBeCloseTo(1e-4, 10);
  });

  it('round-trips any step and float32 value', () => {
    fc.assert(
      fc.property(fc.nat(2 ** 40), fc.float({ noNaN: true, noDefaultInfinity: true }), (step, x) => {
        const e = decode(encodeEvent({ wallTime: 1, step, scalar: { tag: 't', value: x } }));
        const value = decode(decode(e.get(5)![0] as Uint8Array).get(1)![0] as Uint8Array);
        return e.get(2)![0] === step && Object.is(value.get(2)![0], Math.fround(x));
      }),
    );
  });
});

describe('progress and plots', () => {
  it('the progress line shows step, loss parts, lr, it/s and ETA', () => {
    const bar = new ProgressBar(10, 0, false);
    const line = bar.line({ step: 5, loss: 1.5, parts: { diff: 1, align: null }, lr: 1e-3 }, performance.now() + 1);
    expect(line).toMatch(/^step 5\/10 \[#{10}-{10}\] loss 1\.5000 \(diff 1\.0000, align nan\) lr 1\.00e-3 [\d.]+ it\/s ETA \S+/);
    expect(bar.line({ step: 2, loss: 0.25, lr: 1e-3 }, performance.now() + 1)).toMatch(/^step 2\/10 \[#{4}-{16}\] loss 0\.2500 lr /);
    expect(formatDuration(75)).toBe('1m15s');
    expect(formatDuration(7260)).toBe('2h01m');
  });

  it('writes a loss-curve PNG from log.jsonl (partial last line ignored, non-finite points dropped)', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'vrepa-plot-'));
    const log = path.join(dir, 'log.jsonl');
    fs.writeFileSync(log, [1, 2, 3].map((s) => JSON.stringify({ step: s, loss: 1 / s, loss_diff: 0.5 / s, loss_align: s === 2 ? null : 1 / s })).join('\n') + '\n{"step": 4, "lo');
    const rows = [{ step: 1, loss: 1, loss_diff: null, loss_align: 0.2, lr: 3 }];
    expect(defaultLossSeries(rows)).toEqual([['loss', 'loss'], ['loss_align', 'loss_align']]);
    const spec = lossCurveSpec(rows);
    expect((spec.data as { values: unknown[] }).values).toHaveLength(2);
    const named = lossCurveSpec(rows, [['loss_diff', 'diffusion'], ['lr', 'lr']], 'mine');
    expect(named.title).toBe('mine');
    expect((named.data as { values: unknown[] }).values).toEqual([{ step: 1, series: 'lr', value: 3 }]);
    const png = await writeLossPlot(log, path.join(dir, 'loss.png'));
    const b = fs.readFileSync(png);
    expect(b.subarray(1, 4).toString()).toBe('PNG');
    expect(b.readUInt32BE(16)).toBeGreaterThan(500); // width
  }, 30_000);
});
