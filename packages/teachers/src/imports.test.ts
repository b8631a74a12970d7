/**
 * The package's modules import each other without cycles (the feature cache depends on the teacher
 * module, never back): read every relative `import … from` / `export … from` of src/*.ts (types
 * included) and search the graph for a cycle.
 */
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const src = path.dirname(fileURLToPath(import.meta.url));

/** module → the modules it imports (relative specifiers resolved to .ts files of this package) */
function importGraph(dir: string): Map<string, string[]> {
  const files: string[] = [];
  const walk = (d: string) => {
    for (const e of fs.readdirSync(d, { withFileTypes: true })) {
      const p = path.join(d, e.name);
      if (e.isDirectory()) walk(p);
      else if (p.endsWith('.ts') && !p.endsWith('.test.ts')) files.push(p);
    }
  };
  walk(dir);
  const graph = new Map<string, string[]>();
  for (const f of files) {
    const text = fs.readFileSync(f, 'utf8');
    const deps: string[] = [];
    for (const m of text.matchAll(/(?:^|\n)\s*(?:import|export)\b[^;]*?\bfrom\s*['"](\.{1,2}\/[^'"]+)['"]/g)) {
      const base = path.join(path.dirname(f), m[1]!).replace(/\.js$/, '');
      const target = [`${base}.ts`, path.join(base, 'index.ts')].find((c) => fs.existsSync(c));
      if (!target) throw new Error(`${path.relative(dir, f)}: import '${m[1]}' resolves to no .ts file`);
      deps.push(target);
    }
    graph.set(f, deps);
  }
  return graph;
}

/** Every cycle found by a depth-first search, as 'a.ts → b.ts → a.ts'. */
function importCycles(graph: Map<string, string[]>, root: string): string[] {
  const state = new Map<string, 'open' | 'done'>();
  const stack: string[] = [];
  const cycles: string[] = [];
  const visit = (n: string) => {
    state.set(n, 'open');
    stack.push(n);
    for (const d of graph.get(n) ?? []) {
      if (state.get(d) === 'open') cycles.push([...stack.slice(stack.indexOf(d)), d].map((x) => path.relative(root, x)).join(' → '));
      else if (!state.has(d)) visit(d);
    }
    stack.pop();
    state.set(n, 'done');
  };
  for (const n of graph.keys()) if (!state.has(n)) visit(n);
  return cycles;
}

describe('module imports', () => {
  it('the cycle search finds a cycle where there is one (a → b → a) and none in a chain', () => {
    const g = new Map([['/a.ts', ['/b.ts']], ['/b.ts', ['/a.ts']], ['/c.ts', ['/a.ts']]]);
    expect(importCycles(g, '/')).toEqual(['a.ts → b.ts → a.ts']);
    expect(importCycles(new Map([['/a.ts', ['/b.ts']], ['/b.ts', []]]), '/')).toEqual([]);
  });

  it('teachers/src has no import cycle; cache.ts imports teacher.ts and not the other way', () => {
    const g = importGraph(src);
    expect(importCycles(g, src)).toEqual([]);
    expect(g.get(path.join(src, 'cache.ts'))).toContain(path.join(src, 'teacher.ts'));
    expect(g.get(path.join(src, 'teacher.ts'))).not.toContain(path.join(src, 'cache.ts'));
  });
});
