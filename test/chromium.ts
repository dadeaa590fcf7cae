// The system Chromium the tests drive (never a downloaded one), with WebGPU on SwiftShader.
import { existsSync } from 'node:fs';

const CANDIDATES = [process.env.CHROMIUM_PATH, '/usr/bin/chromium', '/usr/bin/chromium-browser', '/usr/bin/google-chrome']
  .filter((path): path is string => Boolean(path));

export const CHROMIUM_PATH = CANDIDATES.find((path) => existsSync(path)) ?? '/usr/bin/chromium';

if (!existsSync(CHROMIUM_PATH)) {
  throw new Error(
    `No Chromium found (tried ${CANDIDATES.join(', ')}). Install it with ` +
      '`sudo apt-get install chromium fonts-nanum` or set CHROMIUM_PATH to a Chrome/Chromium binary.',
  );
}

export const CHROMIUM_WEBGPU_ARGS = [
  '--enable-unsafe-webgpu',
  '--use-webgpu-adapter=swiftshader',
  '--enable-features=Vulkan',
  '--no-sandbox',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  '--no-first-run',
];
