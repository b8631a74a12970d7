import { describe, expect, it } from 'vitest';
import { TfConfigError, addressPort, parseTfConfig, workerTfConfig } from './tf-config.js';

const two = { worker: ['localhost:1000', 'localhost:1001'] };

describe('parseTfConfig', () => {
  it('is undefined without TF_CONFIG', () => {
    expect(parseTfConfig(undefined)).toBeUndefined();
    expect(parseTfConfig('  ')).toBeUndefined();
  });

  it('orders the chief first, then the workers (MultiWorkerMirroredStrategy ranks)', () => {
    const c = parseTfConfig({ cluster: { worker: ['w0:1', 'w1:2'], chief: ['c:3'] }, task: { type: 'worker', index: 1 } })!;
    expect(c.tasks.map((t) => t.name)).toEqual(['/job:chief/replica:0/task:0', '/job:worker/replica:0/task:0', '/job:worker/replica:0/task:1']);
    expect([c.rank, c.worldSize, c.port, c.groupLeader]).toEqual([2, 3, 2, '/job:chief/replica:0/task:0']);
  });

  it('round-trips what vrepa launch sets', () => {
    const c = parseTfConfig(workerTfConfig(two.worker, 1))!;
    expect([c.rank, c.worldSize, c.task.address]).toEqual([1, 2, 'localhost:1001']);
  });

  it.each([
    ['not json', '{cluster', /not JSON/],
    ['no cluster', { task: { type: 'worker', index: 0 } }, /no "cluster"/],
    ['unknown task type', { cluster: two, task: { type: 'ps', index: 0 } }, /task type "ps" is not a job of the cluster/],
    ['index out of range', { cluster: two, task: { type: 'worker', index: 2 } }, /task index 2 is out of range for job 'worker' with 2 task\(s\)/],
    ['negative index', { cluster: two, task: { type: 'worker', index: -1 } }, /out of range/],
    ['unsupported job', { cluster: { ...two, ps: ['p:1'] }, task: { type: 'worker', index: 0 } }, /job 'ps' is not supported/],
    ['no port', { cluster: { worker: ['localhost'] }, task: { type: 'worker', index: 0 } }, /'localhost' is not host:port/],
    ['duplicate address', { cluster: { worker: ['a:1', 'a:1'] }, task: { type: 'worker', index: 0 } }, /a:1 is given twice/],
    ['two chiefs', { cluster: { chief: ['a:1', 'b:1'] }, task: { type: 'chief', index: 0 } }, /exactly one/],
  ])('rejects %s with one clear error', (_name, value, re) => {
    expect(() => parseTfConfig(value as string | object)).toThrow(TfConfigError);
    expect(() => parseTfConfig(value as string | object)).toThrow(re);
  });

  it('reads IPv6 ports', () => {
    expect(addressPort('[::1]:40000')).toBe(40000);
    expect(() => addressPort('host:70000')).toThrow(/not host:port/);
  });
});
