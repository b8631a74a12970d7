import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { afterAll, describe, expect, it } from 'vitest';
import {
  Activation,
  Conv2d,
  Conv3d,
  LayerNorm,
  Linear,
  MLP,
  Module,
  ModuleList,
  Rng,
  SafetensorsFile,
  Sequential,
  StateDictError,
  storedShape,
  tensorLeakAcross,
  torchShape,
  writeSafetensors,
  type Parameter,
} from './index.js';

class Block extends Module {
  norm1 = this.module('norm1', new LayerNorm(4, { eps: 1e-6 }));
  attn = this.module('attn', new Linear(4, 12));
  mlp = this.module('mlp', new MLP(4, 8));
  gamma: Parameter = this.param('gamma_1', () => tf.ones([4]));
  table = this.buffer('pos_table', tf.zeros([3, 4]));
  cache = this.buffer('cache', tf.zeros([2]), { persistent: false });
}

class Net extends Module {
  patch = this.module('patch_embed', new Conv2d(3, 4, 2, { stride: 2 }));
  blocks = this.module('blocks', new ModuleList([new Block(), new Block()]));
  proj = this.module('proj', new Sequential([new Linear(4, 6), new Activation('silu'), new Linear(6, 2, { bias: false })]));
}

const made: Module[] = [];
const net = () => {
  const n = new Net();
  made.push(n);
  return n;
};
afterAll(() => made.forEach((m) => m.dispose()));

describe('Module registry', () => {
  it('names parameters, buffers and children exactly as PyTorch', () => {
    const m = net();
    expect(m.namedParameters().map(([n]) => n)).toEqual([
      'patch_embed.weight',
      'patch_embed.bias',
      'blocks.0.gamma_1',
      'blocks.0.norm1.weight',
      'blocks.0.norm1.bias',
      'blocks.0.attn.weight',
      'blocks.0.attn.bias',
      'blocks.0.mlp.fc1.weight',
      'blocks.0.mlp.fc1.bias',
      'blocks.0.mlp.fc2.weight',
      'blocks.0.mlp.fc2.bias',
      'blocks.1.gamma_1',
      'blocks.1.norm1.weight',
      'blocks.1.norm1.bias',
      'blocks.1.attn.weight',
      'blocks.1.attn.bias',
      'blocks.1.mlp.fc1.weight',
      'blocks.1.mlp.fc1.bias',
      'blocks.1.mlp.fc2.weight',
      'blocks.1.mlp.fc2.bias',
      'proj.0.weight',
      'proj.0.bias',
      'proj.2.weight',
    ]);
    const sd = m.stateDictShapes();
    expect(sd.get('patch_embed.weight')).toEqual([4, 3, 2, 2]); // PyTorch [out, in, kH, kW]
    expect(sd.get('blocks.0.attn.weight')).toEqual([12, 4]); // PyTorch [out, in]
    expect(sd.get('blocks.1.pos_table')).toEqual([3, 4]);
    expect(sd.has('blocks.0.cache')).toBe(false); // non-persistent buffer
    expect(m.getParameter('blocks.0.attn.weight').shape).toEqual([4, 12]); // stored [in, out]
    expect(m.getModule('blocks.1.mlp')).toBeInstanceOf(MLP);
  });

  it('counts parameters, and setTrainable by prefix / regexp / predicate', () => {
    const m = net();
    const total = 4 * 3 * 4 + 4 + 2 * (4 + 4 + 4 + 4 * 12 + 12 + 4 * 8 + 8 + 8 * 4 + 4) + 4 * 6 + 6 + 6 * 2;
    expect(m.numParameters()).toBe(total);
    expect(m.setTrainable('*', false)).toBe(23);
    expect(m.numParameters({ trainableOnly: true })).toBe(0);
    expect(m.setTrainable('proj.', true)).toBe(3);
    expect(m.numParameters({ trainableOnly: true })).toBe(4 * 6 + 6 + 6 * 2);
    expect(m.setTrainable(/^blocks\.\d+\.mlp\.fc1\./, true)).toBe(4);
    expect(m.setTrainable((n, p) => n.endsWith('.bias') && p.trainable, false)).toBe(3);
    expect(m.trainableParameters().length).toBe(4); // proj.0.weight, proj.2.weight, 2× fc1.weight
    expect(m.trainableParameters().every((v) => v.trainable)).toBe(true);
    expect(m.parameters().length).toBe(23);
  });

  it('stateDict → loadStateDict round-trips into a fresh model (layouts converted once each way)', async () => {
    const a = net();
    const b = net();
    a.setTrainable('*', true);
    // make buffers differ too
    const sdA = a.stateDict();
    sdA.set('blocks.0.pos_table', tf.fill([3, 4], 7));
    const report = b.loadStateDict(sdA);
    expect(report.loaded.length).toBe(25);
    expect(report.missing).toEqual([]);
    const sdB = b.stateDict();
    for (const [k, v] of sdA) expect(Array.from(await sdB.get(k)!.data())).toEqual(Array.from(await v.data()));
    // forward agrees
    const x = Rng.fromSeed(1).randomTensor([2, 4]);
    const ya = a.proj.forward(x);
    const yb = b.proj.forward(x);
    expect(Array.from(await yb.data())).toEqual(Array.from(await ya.data()));
    tf.dispose([...sdA.values(), ...sdB.values(), x, ya, yb]);
  });

  it('the PyTorch layout is what a Linear computes with: y = x·Wᵀ + b for W [out, in]', async () => {
    const lin = new Linear(3, 2);
    made.push(lin);
    const W = [
      [1, 2, 3],
      [-1, 0, 4],
    ];
    lin.loadStateDict({ weight: tf.tensor2d(W), bias: tf.tensor1d([0.5, -0.5]) });
    const y = lin.forward(tf.tensor2d([[1, 1, 2]]));
    expect(Array.from(await y.data())).toEqual([1 + 2 + 6 + 0.5, -1 + 0 + 8 - 0.5]);
    y.dispose();
  });

  it('conv layouts: PyTorch [out, in, kH, kW] ↔ stored [kH, kW, in, out], and 3-D likewise', () => {
    expect(storedShape([8, 3, 2, 5], 'conv2d')).toEqual([2, 5, 3, 8]);
    expect(torchShape([2, 5, 3, 8], 'conv2d')).toEqual([8, 3, 2, 5]);
    expect(storedShape([8, 3, 4, 2, 5], 'conv3d')).toEqual([4, 2, 5, 3, 8]);
    expect(torchShape([4, 2, 5, 3, 8], 'conv3d')).toEqual([8, 3, 4, 2, 5]);
    expect(storedShape([3, 8, 2, 5], 'conv_transpose2d')).toEqual([2, 5, 8, 3]);
    const c = new Conv3d(3, 8, [4, 2, 5]);
    made.push(c);
    expect(c.stateDictShapes().get('weight')).toEqual([8, 3, 4, 2, 5]);
    expect(c.weight.shape).toEqual([4, 2, 5, 3, 8]);
  });

  it('reports ALL missing, unexpected and mismatched keys in one error and changes nothing', async () => {
    const m = net();
    const sd = m.stateDict();
    const before = await m.getParameter('proj.0.weight').value.data();
    sd.delete('blocks.1.gamma_1');
    sd.delete('proj.2.weight');
    sd.set('blocks.0.attn.weight', tf.zeros([12, 5]));
    sd.set('head.weight', tf.zeros([1]));
    sd.set('proj.0.weight', tf.zeros([6, 4]));
    let err: unknown;
    try {
      m.loadStateDict(sd, { source: 'ckpt.safetensors' });
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(StateDictError);
    const msg = (err as Error).message;
    expect(msg).toContain('ckpt.safetensors');
    expect(msg).toContain('blocks.0.attn.weight: checkpoint [12, 5] vs model [12, 4]');
    expect(msg).toContain('2 missing key(s): blocks.1.gamma_1, proj.2.weight');
    expect(msg).toContain('1 unexpected key(s): head.weight');
    expect(Array.from(await m.getParameter('proj.0.weight').value.data())).toEqual(Array.from(before));
    // non-strict: missing/unexpected reported, the rest loaded; a shape mismatch still throws
    expect(() => m.loadStateDict(sd, { strict: false })).toThrow(/shape mismatch/);
    sd.get('blocks.0.attn.weight')!.dispose();
    sd.set('blocks.0.attn.weight', tf.zeros([12, 4]));
    const rep = m.loadStateDict(sd, { strict: false });
    expect(rep.missing).toEqual(['blocks.1.gamma_1', 'proj.2.weight']);
    expect(rep.unexpected).toEqual(['head.weight']);
    expect(Array.from(await m.getParameter('proj.0.weight').value.data()).every((v) => v === 0)).toBe(true);
    tf.dispose([...sd.values()]);
  });

  it('loads lazily from a SafetensorsFile with a key prefix (host tensors, f64 widened)', async () => {
    const lin = new Linear(2, 2);
    made.push(lin);
    const p = path.join(os.tmpdir(), `vrepa-mod-${process.pid}.safetensors`);
    writeSafetensors(p, {
      'module.weight': { dtype: 'F64', shape: [2, 2], data: new Float64Array([1, 2, 3, 4]) },
      'module.bias': tf.tensor1d([5, 6]),
      'other.x': tf.tensor1d([0]),
    });
    const f = SafetensorsFile.open(p);
    const rep = lin.loadStateDict(f, { prefix: 'module.' });
    f.close();
    fs.rmSync(p);
    expect(rep.loaded.sort()).toEqual(['bias', 'weight']);
    expect(rep.unexpected).toEqual([]);
    expect(Array.from(await lin.weight.value.data())).toEqual([1, 3, 2, 4]); // stored [in, out]
  });

  it('gradients flow to trainable parameters only, through a Sequential', () => {
    const m = net();
    m.setTrainable('*', false);
    m.setTrainable('proj.2.', true);
    const x = Rng.fromSeed(2).randomTensor([3, 4]);
    const opt = tf.train.sgd(0.1);
    const before = m.getParameter('proj.0.weight').value.clone();
    const w2 = m.getParameter('proj.2.weight').value.clone();
    opt.minimize(() => tf.sum(tf.square(m.proj.forward(x))) as tf.Scalar, false, m.trainableParameters());
    expect(tf.max(tf.abs(tf.sub(before, m.getParameter('proj.0.weight').value))).arraySync()).toBe(0);
    expect(tf.max(tf.abs(tf.sub(w2, m.getParameter('proj.2.weight').value))).arraySync()).toBeGreaterThan(0);
    tf.dispose([x, before, w2]);
    opt.dispose();
  });

  it('builds, loads, runs and disposes without leaking tensors', async () => {
    const sd = net().stateDict();
    const x = tf.ones([1, 4]);
    expect(
      await tensorLeakAcross(() => {
        const m = new Net();
        m.loadStateDict(sd);
        const y = m.proj.forward(x);
        m.dispose();
        return y;
      }),
    ).toBe(0);
    tf.dispose([...sd.values(), x]);
  });

  it('rejects duplicate and dotted names', () => {
    class Bad extends Module {
      a = this.param('w', () => tf.zeros([1]));
      b = this.param('w', () => tf.zeros([1]));
    }
    expect(() => new Bad()).toThrow(/"w" is already registered in Bad/);
    class Dotted extends Module {
      a = this.param('a.b', () => tf.zeros([1]));
    }
    expect(() => new Dotted()).toThrow(/without dots/);
  });
});
