// Starts what the browser tests need: the Ollama simulator, the real origin in front of it,
// and a headless Chromium with a fresh profile. Every process started here is stopped here,
// by its own pid.
"use strict";

const { spawn } = require("node:child_process");
const fs = require("node:fs");
const net = require("node:net");
const os = require("node:os");
const path = require("node:path");
const { chromium } = require("playwright-core");

const ROOT = path.resolve(__dirname, "..", "..");
const ARTIFACTS = process.env.BROWSER_ARTIFACTS || path.join(__dirname, "artifacts");
const BIN = process.env.LIBRIASSIST_BIN || path.join(ROOT, "target", "debug", "libriassist");
const CHROMIUM = process.env.CHROMIUM_PATH || "/usr/bin/chromium";

fs.mkdirSync(ARTIFACTS, { recursive: true });

function freePort() {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.unref();
    server.on("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const { port } = server.address();
      server.close(() => resolve(port));
    });
  });
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** Polls `url` until it answers 200, or throws with the process log when `child` died. */
async function waitReady(url, child, logFile, timeoutMs) {
  const deadline = Date.now() + timeoutMs;
  let last = "no answer";
  while (Date.now() < deadline) {
    if (child.exitCode !== null) {
      throw new Error(`${url}: process exited with ${child.exitCode}\n${tail(logFile)}`);
    }
    try {
      const res = await fetch(url, { signal: AbortSignal.timeout(2000) });
      if (res.status === 200) return;
      last = `status ${res.status}: ${(await res.text()).slice(0, 300)}`;
    } catch (e) {
      last = String(e.cause || e.message);
    }
    await sleep(150);
  }
  throw new Error(`${url} not ready after ${timeoutMs} ms (${last})\n${tail(logFile)}`);
}

function tail(file) {
  try {
    return fs.readFileSync(file, "utf8").split("\n").slice(-40).join("\n");
  } catch {
    return "";
  }
}

const children = new Set();

function start(name, args, env) {
  const logFile = path.join(ARTIFACTS, `${name}.log`);
  const out = fs.openSync(logFile, "w");
  const child = spawn(BIN, args, {
    cwd: ROOT,
    env: { ...process.env, ...env },
    stdio: ["ignore", out, out],
  });
  fs.closeSync(out);
  children.add(child);
  child.on("exit", () => children.delete(child));
  return { child, logFile };
}

async function stop(child) {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise((r) => child.once("exit", r));
  process.kill(child.pid, "SIGTERM");
  const timer = setTimeout(() => {
    if (child.exitCode === null && child.signalCode === null) process.kill(child.pid, "SIGKILL");
  }, 5000);
  await exited;
  clearTimeout(timer);
}

// A crashed test run must not leave a server holding a port.
process.on("exit", () => {
  for (const child of children) {
    try {
      process.kill(child.pid, "SIGKILL");
    } catch {
      /* already gone */
    }
  }
});

/**
 * The origin in front of the simulator, on free loopback ports; `originEnv` adds settings
 * and `name` tells the logs of several stacks apart. With LIBRIASSIST_BASE_URL set, tests
 * use that deployment instead (e.g. through Envoy) and start nothing.
 */
async function startStack({ name = "", originEnv = {} } = {}) {
  if (process.env.LIBRIASSIST_BASE_URL) {
    return { baseUrl: process.env.LIBRIASSIST_BASE_URL.replace(/\/$/, ""), stop: async () => {} };
  }
  if (!fs.existsSync(BIN)) {
    throw new Error(`${BIN} is missing: run \`cargo build -p libriassist\` first (run.sh does)`);
  }
  const simPort = await freePort();
  const sim = start(`${name}sim`, [
    "sim",
    "--listen", `127.0.0.1:${simPort}`,
    "--slots", "4",
    "--ttft-ms", "100",
    "--tokens-per-sec", "30",
    "--answer-tokens", "40",
  ]);
  try {
    await waitReady(`http://127.0.0.1:${simPort}/api/tags`, sim.child, sim.logFile, 30000);
    const originPort = await freePort();
    const origin = start(`${name}origin`, ["serve"], {
      LIBRIASSIST_LISTEN: `127.0.0.1:${originPort}`,
      OLLAMA_URLS: `http://127.0.0.1:${simPort}`,
      RUST_LOG: process.env.RUST_LOG || "info",
      ...originEnv,
    });
    const baseUrl = `http://127.0.0.1:${originPort}`;
    try {
      await waitReady(`${baseUrl}/readyz`, origin.child, origin.logFile, 60000);
    } catch (e) {
      await stop(origin.child);
      throw e;
    }
    return {
      baseUrl,
      stop: async () => {
        await stop(origin.child);
        await stop(sim.child);
      },
    };
  } catch (e) {
    await stop(sim.child);
    throw e;
  }
}

/** Chromium with a throwaway profile; French, as most of the bookstore's customers. */
async function launchBrowser() {
  const profile = fs.mkdtempSync(path.join(os.tmpdir(), "libriassist-chromium-"));
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM,
    headless: true,
    args: [
      "--headless",
      "--no-sandbox",
      "--disable-gpu",
      "--disable-quic",
      "--no-first-run",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
    ],
    locale: "fr-FR",
    viewport: { width: 1280, height: 800 },
  });
  return {
    context,
    close: async () => {
      await context.close();
      fs.rmSync(profile, { recursive: true, force: true });
    },
  };
}

/** `[{event, data}]` of a complete text/event-stream body, `data` parsed as JSON. */
function parseSse(text) {
  const events = [];
  for (const block of text.split(/\r?\n\r?\n/)) {
    let event = "message";
    const data = [];
    for (const line of block.split(/\r?\n/)) {
      if (line.startsWith("event:")) event = line.slice(6).trim();
      else if (line.startsWith("data:")) data.push(line.slice(5).replace(/^ /, ""));
    }
    if (data.length) events.push({ event, data: JSON.parse(data.join("\n")) });
  }
  return events;
}

// Chromium hands a charset-less text body to the DevTools protocol decoded as windows-1252,
// whereas the page reads SSE as UTF-8, the format's only encoding. This undoes the former.
const CP1252_BYTE = new Map();
{
  const decoder = new TextDecoder("windows-1252");
  for (let b = 0; b < 256; b++) CP1252_BYTE.set(decoder.decode(Uint8Array.of(b)), b);
}

/** The text of an event-stream response as the page decoded it. */
async function eventStreamText(response) {
  const text = await response.text();
  if (/charset=utf-8/i.test(response.headers()["content-type"] || "")) return text;
  const bytes = Array.from(text, (ch) => CP1252_BYTE.get(ch));
  if (bytes.some((b) => b === undefined)) return text; // was not windows-1252 after all
  return Buffer.from(bytes).toString("utf8");
}

/** An SSE body as the origin writes it, for responses the tests substitute. */
function sseBody(events) {
  return events.map(([event, data]) => `event: ${event}\ndata: ${JSON.stringify(data)}\n\n`).join("");
}

module.exports = { ARTIFACTS, ROOT, startStack, launchBrowser, parseSse, eventStreamText, sseBody, sleep };
