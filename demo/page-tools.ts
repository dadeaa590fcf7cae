// What the benchmark and evaluation pages share: the no-WebGPU advice and saving results as a JSON file.

export const NO_WEBGPU = 'This browser has no WebGPU. Use a recent Chrome or Edge (113+), Safari 26+, or Firefox 141+ on Windows.';

/** Saves `value` as a pretty-printed JSON download named `fileName`. */
export function downloadJson(fileName: string, value: unknown): void {
  const link = document.createElement('a');
  link.href = URL.createObjectURL(new Blob([`${JSON.stringify(value, null, 2)}\n`], { type: 'application/json' }));
  link.download = fileName;
  link.click();
  setTimeout(() => URL.revokeObjectURL(link.href), 1000);
}
