// The browser entry (package.json `browser` condition): scoring tables, linear probes, the Physion-style
// feature protocol, the physics scene simulator and trajectory metrics. ffmpeg, dataset folders, feature
// files, charts (vega + resvg) and the `vrepa` commands stay in the Node entry.
export * from './csv.js';
export * from './rng.js';
export * from './videophy.js';
export * from './linalg.js';
export * from './probe.js';
export * from './physion.js';
export * from './geometry.js';
export * from './scenes.js';
export * from './tracker.js';
export * from './trajectory.js';
