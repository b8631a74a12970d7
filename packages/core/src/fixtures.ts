/** Where the shared fixture set lives: `VREPA_FIXTURES`, else `../shared/fixtures` above the repository. */
import fs from 'node:fs';
import path from 'node:path';

export function fixturesDir(from: string = process.cwd()): string | undefined {
  if (process.env.VREPA_FIXTURES) return process.env.VREPA_FIXTURES;
  let dir = path.resolve(from);
  for (;;) {
    for (const cand of [path.join(dir, 'shared', 'fixtures'), path.join(dir, '..', 'shared', 'fixtures')]) {
      if (fs.existsSync(path.join(cand, 'index.json'))) return cand;
    }
    const up = path.dirname(dir);
    if (up === dir) return undefined;
    dir = up;
  }
}
