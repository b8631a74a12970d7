/**
 * Checkpoint read throughput: safetensors (single file and a diffusers-style sharded index) against
 * `fs.readFile` of the same bytes, on a generated file of VREPA_BENCH_GB GiB (default 1) under
 * os.tmpdir(), deleted afterwards. The file sits in the page cache after it is written, so these are
 * memory-bandwidth numbers (what repeated loads see), not disk numbers. The lazy readers hold one
 * 16 MiB tensor at a time; readFile holds the whole file.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import {
  SafetensorsFile,
  convertCheckpoint,
  openCheckpoint,
  printBenchTable,
  timeIt,
  writeSafetensorsStream,
  type BenchRow,
  type SafetensorsDtype,
  type SafetensorsStreamEntry,
} from '../src/index.js';

const MiB = 2 ** 20;

function entries(count: number, bytesEach: number, dtype: SafetensorsDtype, prefix = 't'): SafetensorsStreamEntry[] {
  const esz = dtype === 'F32' ? 4 : 2;
  return Array.from({ length: count }, (_, i) => ({
    name: `${prefix}.${i}.weight`,
    dtype,
    shape: [bytesEach / esz / 1024, 1024],
    bytes: () => {
      const b = new Uint8Array(bytesEach);
      // cheap non-trivial content (finite floats of any dtype)
      const u16 = new Uint16Array(b.buffer);
      for (let k = 0; k < u16.length; k++) u16[k] = ((k * 2654435761 + i) >>> 20) & 0x3bff;
      return b;
    },
  }));
}

export async function run(): Promise<void> {
  const gib = Number(process.env.VREPA_BENCH_GB ?? 1);
  const total = Math.round(gib * 1024) * MiB;
  const tensorBytes = 16 * MiB;
  const n = Math.max(1, Math.floor(total / tensorBytes));
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'vrepa-bench-ckpt-'));
  const cleanup = () => fs.rmSync(dir, { recursive: true, force: true });
  process.once('SIGINT', () => {
    cleanup();
    process.exit(130);
  });
  try {
    const single = path.join(dir, 'model.safetensors');
    let t0 = performance.now();
    writeSafetensorsStream(single, entries(n, tensorBytes, 'F32'), { metadata: { format: 'pt' } });
    const writeMs = performance.now() - t0;
    const size = fs.statSync(single).size;
    const MB = size / 1e6;

    // The same tensors as 4 shards + index.json (diffusers layout).
    const shardDir = path.join(dir, 'sharded');
    fs.mkdirSync(shardDir);
    const weightMap: Record<string, string> = {};
    const shards = 4;
    for (let s = 0; s < shards; s++) {
      const file = `diffusion_pytorch_model-0000${s + 1}-of-0000${shards}.safetensors`;
      const part = entries(n, tensorBytes, 'F32').filter((_, i) => i % shards === s);
      writeSafetensorsStream(path.join(shardDir, file), part);
      for (const e of part) weightMap[e.name] = file;
    }
    const index = path.join(shardDir, 'diffusion_pytorch_model.safetensors.index.json');
    fs.writeFileSync(index, JSON.stringify({ metadata: { total_size: size }, weight_map: weightMap }));

    // Half-precision files (a quarter of the size) for the widening cost.
    const half = Math.max(1, Math.floor(n / 4));
    const bf16 = path.join(dir, 'bf16.safetensors');
    const f16 = path.join(dir, 'f16.safetensors');
    writeSafetensorsStream(bf16, entries(half, tensorBytes, 'BF16'));
    writeSafetensorsStream(f16, entries(half, tensorBytes, 'F16'));
    const halfMB = fs.statSync(bf16).size / 1e6;

    // Each pass holds one tensor at a time (the lazy readers never buffer the whole file).
    const lazyPass = (file: string) => {
      const f = SafetensorsFile.open(file);
      let sum = 0;
      for (const k of f.keys()) sum += f.read(k).data.length;
      f.close();
      return sum;
    };
    const rawPass = (file: string) => {
      const f = SafetensorsFile.open(file);
      for (const k of f.keys()) f.readBytes(k);
      f.close();
    };
    const ckptPass = (file: string) => {
      const c = openCheckpoint(file);
      for (const t of c.tensors.values()) t.read();
      c.close();
    };

    const opts = { warmup: 1, runs: 3, maxMs: 20_000 };
    const rows: BenchRow[] = [];
    const add = async (name: string, mb: number, fn: () => unknown) => {
      const t = await timeIt(fn, opts);
      rows.push({ name, MB: mb, 'median ms': t.medianMs, 'MB/s': mb / (t.medianMs / 1000) });
    };

    await add('fs.readFile (baseline)', MB, () => fs.promises.readFile(single).then(() => undefined));
    await add('safetensors readBytes, all tensors', MB, () => rawPass(single));
    await add('safetensors read → F32 arrays', MB, () => lazyPass(single));
    await add('openCheckpoint(single).read each', MB, () => ckptPass(single));
    await add(`openCheckpoint(index.json, ${shards} shards)`, MB, () => ckptPass(index));
    await add('BF16 file read → widened F32', halfMB, () => lazyPass(bf16));
    await add('F16 file read → widened F32', halfMB, () => lazyPass(f16));

    const base = rows[0]!['MB/s'] as number;
    for (const r of rows) r['× readFile'] = (r['MB/s'] as number) / base;

    // One conversion (sharded → one file): read + encode + write, timed once.
    const out = path.join(dir, 'converted.safetensors');
    t0 = performance.now();
    convertCheckpoint(index, out);
    const convMs = performance.now() - t0;
    fs.rmSync(out);
    rows.push({ name: 'convertCheckpoint(index → 1 file), once', MB, 'median ms': convMs, 'MB/s': MB / (convMs / 1000), '× readFile': MB / (convMs / 1000) / base });
    rows.push({ name: 'writeSafetensorsStream (generating), once', MB, 'median ms': writeMs, 'MB/s': MB / (writeMs / 1000), '× readFile': MB / (writeMs / 1000) / base });

    printBenchTable(`checkpoint I/O: ${(size / 2 ** 30).toFixed(2)} GiB safetensors, ${n} F32 tensors of 16 MiB (page-cached; numbers are noisy while others use the CPU)`, rows);
  } finally {
    cleanup();
  }
}
