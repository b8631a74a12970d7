export * from './config.js';
export * from './optim.js';
export * from './checkpoint.js';
export * from './data.js';
export * from './tensorboard.js';
export * from './logging.js';
export * from './trainer.js';
export * from './prepare.js';
export { commands, trainCommand, prepareCommand } from './commands.js';
