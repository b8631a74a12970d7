// The README's example runs as written (with '@vrepa/relations' resolved to this package's sources) and the
// loss it prints falls.
import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it, vi } from 'vitest';

describe('README example', () => {
  it('trains a toy student for 100 steps and the printed TRD loss falls', async () => {
    const readme = fs.readFileSync(path.join(import.meta.dirname, '..', 'README.md'), 'utf8');
    const block = readme.match(/## Example[\s\S]*?```ts\n([\s\S]*?)```/);
    expect(block, 'README has an ## Example section with a ts code block').toBeTruthy();
    const dir = path.join(import.meta.dirname, '..', 'node_modules', '.readme-example');
    fs.mkdirSync(dir, { recursive: true });
    const file = path.join(dir, 'example.ts');
    fs.writeFileSync(file, block![1]!);
    const lines: string[] = [];
    const spy = vi.spyOn(console, 'log').mockImplementation((...a: unknown[]) => void lines.push(a.join(' ')));
    try {
      await import(/* @vite-ignore */ file);
    } finally {
      spy.mockRestore();
    }
    const losses = lines.map((l) => Number(l.match(/TRD ([0-9.]+)/)?.[1]));
    expect(losses.length).toBe(6);
    expect(losses.every(Number.isFinite)).toBe(true);
    expect(losses[5]!).toBeLessThan(losses[0]! * 0.5);
  });
});
