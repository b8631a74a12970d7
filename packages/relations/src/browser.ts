// The browser entry (package.json `browser` condition): the whole API — nothing here needs Node.
export * from './index.js';
