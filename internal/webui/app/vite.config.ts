// Builds the web view into ../dist/app, which internal/webui embeds.
// `npm run dev` serves it with live reload and sends API calls to the
// execd at $EXECD_ADDR (default 127.0.0.1:50051).
import { fileURLToPath } from "node:url";
import { defineConfig } from "vite";

const execd = `http://${process.env.EXECD_ADDR ?? "127.0.0.1:50051"}`;

export default defineConfig({
  build: {
    outDir: "../dist/app",
    emptyOutDir: true,
    target: "es2022",
    sourcemap: false,
    chunkSizeWarningLimit: 300,
  },
  server: {
    proxy: { "/tauro.exec.v1.ExecService": execd },
    // The app imports the TypeScript client from clients/typescript.
    fs: { allow: [fileURLToPath(new URL("../../..", import.meta.url))] },
  },
});
