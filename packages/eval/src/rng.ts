/**
 * The eval scenes' seeded PRNG: @vrepa/core's xoshiro128** generator, seeded through splitmix32 and drawing
 * 32-bit uniforms, as every generated dataset was made (a clip regenerates from its recorded seed).
 */
import { Rng as CoreRng } from '@vrepa/core';

export class Rng {
  private readonly gen: CoreRng;

  constructor(seed: number) {
    let x = (Math.floor(seed) >>> 0) ^ 0x9e3779b9;
    const next = () => {
      x = (x + 0x9e3779b9) >>> 0;
      let z = x;
      z = Math.imul(z ^ (z >>> 16), 0x85ebca6b) >>> 0;
      z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35) >>> 0;
      return (z ^ (z >>> 16)) >>> 0;
    };
    this.gen = CoreRng.fromState({ algorithm: 'xoshiro128**', s: [next(), next(), next(), next()], spare: null });
  }

  /** Uniform 32-bit unsigned integer. */
  nextU32(): number {
    return this.gen.nextUint32();
  }

  /** Uniform in [0, 1). */
  next(): number {
    return this.nextU32() / 4294967296;
  }

  /** Uniform in [lo, hi). */
  uniform(lo: number, hi: number): number {
    return lo + (hi - lo) * this.next();
  }

  /** Integer in [0, n). */
  int(n: number): number {
    return Math.floor(this.next() * n);
  }

  /** Standard normal (Box–Muller). */
  normal(): number {
    let u = this.next();
    while (u <= 1e-300) u = this.next();
    return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * this.next());
  }

  /** One element of `items`. */
  pick<T>(items: readonly T[]): T {
    return items[this.int(items.length)]!;
  }

  /** Fisher–Yates shuffle in place. */
  shuffle<T>(items: T[]): T[] {
    for (let i = items.length - 1; i > 0; i--) {
      const j = this.int(i + 1);
      [items[i], items[j]] = [items[j]!, items[i]!];
    }
    return items;
  }
}
