import { vrepaVitestConfig } from '../../vitest.shared.ts';

export default vrepaVitestConfig(import.meta.dirname);
