import * as tf from '@tensorflow/tfjs';
import { describe, expect, it } from 'vitest';
import { decodeLatents, encodeLatents, latentChannels, latentFrames, pixelsToTensor, tensorToPixels } from './latent.js';

const space = { spatial: 4, temporal: 4, shift: 0.25, scale: 2 };

describe('space-to-depth latents', () => {
  it('round trip is exact (encode → decode gives the clip back)', () => {
    const x = tf.randomUniform([2, 9, 8, 12, 3], -1, 1);
    const z = encodeLatents(x, space);
    expect(z.shape).toEqual([2, 3, 2, 3, latentChannels(space)]);
    const y = decodeLatents(z, space);
    expect(y.shape).toEqual(x.shape);
    expect(tf.max(tf.abs(tf.sub(x, y))).dataSync()[0]).toBeLessThan(1e-5);
    tf.dispose([x, z, y]);
  });

  it('latent frame 0 holds only pixel frame 0 and frame k the pixel frames 4k−3..4k (the CogVideoX layout)', () => {
    // frame f filled with the value f: latent frame k must contain exactly the values of its frames
    const F = 9;
    const x = tf.tidy(() => tf.mul(tf.reshape(tf.range(0, F), [1, F, 1, 1, 1]), tf.ones([1, F, 4, 4, 3])));
    const z = encodeLatents(x, { spatial: 4, temporal: 4, shift: 0, scale: 1 });
    const v = z.arraySync() as number[][][][][];
    const values = (k: number) => [...new Set(v[0]![k]![0]![0]!)].sort((a, b) => a - b);
    expect(values(0)).toEqual([0]);
    expect(values(1)).toEqual([1, 2, 3, 4]);
    expect(values(2)).toEqual([5, 6, 7, 8]);
    tf.dispose([x, z]);
  });

  it('rejects clips that do not fit the geometry, naming the problem', () => {
    expect(() => latentFrames(8, 4)).toThrow(/1 \+ 4·k frames, got 8/);
    const x = tf.zeros([1, 5, 6, 8, 3]);
    expect(() => encodeLatents(x, space)).toThrow(/not divisible by the spatial factor 4/);
    x.dispose();
  });

  it('uint8 ↔ [-1, 1] conversion is exact on the 256 levels, and no tensor leaks', () => {
    const u8 = Uint8Array.from({ length: 256 * 3 }, (_, i) => i % 256);
    const before = tf.memory().numTensors;
    const t = pixelsToTensor(u8, 1, 1, 16, 16);
    expect(tensorToPixels(t)).toEqual(u8);
    t.dispose();
    for (let i = 0; i < 3; i++) {
      const x = tf.zeros([1, 5, 4, 4, 3]);
      const z = encodeLatents(x, space);
      const y = decodeLatents(z, space);
      tf.dispose([x, z, y]);
    }
    expect(tf.memory().numTensors).toBe(before);
  });
});
