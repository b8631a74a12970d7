// A separate process writing one cache key repeatedly (used by cache.test.ts to race writers).
// argv: dir key writerId count. Every write holds one constant value (writerId·1000 + i).
import * as tf from '@tensorflow/tfjs';
import { FeatureCache } from '../cache.js';

const [dir, key, id, count] = process.argv.slice(2) as [string, string, string, string];
const cache = new FeatureCache({ dir });
for (let i = 0; i < Number(count); i++) {
  const t = tf.fill([1, 600, 64], Number(id) * 1000 + i);
  cache.put(key, t, { frames: 4, height: 10, width: 15 });
  t.dispose();
}
