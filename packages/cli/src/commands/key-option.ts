import { findStateDict } from '@vrepa/core';

/** `--key auto` → core's findStateDict (an explicit request to pick the state dict); else the dotted path. */
export function keyOption(key: string | undefined): string | ((tree: unknown) => string) | undefined {
  return key === 'auto' ? findStateDict : key;
}
