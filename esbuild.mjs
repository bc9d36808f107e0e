// Bundles the extension (client/src/extension.ts → client/out/extension.js), the checkpoint
// page's script (client/media/page/*.js → client/out/page.js, one script the page's HTML carries
// inline) and the comparison page's (client/media/diff.js → client/out/diff.js), and copies the
// codicon font + css the pages load into client/out/codicons.
// Usage: node esbuild.mjs [--watch] [--production]
import * as esbuild from 'esbuild';
import { cpSync, mkdirSync } from 'node:fs';

const watch = process.argv.includes('--watch');
const production = process.argv.includes('--production');

mkdirSync('client/out/codicons', { recursive: true });
for (const file of ['codicon.css', 'codicon.ttf']) {
  cpSync(`node_modules/@vscode/codicons/dist/${file}`, `client/out/codicons/${file}`);
}

const options = {
  entryPoints: ['client/src/extension.ts'],
  outfile: 'client/out/extension.js',
  bundle: true,
  platform: 'node',
  format: 'cjs',
  target: 'node18',
  external: ['vscode'],
  sourcemap: production ? false : 'linked',
  minify: production,
  logLevel: 'info',
};

// The webview's script: ES modules in, one classic script out (no sourcemap: it is inlined).
const page = {
  entryPoints: ['client/media/page/main.js'],
  outfile: 'client/out/page.js',
  bundle: true,
  platform: 'browser',
  format: 'iife',
  target: 'es2022',
  logLevel: 'info',
};

// The comparison page's script, with the same DOM helpers.
const diff = { ...page, entryPoints: ['client/media/diff.js'], outfile: 'client/out/diff.js' };

if (watch) {
  await (await esbuild.context(options)).watch();
  await (await esbuild.context(page)).watch();
  await (await esbuild.context(diff)).watch();
} else {
  await Promise.all([esbuild.build(options), esbuild.build(page), esbuild.build(diff)]);
}
