/**
 * Probe feature files on disk (`feats.safetensors`, what `vrepa probe` reads): Node only, so probe.ts
 * (the probe itself) stays free of the file system and bundles for the browser.
 */
import fs from 'node:fs';
import { SafetensorsFile, writeSafetensors, type HostTensor } from '@vrepa/core';
import { ProbeInputError, type ProbeDataset } from './probe.js';

/**
 * Read `feats.safetensors`: `features [N, D]` (float), `labels [N]` (0/1, any integer or float dtype), optional
 * `groups [N]` (integer subset ids; metadata `group_names` = JSON list of names).
 */
export function readFeatureFile(path: string): ProbeDataset {
  if (!fs.existsSync(path)) throw new ProbeInputError(`features file '${path}' does not exist.`);
  const f = SafetensorsFile.open(path);
  try {
    for (const key of ['features', 'labels'])
      if (!f.has(key)) throw new ProbeInputError(`${path}: missing tensor '${key}' (has ${f.keys().join(', ') || 'none'}).`);
    const fi = f.info('features');
    if (fi.shape.length !== 2) throw new ProbeInputError(`${path}: 'features' must be [N, D], got shape [${fi.shape.join(', ')}].`);
    const [n, d] = fi.shape as [number, number];
    const feats = f.read('features');
    const data = feats.data instanceof Float32Array ? feats.data : Float32Array.from(toNumbers(feats, path, 'features'));
    const li = f.info('labels');
    const lv = toNumbers(f.read('labels'), path, 'labels');
    if (li.shape.length !== 1 && !(li.shape.length === 2 && li.shape[1] === 1))
      throw new ProbeInputError(`${path}: 'labels' must be [N], got shape [${li.shape.join(', ')}].`);
    if (lv.length !== n) throw new ProbeInputError(`${path}: 'labels' has ${lv.length} entries but 'features' has ${n} rows.`);
    const labels = new Uint8Array(n);
    for (let i = 0; i < n; i++) {
      const v = lv[i]!;
      if (v !== 0 && v !== 1) throw new ProbeInputError(`${path}: labels must be 0 or 1, got ${v} at row ${i}.`);
      labels[i] = v;
    }
    let groups: Int32Array | undefined;
    if (f.has('groups')) {
      const gv = toNumbers(f.read('groups'), path, 'groups');
      if (gv.length !== n) throw new ProbeInputError(`${path}: 'groups' has ${gv.length} entries but 'features' has ${n} rows.`);
      groups = Int32Array.from(gv, (v, i) => {
        if (!Number.isInteger(v) || v < 0) throw new ProbeInputError(`${path}: groups must be non-negative integers, got ${v} at row ${i}.`);
        return v;
      });
    }
    let groupNames: string[] | undefined;
    if (f.metadata.group_names) {
      try {
        groupNames = JSON.parse(f.metadata.group_names);
      } catch {
        throw new ProbeInputError(`${path}: metadata 'group_names' is not a JSON list of names.`);
      }
    }
    return { features: { data, n, d }, labels, groups, groupNames };
  } finally {
    f.close();
  }
}

function toNumbers(h: HostTensor, path: string, name: string): Float64Array {
  const d = h.data;
  if (d instanceof BigInt64Array) return Float64Array.from(d, (v) => Number(v));
  const out = Float64Array.from(d as ArrayLike<number>);
  for (let i = 0; i < out.length; i++) if (!Number.isFinite(out[i]!)) throw new ProbeInputError(`${path}: '${name}' has a non-finite value at index ${i}.`);
  return out;
}

/** Write a feature file in the format `readFeatureFile` reads. */
export function writeFeatureFile(path: string, ds: ProbeDataset): void {
  const { n, d, data } = ds.features;
  const tensors: Record<string, HostTensor> = {
    features: { dtype: 'F32', shape: [n, d], data },
    labels: { dtype: 'I32', shape: [n], data: Int32Array.from(ds.labels) },
  };
  if (ds.groups) tensors.groups = { dtype: 'I32', shape: [n], data: ds.groups };
  writeSafetensors(path, tensors, ds.groupNames ? { metadata: { group_names: JSON.stringify(ds.groupNames) } } : {});
}
