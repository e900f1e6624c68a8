/// <reference types="vitest/config" />
import { defineConfig } from 'vite';
import react from '@vitejs/plugin-react';

// `npm run dev` proxies the API to a gateway: PARLEY_API, default http://127.0.0.1:8080.
const env = (globalThis as { process?: { env: Record<string, string | undefined> } }).process?.env ?? {};
const api = env.PARLEY_API || 'http://127.0.0.1:8080';

// The gateway serves web/dist: hashed files under /assets/ (cached forever) and
// index.html for every other non-API path (never cached).
export default defineConfig({
  plugins: [react()],
  server: {
    proxy: {
      '/api': { target: api, changeOrigin: false },
      '/healthz': api,
    },
  },
  build: {
    outDir: 'dist',
    assetsDir: 'assets',
    sourcemap: false,
    target: 'es2022',
    // Everything is hashed; no inline scripts (the gateway's CSP has script-src 'self').
    assetsInlineLimit: 0,
    rollupOptions: {
      output: {
        manualChunks(id) {
          // Markdown + highlighting change less often than the app: own cacheable chunk.
          if (/node_modules\/(react-markdown|remark-|micromark|mdast-|hast-|unist-|unified|vfile|lowlight|highlight\.js|property-information|space-separated|comma-separated|decode-named|character-|html-url|trim-lines|devlop|bail|ccount|markdown-table|zwitch|longest-streak|estree|style-to|inline-style|is-plain-obj|trough|extend)/.test(id)) {
            return 'markdown';
          }
          if (/node_modules\/(react|react-dom|scheduler|react-router|cookie|set-cookie-parser)\//.test(id)) {
            return 'react';
          }
          return undefined;
        },
      },
    },
  },
  test: {
    environment: 'jsdom',
    include: ['src/**/*.test.{ts,tsx}'],
    setupFiles: ['src/test/setup.ts'],
    restoreMocks: true,
  },
});
