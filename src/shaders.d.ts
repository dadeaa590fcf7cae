// WGSL sources imported as strings: Vite's `?raw` in the demo and tests, inlined by tsdown in the package.
declare module '*.wgsl?raw' {
  const code: string;
  export default code;
}
