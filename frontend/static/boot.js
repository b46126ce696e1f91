// Loads the wasm module; kept out of index.html so a strict Content-Security-Policy works.
import init from '/petrel.js';
init({ module_or_path: '/petrel_bg.wasm' });
