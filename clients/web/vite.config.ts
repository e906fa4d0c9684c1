/// <reference types="vitest/config" />
import { defineConfig } from 'vite';
import react from '@vitejs/plugin-react';

// The gateway serves the build at `/` (SPA fallback) and the API under /api/v1; in development
// `npm run dev` proxies the API to a running gateway (FRAUD_GATEWAY_URL, default 127.0.0.1:8080).
declare const process: { env: Record<string, string | undefined> };
const gateway = process.env.FRAUD_GATEWAY_URL ?? 'http://127.0.0.1:8080';

export default defineConfig({
  plugins: [react()],
  base: '/',
  build: {
    outDir: 'dist',
    sourcemap: false,
    chunkSizeWarningLimit: 400,
  },
  server: {
    proxy: {
      '/api': { target: gateway, changeOrigin: false },
      '/healthz': { target: gateway },
    },
  },
  test: {
    environment: 'jsdom',
    globals: true,
    setupFiles: ['./src/test/setup.ts'],
    include: ['src/**/*.test.{ts,tsx}'],
    restoreMocks: true,
  },
});
