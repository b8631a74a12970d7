/** Where a command writes. The binary uses the process streams; tests pass a recorder. */
export interface CliIO {
  out(text: string): void;
  err(text: string): void;
}

export const processIO: CliIO = {
  out: (text) => void process.stdout.write(text),
  err: (text) => void process.stderr.write(text),
};

/** An IO that keeps everything written, for tests and for embedding the CLI. */
export function recordingIO(): CliIO & { stdout: () => string; stderr: () => string } {
  let o = '';
  let e = '';
  return {
    out: (t) => void (o += t),
    err: (t) => void (e += t),
    stdout: () => o,
    stderr: () => e,
  };
}

/** A usage error: the command line itself is wrong (exit code 2); one class for every vrepa command. */
export { UsageError } from '@vrepa/core';

/** Exit codes of every vrepa command. */
export const EXIT = { ok: 0, failed: 1, usage: 2 } as const;

/** Left-pad / right-pad helpers for the fixed-width tables. */
export function padEnd(s: string, n: number): string {
  return s.length >= n ? s : s + ' '.repeat(n - s.length);
}
export function padStart(s: string, n: number): string {
  return s.length >= n ? s : ' '.repeat(n - s.length) + s;
}

/** Bytes as a short human string: 1.5 KiB, 2.3 MiB, 4.0 GiB. */
export function formatBytes(n: number): string {
  if (n < 1024) return `${n} B`;
  const units = ['KiB', 'MiB', 'GiB', 'TiB'];
  let v = n / 1024;
  let i = 0;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return `${v.toFixed(v >= 100 ? 0 : 1)} ${units[i]}`;
}
