import { defineConfig } from 'vite';

// A static page: `vite` serves it, `vite build` writes dist/ (relative URLs: it works from any folder).
export default defineConfig({
  base: './',
  build: { target: 'es2022', chunkSizeWarningLimit: 4096 },
  server: { port: 5173 },
});
