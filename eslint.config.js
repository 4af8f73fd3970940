import tseslint from 'typescript-eslint';

export default tseslint.config(
  // native-bench's plain .mjs scripts (proxy/) and its bin shim are not linted; its TypeScript sources are.
  { ignores: ['dist/**', 'node_modules/**', 'native-bench/**/*.mjs', 'native-bench/**/*.js', 'coverage/**'] },
  ...tseslint.configs.recommended,
  {
    rules: {
      // Leftover debugging and unfinished markers never land in src/ or workers/.
      'no-console': 'error',
      'no-warning-comments': ['error', { terms: ['todo', 'fixme', 'xxx'], location: 'anywhere' }],
      '@typescript-eslint/no-non-null-assertion': 'off',
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
      'no-restricted-properties': ['error', { object: 'Atomics', property: 'wait', message: 'Atomics.wait blocks a serving thread; use Atomics.load or waitAsync.' }],
    },
  },
  {
    // native-bench is its own package (native-bench/package.json): it may use the router's shared
    // contracts but not its internals, so the load tool cannot drift into testing private code.
    // The KV-block key scheme is the one exception until it moves to src/shared/ (issue 17).
    files: ['native-bench/**/*.ts'],
    rules: {
      'no-restricted-imports': ['error', {
        patterns: [{
          regex: '^(\\.\\./)+(src/(?!shared/)|workers/(?!scheduler/kvcache-aware\\.js$))',
          message: 'native-bench may import only src/shared/ from the router (and the KV-block key scheme).',
        }],
      }],
    },
  },
  {
    files: ['test/**'],
    rules: { 'no-console': 'off', '@typescript-eslint/no-explicit-any': 'off' },
  },
);
