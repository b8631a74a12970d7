/**
 * The checkpoint API the inspect/convert commands use: @vrepa/core's `openCheckpoint` /
 * `convertCheckpoint` (safetensors, sharded index, .pth) when core provides them, otherwise a
 * safetensors-only fallback with the same shape.
 */
import fs from 'node:fs';
import path from 'node:path';
import * as core from '@vrepa/core';
import { SafetensorsFile, writeSafetensors, type HostTensor, type SafetensorsDtype } from '@vrepa/core';

export interface CliCheckpointTensor {
  name: string;
  dtype: SafetensorsDtype;
  shape: number[];
  read(): HostTensor;
}

export interface CliCheckpoint {
  path: string;
  format: string;
  metadata: Record<string, string>;
  tree?: unknown;
  tensors: Map<string, CliCheckpointTensor>;
  close(): void;
}

export interface OpenOptions {
  key?: string;
  stripPrefix?: string;
}

export type OutDtype = 'f32' | 'f16' | 'bf16';

const coreApi = core as unknown as Record<string, unknown>;

/** Open a checkpoint through core when it can (all formats), else safetensors only. */
export function openCheckpointForCli(file: string, opts: OpenOptions = {}): CliCheckpoint {
  const open = coreApi.openCheckpoint as ((p: string, o?: OpenOptions) => CliCheckpoint) | undefined;
  if (typeof open === 'function') return open(file, opts);
  return openSafetensorsFallback(file, opts);
}

function openSafetensorsFallback(file: string, opts: OpenOptions): CliCheckpoint {
  if (!file.endsWith('.safetensors')) {
    throw new Error(`${file}: this build of @vrepa/core reads only .safetensors files (no openCheckpoint for .pth / sharded index)`);
  }
  if (opts.key) throw new Error(`--key ${opts.key}: a safetensors file is a flat state dict; there is nothing to select`);
  const f = SafetensorsFile.open(file);
  const tensors = new Map<string, CliCheckpointTensor>();
  const prefix = opts.stripPrefix;
  if (prefix && !f.keys().some((k) => k.startsWith(prefix))) {
    f.close();
    throw new Error(`--strip-prefix '${prefix}': no tensor name in ${file} starts with it (first names: ${f.keys().slice(0, 4).join(', ')})`);
  }
  for (const [name, info] of f.tensors) {
    const out = prefix && name.startsWith(prefix) ? name.slice(prefix.length) : name;
    tensors.set(out, { name: out, dtype: info.dtype, shape: info.shape, read: () => f.read(name) });
  }
  return { path: file, format: 'safetensors', metadata: f.metadata, tensors, close: () => f.close() };
}

/** Convert IN to one safetensors file OUT (atomic: nothing is written when the input is refused). */
export function convertForCli(input: string, output: string, opts: OpenOptions & { dtype?: OutDtype }): void {
  const convert = coreApi.convertCheckpoint as ((i: string, o: string, x: OpenOptions & { dtype?: OutDtype }) => unknown) | undefined;
  if (typeof convert === 'function') {
    convert(input, output, opts);
    return;
  }
  const ck = openCheckpointForCli(input, opts);
  try {
    const all = new Map<string, HostTensor>();
    for (const [name, t] of ck.tensors) all.set(name, t.read());
    const dtype = opts.dtype === 'f16' ? 'F16' : opts.dtype === 'bf16' ? 'BF16' : 'F32';
    // writeSafetensors writes to a temp file and renames, so a failure leaves no partial OUT.
    const floats = new Map<string, HostTensor>();
    for (const [name, h] of all) {
      floats.set(name, /^(F16|BF16|F32|F64)$/.test(h.dtype) ? { dtype, shape: h.shape, data: Float32Array.from(h.data as Float32Array) } : h);
    }
    fs.mkdirSync(path.dirname(path.resolve(output)), { recursive: true });
    writeSafetensors(output, floats, { metadata: { ...ck.metadata, format: 'pt' } });
  } finally {
    ck.close();
  }
}
