// The chat app's engine runs here, off the main thread: typing and scrolling stay smooth while the
// model loads, prefills and decodes.
import { serveEngine } from '../../src/worker/serve.ts';

serveEngine(self);
