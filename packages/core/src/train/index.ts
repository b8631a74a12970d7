// Training machinery shared by every training loop (the finetuning trainer, teacher pretraining).
// optim and progress are browser-safe; *.node.ts files use the file system (Node only).
export * from './optim.js';
export * from './progress.js';
export * from './chart.node.js';
export * from './log.node.js';
export * from './tensorboard.node.js';
export * from './checkpoint.node.js';
