export { parseTfConfig, workerTfConfig, taskName, addressPort, TfConfigError, type ClusterConfig, type ClusterTask } from './tf-config.js';
export { encodeServerDef, serverDefForCluster, type ServerDefInput } from './server-def.js';
export {
  initDistributed,
  distributed,
  localDistributed,
  DistributedError,
  type Distributed,
  type DistributedOptions,
} from './collective.js';
export { launchWorkers, freeLoopbackPorts, type LaunchOptions, type LaunchResult } from './launch.js';
