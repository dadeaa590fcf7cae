import { fileURLToPath } from 'node:url';
import { defineConfig } from 'vite';

// The demo pages live in demo/ (chat: index.html, benchmark: bench.html, evaluation: eval.html); public/
// holds the bundled tri-tiny and tri-tiny-chat models, served at models/<name>/ beside the pages, and the
// evaluation's sample questions at eval/.
export default defineConfig({
  // Relative asset URLs: the built app works from any sub-path (https://host/some/path/), not only /.
  base: './',
  root: fileURLToPath(new URL('./demo', import.meta.url)),
  publicDir: fileURLToPath(new URL('./public', import.meta.url)),
  server: { port: 5173, fs: { allow: ['..'] } },
  // The chat app's engine worker is an ES module worker (it shares chunks with the page).
  worker: { format: 'es' },
  build: {
    outDir: fileURLToPath(new URL('./dist-demo', import.meta.url)), // dist/ is the npm package
    emptyOutDir: true,
    target: 'es2022',
    rollupOptions: {
      input: {
        chat: fileURLToPath(new URL('./demo/index.html', import.meta.url)),
        bench: fileURLToPath(new URL('./demo/bench.html', import.meta.url)),
        eval: fileURLToPath(new URL('./demo/eval.html', import.meta.url)),
      },
    },
  },
});
