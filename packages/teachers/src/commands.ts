/** `vrepa cache ls|verify|prune`: manage the teacher FeatureCache on disk. */
import { commandArgs, type VrepaCommand } from '@vrepa/core';
import { FeatureCache, defaultCacheDir } from './cache.js';
import { teacherPretrainCommand } from './pretrain-command.node.js';

/** `12G`, `500M`, `1.5K`, `1024` → bytes. */
export function parseSize(text: string): number {
  const m = /^\s*(\d+(?:\.\d+)?)\s*([kmgt]?)(i?b)?\s*$/i.exec(text);
  if (!m) throw new Error(`size '${text}' is not understood (examples: 500M, 12G, 1048576)`);
  const mult = { '': 1, k: 1024, m: 1024 ** 2, g: 1024 ** 3, t: 1024 ** 4 }[m[2]!.toLowerCase() as '' | 'k' | 'm' | 'g' | 't'];
  return Math.floor(Number(m[1]) * mult);
}

/** `30d`, `12h`, `45m`, `90s` → milliseconds. */
export function parseAge(text: string): number {
  const m = /^\s*(\d+(?:\.\d+)?)\s*([smhd])\s*$/i.exec(text);
  if (!m) throw new Error(`age '${text}' is not understood (examples: 30d, 12h, 45m)`);
  const mult = { s: 1e3, m: 6e4, h: 3.6e6, d: 8.64e7 }[m[2]!.toLowerCase() as 's' | 'm' | 'h' | 'd'];
  return Number(m[1]) * mult;
}

export function formatBytes(n: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let i = 0;
  let v = n;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return `${i === 0 ? v : v.toFixed(1)} ${units[i]}`;
}

type Out = { log: (s: string) => void; error: (s: string) => void };
const defaultOut: Out = { log: (s) => console.log(s), error: (s) => console.error(s) };

function parse(command: string, usage: string, argv: string[], options: Record<string, { type: 'string' | 'boolean' }>, out: Out): { values: Record<string, string | boolean | undefined>; dir: string } | number {
  const line = (write: (s: string) => void) => (text: string) => write(text.replace(/\n$/, ''));
  const p = commandArgs<Record<string, string | boolean | undefined>>(command, argv, { ...options, dir: { type: 'string' } }, usage, { output: { out: line(out.log), err: line(out.error) } });
  if (typeof p === 'number') return p;
  if (p.positionals.length > 1) {
    out.error(`vrepa ${command}: unexpected argument '${p.positionals[1]}'\n${usage}`);
    return 2;
  }
  return { values: p.values, dir: p.str('dir') ?? p.positionals[0] ?? defaultCacheDir() };
}

const lsUsage = `vrepa cache ls [DIR] [--json]

List the teacher feature cache entries (key, size, age) and the total size.
DIR defaults to $VREPA_CACHE_DIR or ~/.cache/vrepa/features.`;

const verifyUsage = `vrepa cache verify [DIR] [--remove] [--json]

Read every entry and check its header, key, grid and checksum; report the unreadable ones.
--remove deletes them (they are recomputed on next use). Exit code 1 if any entry is bad (and kept).`;

const pruneUsage = `vrepa cache prune [DIR] [--max-size SIZE] [--older-than AGE] [--dry-run]

Remove entries older than AGE (e.g. 30d, 12h), then the oldest until the cache is at most SIZE
(e.g. 20G, 500M); also stale temp files of interrupted writes. --dry-run only lists them.`;

export function cacheLsCommand(out: Out = defaultOut): VrepaCommand {
  return {
    name: 'cache ls',
    summary: 'List the teacher feature cache (entries, sizes, total)',
    usage: lsUsage,
    async run(argv) {
      const p = parse('cache ls', lsUsage, argv, { json: { type: 'boolean' } }, out);
      if (typeof p === 'number') return p;
      const cache = new FeatureCache({ dir: p.dir });
      const list = cache.list();
      const total = list.reduce((s, e) => s + e.bytes, 0);
      if (p.values.json) {
        out.log(JSON.stringify({ dir: cache.dir, entries: list.map((e) => ({ key: e.key, bytes: e.bytes, mtime: new Date(e.mtimeMs).toISOString() })), total_bytes: total }));
        return 0;
      }
      const now = Date.now();
      for (const e of list) out.log(`${e.key}  ${formatBytes(e.bytes).padStart(10)}  ${((now - e.mtimeMs) / 8.64e7).toFixed(1)} d`);
      out.log(`${list.length} entr${list.length === 1 ? 'y' : 'ies'}, ${formatBytes(total)} in ${cache.dir}`);
      return 0;
    },
  };
}

export function cacheVerifyCommand(out: Out = defaultOut): VrepaCommand {
  return {
    name: 'cache verify',
    summary: 'Check every teacher feature cache entry (header, key, grid, checksum)',
    usage: verifyUsage,
    async run(argv) {
      const p = parse('cache verify', verifyUsage, argv, { remove: { type: 'boolean' }, json: { type: 'boolean' } }, out);
      if (typeof p === 'number') return p;
      const cache = new FeatureCache({ dir: p.dir });
      const checks = cache.verify({ remove: !!p.values.remove });
      const bad = checks.filter((c) => !c.ok);
      if (p.values.json) out.log(JSON.stringify({ dir: cache.dir, ok: checks.length - bad.length, bad: bad.map((b) => ({ key: b.key, reason: b.reason, removed: !!p.values.remove })) }));
      else {
        for (const b of bad) out.log(`BAD ${b.key}: ${b.reason}${p.values.remove ? ' (removed)' : ''}`);
        out.log(`${checks.length - bad.length} ok, ${bad.length} bad in ${cache.dir}`);
      }
      return bad.length && !p.values.remove ? 1 : 0;
    },
  };
}

export function cachePruneCommand(out: Out = defaultOut): VrepaCommand {
  return {
    name: 'cache prune',
    summary: 'Shrink the teacher feature cache (by age and/or total size)',
    usage: pruneUsage,
    async run(argv) {
      const p = parse('cache prune', pruneUsage, argv, { 'max-size': { type: 'string' }, 'older-than': { type: 'string' }, 'dry-run': { type: 'boolean' } }, out);
      if (typeof p === 'number') return p;
      let maxBytes: number | undefined;
      let olderThanMs: number | undefined;
      try {
        if (typeof p.values['max-size'] === 'string') maxBytes = parseSize(p.values['max-size']);
        if (typeof p.values['older-than'] === 'string') olderThanMs = parseAge(p.values['older-than']);
      } catch (e) {
        out.error(`vrepa cache prune: ${(e as Error).message}`);
        return 2;
      }
      if (maxBytes === undefined && olderThanMs === undefined) {
        out.error(`vrepa cache prune: give --max-size and/or --older-than\n\n${pruneUsage}`);
        return 2;
      }
      const cache = new FeatureCache({ dir: p.dir });
      const removed = cache.prune({ maxBytes, olderThanMs, dryRun: !!p.values['dry-run'] });
      const freed = removed.reduce((s, e) => s + e.bytes, 0);
      for (const e of removed) out.log(`${p.values['dry-run'] ? 'would remove' : 'removed'} ${e.key} (${formatBytes(e.bytes)})`);
      const left = cache.size() - (p.values['dry-run'] ? freed : 0);
      out.log(`${p.values['dry-run'] ? 'would free' : 'freed'} ${formatBytes(freed)} (${removed.length} entries); ${formatBytes(left)} left in ${cache.dir}`);
      return 0;
    },
  };
}

/** The `vrepa` commands of this package. */
export const commands: VrepaCommand[] = [cacheLsCommand(), cacheVerifyCommand(), cachePruneCommand(), teacherPretrainCommand];
