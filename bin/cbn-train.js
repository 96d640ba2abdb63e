#!/usr/bin/env node
// Starts the TypeScript CLI through tsx, so the installed command needs no separate build step.
import { register } from 'tsx/esm/api';

register();
await import('../cli/main.ts');
