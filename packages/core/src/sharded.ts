/**
 * Sharded safetensors checkpoints, the layout diffusers and transformers write:
 * `<name>.safetensors.index.json` = `{"metadata": {...}, "weight_map": {tensor name: shard file name}}`
 * next to the shard files. Every shard's header is read and checked at open time (cheap); tensor data is
 * read lazily from its shard.
 */
import fs from 'node:fs';
import path from 'node:path';
import { SafetensorsError, SafetensorsFile, type HostTensor, type TensorInfo } from './safetensors.js';

export class ShardedSafetensors {
  private constructor(
    readonly path: string,
    readonly metadata: Record<string, string>,
    /** tensor name → shard file name (as in the index) */
    readonly weightMap: Map<string, string>,
    private shards: Map<string, SafetensorsFile>,
  ) {}

  /** Open `*.safetensors.index.json`. Missing shards, or tensors absent from their shard, are clear errors. */
  static open(indexPath: string): ShardedSafetensors {
    let text: string;
    try {
      text = fs.readFileSync(indexPath, 'utf8');
    } catch (e) {
      throw new SafetensorsError(indexPath, `cannot read the shard index (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`);
    }
    let json: unknown;
    try {
      json = JSON.parse(text);
    } catch (e) {
      throw new SafetensorsError(indexPath, `shard index is not valid JSON (${(e as Error).message})`);
    }
    const wm = (json as { weight_map?: unknown })?.weight_map;
    if (typeof wm !== 'object' || wm === null || Array.isArray(wm)) {
      throw new SafetensorsError(indexPath, 'shard index has no "weight_map" object (expected {"weight_map": {tensor name: shard file}})');
    }
    const metadata: Record<string, string> = {};
    const meta = (json as { metadata?: unknown }).metadata;
    if (meta && typeof meta === 'object' && !Array.isArray(meta)) {
      for (const [k, v] of Object.entries(meta)) metadata[k] = typeof v === 'string' ? v : JSON.stringify(v);
    }
    const dir = path.dirname(indexPath);
    const weightMap = new Map<string, string>();
    const byShard = new Map<string, string[]>();
    for (const [name, shard] of Object.entries(wm as Record<string, unknown>)) {
      if (typeof shard !== 'string' || shard === '') throw new SafetensorsError(indexPath, `weight_map['${name}'] is ${JSON.stringify(shard)}, expected a shard file name`);
      const resolved = path.resolve(dir, shard);
      if (path.isAbsolute(shard) || path.relative(dir, resolved).startsWith('..')) {
        throw new SafetensorsError(indexPath, `weight_map['${name}'] names shard '${shard}' outside the index's folder`);
      }
      weightMap.set(name, shard);
      byShard.set(shard, [...(byShard.get(shard) ?? []), name]);
    }
    const shards = new Map<string, SafetensorsFile>();
    try {
      for (const [shard, names] of byShard) {
        const p = path.join(dir, shard);
        if (!fs.existsSync(p)) {
          throw new SafetensorsError(indexPath, `shard '${shard}' is missing (expected at ${p}; it holds ${names.length} tensors, e.g. '${names[0]}')`);
        }
        const f = SafetensorsFile.open(p);
        shards.set(shard, f);
        const absent = names.filter((n) => !f.has(n));
        if (absent.length) {
          throw new SafetensorsError(indexPath, `shard '${shard}' lacks ${absent.length} tensors the weight_map puts there, e.g. '${absent[0]}'`);
        }
      }
    } catch (e) {
      for (const f of shards.values()) f.close();
      throw e;
    }
    return new ShardedSafetensors(indexPath, metadata, weightMap, shards);
  }

  keys(): string[] {
    return [...this.weightMap.keys()];
  }

  has(name: string): boolean {
    return this.weightMap.has(name);
  }

  /** The shard file that holds `name`. */
  shardOf(name: string): SafetensorsFile {
    const shard = this.weightMap.get(name);
    if (shard === undefined) throw new SafetensorsError(this.path, `no tensor named '${name}' in the weight_map`);
    return this.shards.get(shard)!;
  }

  info(name: string): TensorInfo {
    return this.shardOf(name).info(name);
  }

  read(name: string): HostTensor {
    return this.shardOf(name).read(name);
  }

  close(): void {
    for (const f of this.shards.values()) f.close();
  }
}

/** The `*.safetensors.index.json` in a folder, if there is exactly one. */
export function findShardIndex(dir: string): string | undefined {
  const idx = fs.readdirSync(dir).filter((f) => f.endsWith('.safetensors.index.json'));
  return idx.length === 1 ? path.join(dir, idx[0]!) : undefined;
}
