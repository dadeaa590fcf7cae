import { fileURLToPath } from 'node:url';
import { defineConfig } from 'vite';

// The demo pages live in demo/ (chat: index.html, benchmark: bench.html); public/ holds the bundled
// tri-tiny model, served at /models/tri-tiny/.
export default defineConfig({
  root: fileURLToPath(new URL('./demo', import.meta.url)),
  publicDir: fileURLToPath(new URL('./public', import.meta.url)),
  server: { port: 5173, fs: { allow: ['..'] } },
  build: {
    outDir: fileURLToPath(new URL('./dist-demo', import.meta.url)), // dist/ is the npm package
    emptyOutDir: true,
    target: 'es2022',
    rollupOptions: {
      input: {
        chat: fileURLToPath(new URL('./demo/index.html', import.meta.url)),
        bench: fileURLToPath(new URL('./demo/bench.html', import.meta.url)),
      },
    },
  },
});
