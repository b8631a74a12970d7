import { initBackend } from '@vrepa/core';

await initBackend({ quiet: true });
