// The worker the Web Worker test starts: the whole engine runs here.
import { serveEngine } from '../../src/worker/serve.ts';

serveEngine(self as unknown as Parameters<typeof serveEngine>[0]);
