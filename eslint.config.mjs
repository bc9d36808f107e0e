// Lints the extension (TypeScript, type-aware) and the checkpoint page script (browser JS).
import js from '@eslint/js';
import tseslint from 'typescript-eslint';

export default tseslint.config(
  { ignores: ['node_modules/**', 'client/out/**', '.e2e/**', 'bundled/**', 'build/**', 'demo/**', '.venv/**', 'server/**'] },
  js.configs.recommended,
  {
    files: ['client/src/**/*.ts', 'client/test/**/*.ts'],
    extends: [...tseslint.configs.strictTypeChecked],
    languageOptions: { parserOptions: { project: './tsconfig.json', tsconfigRootDir: import.meta.dirname } },
    rules: {
      '@typescript-eslint/restrict-template-expressions': ['error', { allowNumber: true }],
      '@typescript-eslint/no-floating-promises': 'error',
      // vscode.Disposable is a class, but the API hands out structural disposables everywhere.
      '@typescript-eslint/no-unsafe-class-instance-assignment': 'off',
      eqeqeq: 'error',
    },
  },
  {
    // node:test's describe/it return promises the runner awaits; narrowing on test results is deliberate.
    files: ['client/test/**/*.ts'],
    rules: { '@typescript-eslint/no-floating-promises': 'off', '@typescript-eslint/no-unnecessary-condition': 'off' },
  },
  {
    files: ['client/media/**/*.js'],
    languageOptions: {
      sourceType: 'module',
      globals: { acquireVsCodeApi: 'readonly', window: 'readonly', document: 'readonly', requestAnimationFrame: 'readonly', setTimeout: 'readonly', clearTimeout: 'readonly', navigator: 'readonly', HTMLElement: 'readonly', KeyboardEvent: 'readonly', performance: 'readonly', ResizeObserver: 'readonly' },
    },
    rules: { eqeqeq: 'error' },
  },
  {
    files: ['*.mjs', 'tests/e2e/**/*.mjs', 'benchmarks/**/*.mjs'],
    languageOptions: {
      sourceType: 'module',
      globals: { process: 'readonly', console: 'readonly', setTimeout: 'readonly', URL: 'readonly', fetch: 'readonly', getComputedStyle: 'readonly', document: 'readonly', window: 'readonly' },
    },
  },
);
