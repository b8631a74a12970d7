import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import fc from 'fast-check';
import { afterAll, describe, expect, it } from 'vitest';
import { fixturesDir, tensorLeakAcross, writeSafetensors, Rng, setInitRng, SafetensorsFile } from '@vrepa/core';
import { encodePrompts } from './encode.js';
import { loadT5Weights } from './load.js';
import { T5EncoderModel, relativePositionBucket } from './model.js';
import { resolveT5Config } from './config.js';
import { loadT5EncoderFromDir } from './load.js';
import { T5Tokenizer } from './tokenizer.js';

const tiny = { vocab_size: 30, d_model: 8, d_kv: 4, d_ff: 12, num_layers: 2, num_heads: 2, relative_attention_num_buckets: 8, relative_attention_max_distance: 16 };
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 't5-test-'));
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

describe('relativePositionBucket', () => {
  it('is in range, offset 0 → 0, sign picks the half, and |offset| is monotone within a half', () => {
    fc.assert(
      fc.property(fc.integer({ min: 2, max: 32 }).map((n) => 2 * n), fc.integer({ min: 4, max: 200 }), fc.integer({ min: -300, max: 300 }), (nb, md, off) => {
        const n = nb / 2;
        if (md <= Math.floor(n / 2)) return;
        const b = relativePositionBucket(off, nb, md);
        expect(b).toBeGreaterThanOrEqual(off > 0 ? n : 0);
        expect(b).toBeLessThan(off > 0 ? nb : n);
        if (off === 0) expect(b).toBe(0);
        const next = relativePositionBucket(off + Math.sign(off || 1), nb, md);
        expect(next).toBeGreaterThanOrEqual(b);
        // small offsets are exact
        if (Math.abs(off) < Math.floor(n / 2)) expect(b).toBe((off > 0 ? n : 0) + Math.abs(off));
        // beyond max_distance everything shares the last bucket of the half
        if (Math.abs(off) >= md) expect(b).toBe((off > 0 ? n : 0) + n - 1);
      }),
      { numRuns: 300 },
    );
  });
});

describe('T5EncoderModel', () => {
  it('state-dict names are transformers\' (block 0 alone has the relative bias table, no biases)', () => {
    const m = new T5EncoderModel(tiny, { init: 'zeros' });
    const keys = [...m.stateDictShapes().keys()];
    expect(keys).toContain('shared.weight');
    expect(keys).toContain('encoder.block.0.layer.0.SelfAttention.relative_attention_bias.weight');
    expect(keys).not.toContain('encoder.block.1.layer.0.SelfAttention.relative_attention_bias.weight');
    expect(keys).toContain('encoder.block.1.layer.1.DenseReluDense.wi_1.weight');
    expect(keys).toContain('encoder.final_layer_norm.weight');
    expect(keys.some((k) => k.endsWith('.bias'))).toBe(false);
    expect(m.stateDictShapes().get('encoder.block.0.layer.0.SelfAttention.q.weight')).toEqual([8, 8]);
    m.dispose();
  });

  it('rows are independent: a batch equals each row encoded alone, and the key mask ignores what pads hold', () => {
    setInitRng(Rng.fromSeed(7));
    const m = new T5EncoderModel(tiny);
    const ids = [
      [5, 6, 7, 1, 0, 0],
      [9, 1, 0, 0, 0, 0],
    ];
    const both = m.forward(ids);
    const one = m.forward([ids[1]!]);
    expect(tf.max(tf.abs(tf.sub(tf.slice(both, [1, 0, 0], [1, -1, -1]), one))).dataSync()[0]).toBeLessThan(1e-5);
    // masked call: changing the padded ids changes nothing at the real tokens
    const mask = [[1, 1, 1, 1, 0, 0]];
    const a = m.forward([[5, 6, 7, 1, 0, 0]], mask);
    const b = m.forward([[5, 6, 7, 1, 22, 3]], mask);
    expect(tf.max(tf.abs(tf.sub(tf.slice(a, [0, 0, 0], [1, 4, -1]), tf.slice(b, [0, 0, 0], [1, 4, -1])))).dataSync()[0]).toBeLessThan(1e-5);
    // without the mask (the pipeline's call) pads do take part
    const c = m.forward([[5, 6, 7, 1, 22, 3]]);
    const d = m.forward([[5, 6, 7, 1, 0, 0]]);
    expect(tf.max(tf.abs(tf.sub(tf.slice(c, [0, 0, 0], [1, 4, -1]), tf.slice(d, [0, 0, 0], [1, 4, -1])))).dataSync()[0]).toBeGreaterThan(1e-4);
    tf.dispose([both, one, a, b, c, d]);
    m.dispose();
  });

  it('leaks no tensors (plain, masked, with hidden states)', async () => {
    const m = new T5EncoderModel(tiny);
    const ids = tf.tensor2d([[3, 4, 1, 0]], undefined, 'int32');
    expect(await tensorLeakAcross(() => m.forward(ids))).toBe(0);
    expect(await tensorLeakAcross(() => m.encode(ids, { attentionMask: [[1, 1, 1, 0]], outputHiddenStates: true }))).toBe(0);
    ids.dispose();
    m.dispose();
  });

  it('bad input: ids outside the vocabulary, a mask of the wrong shape, an unknown feed_forward_proj', () => {
    const m = new T5EncoderModel(tiny, { init: 'zeros' });
    expect(() => m.forward([[1, 30]])).toThrow(/id 30/);
    expect(() => m.forward([[1, 2]], [[1, 1, 1]])).toThrow(/attentionMask must be \[1, 2\]/);
    expect(() => resolveT5Config({ feed_forward_proj: 'gated-foo' })).toThrow(/unsupported activation 'foo'/);
    expect(() => resolveT5Config({ num_heads: 0 })).toThrow(/num_heads must be a positive integer/);
    expect(resolveT5Config({ feed_forward_proj: 'relu' })).toMatchObject({ is_gated_act: false, dense_act_fn: 'relu' });
    m.dispose();
  });

  it('loads a text_encoder folder (embed_tokens alias, a BF16 variant widened) and reports missing keys by name', () => {
    setInitRng(Rng.fromSeed(3));
    const src = new T5EncoderModel(tiny);
    const sd = src.stateDict();
    const dir = path.join(tmp, 'text_encoder');
    fs.mkdirSync(dir, { recursive: true });
    fs.writeFileSync(path.join(dir, 'config.json'), JSON.stringify({ ...tiny, feed_forward_proj: 'gated-gelu' }));
    const renamed = new Map([...sd].map(([k, v]) => [k === 'shared.weight' ? 'encoder.embed_tokens.weight' : k, v]));
    writeSafetensors(path.join(dir, 'model.safetensors'), Object.fromEntries(renamed));
    const loaded = loadT5EncoderFromDir(dir);
    const ids = [[4, 5, 1, 0]];
    const want = src.forward(ids);
    const got = loaded.forward(ids);
    expect(tf.max(tf.abs(tf.sub(want, got))).dataSync()[0]).toBe(0);
    // a bf16 variant file: widened on load, equal to the bf16-rounded weights' output
    writeSafetensors(path.join(dir, 'model.bf16.safetensors'), Object.fromEntries(renamed), { dtype: 'BF16' });
    const half = loadT5EncoderFromDir(dir, { variant: 'bf16' });
    const w = half.getParameter('encoder.block.0.layer.0.SelfAttention.q.weight').value.dataSync();
    expect(Array.from(w).every((v) => (new Uint32Array(new Float32Array([v]).buffer)[0]! & 0xffff) === 0)).toBe(true);
    const gotHalf = half.forward(ids);
    expect(tf.max(tf.abs(tf.sub(want, gotHalf))).dataSync()[0]).toBeLessThan(0.1);
    tf.dispose(gotHalf);
    half.dispose();
    renamed.delete('encoder.final_layer_norm.weight');
    writeSafetensors(path.join(dir, 'model.safetensors'), Object.fromEntries(renamed));
    expect(() => loadT5EncoderFromDir(dir)).toThrow(/missing key\(s\): encoder.final_layer_norm.weight/);
    fs.rmSync(path.join(dir, 'model.safetensors'));
    expect(() => loadT5EncoderFromDir(dir)).toThrow(/no weights in .*model.safetensors/);
    tf.dispose([...sd.values(), want, got]);
    src.dispose();
    loaded.dispose();
  });
});

const fx = fixturesDir();
describe.runIf(fx)('T5Tokenizer (fixture tokenizer.json)', () => {
  const file = path.join(fx!, 't5_encoder', 'tokenizer.json');
  it('pads to max_length with mask 0, truncation keeps the trailing </s>, the empty prompt is [</s>, pad…]', () => {
    const tok = T5Tokenizer.fromFile(file);
    const out = tok.encodeBatch(['', 'a cat', 'slow motion video of a dog running in the snow'], { maxLength: 6 });
    expect(out.inputIds[0]).toEqual([1, 0, 0, 0, 0, 0]);
    expect(out.attentionMask[0]).toEqual([1, 0, 0, 0, 0, 0]);
    expect(out.inputIds[1]!.slice(-4)).toEqual([1, 0, 0, 0]);
    expect(out.inputIds[2]!).toHaveLength(6);
    expect(out.inputIds[2]!.at(-1)).toBe(1);
    expect(out.inputIds[2]!.slice(0, 5)).toEqual(tok.encode('slow motion video of a dog running in the snow').slice(0, 5));
    expect(out.truncated).toEqual([false, false, true]);
  });

  it('property: for any prompt, ids = prefix of the untruncated pieces + </s>, padded; length = max_length', () => {
    const tok = T5Tokenizer.fromFile(path.dirname(file));
    const words = ['a', 'cat', 'the', 'dog', 'running', 'snow', 'beach', ',', 'x', 'é', ' '];
    fc.assert(
      fc.property(fc.array(fc.constantFrom(...words), { maxLength: 20 }), fc.integer({ min: 1, max: 12 }), (ws, maxLength) => {
        const prompt = ws.join(' ');
        const full = tok.encode(prompt);
        const [row] = tok.encodeBatch(prompt, { maxLength }).inputIds;
        expect(row).toHaveLength(Math.max(maxLength, 0));
        const n = Math.min(full.length, maxLength);
        expect(row!.slice(0, n - 1)).toEqual(full.slice(0, n - 1));
        expect(row![n - 1]).toBe(1);
        expect(row!.slice(n).every((v) => v === 0)).toBe(true);
      }),
      { numRuns: 100 },
    );
  });

  it('bad input: a missing file names it; a non-tokenizer JSON is refused', () => {
    expect(() => T5Tokenizer.fromFile(path.join(tmp, 'nope.json'))).toThrow(/nope.json does not exist/);
    expect(() => T5Tokenizer.fromJSON({ foo: 1 })).toThrow(/not a tokenizers JSON/);
  });
});

describe.runIf(fx)('encodePrompts (the pipeline call) on the pipeline_len226 fixture', () => {
  it('prompts → 226 ids → encoder without mask reproduces last_hidden_state', () => {
    const caseDir = path.join(fx!, 't5_encoder');
    const manifest = JSON.parse(fs.readFileSync(path.join(caseDir, 'manifest.json'), 'utf8'));
    const sc = manifest.subcases.find((s: { name: string }) => s.name === 'pipeline_len226');
    const w = SafetensorsFile.open(path.join(caseDir, sc.weights_file));
    const ref = SafetensorsFile.open(path.join(caseDir, sc.file));
    const model = new T5EncoderModel(sc.params.config, { init: 'zeros' });
    loadT5Weights(model, { keys: () => w.keys(), shape: (k) => w.info(k).shape, read: (k) => w.read(k) });
    const warnings: string[] = [];
    const got = encodePrompts(T5Tokenizer.fromFile(path.join(caseDir, 'tokenizer.json')), model, sc.values.prompts, { maxLength: 226, onWarning: (t) => warnings.push(t) });
    const want = ref.tensor('last_hidden_state');
    expect(got.shape).toEqual([2, 226, 12]);
    const tol = 1e-4 * Math.max(1, tf.max(tf.abs(want)).dataSync()[0]!);
    expect(tf.max(tf.abs(tf.sub(got, want))).dataSync()[0]).toBeLessThan(tol);
    expect(warnings).toEqual([]);
    tf.dispose([got, want]);
    model.dispose();
    w.close();
    ref.close();
  });
});
