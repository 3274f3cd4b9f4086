// Drives the demo's playback page live in Debian's Chromium (headless, through playwright-core):
// waits until the open segment has a durable part in the asset's live playlist, presses
// "Live" (hls.js in low-latency mode, served by the binary), and samples the glass-to-player
// latency = Date.now() - the program date time being shown (hls.js `playingDate`) every 0.5 s
// for at least 20 s of playback and until the picture has moved on past the segment that was
// open when playback started (so playback continued across its seal). Prints one JSON report
// line on stdout (host/tests/playback_browser.rs checks it) and exits 1 with the reason on
// stderr when the page fails. A screenshot is always saved as OUT_DIR/live.png.
//
// usage: node tests/browser/live.mjs PAGE_URL OUT_DIR
// No network beyond 127.0.0.1: every request the page makes elsewhere is a failure.

import { mkdtempSync } from "node:fs";
import { join } from "node:path";

const [pageUrl, outDir] = process.argv.slice(2);
if (!pageUrl || !outDir) {
  console.error("usage: node live.mjs PAGE_URL OUT_DIR");
  process.exit(2);
}

let chromium;
try {
  ({ chromium } = await import("playwright-core"));
} catch (e) {
  console.error(
    "playwright-core is missing: run `npm ci --prefix tests` (tests/install-peers.sh does): " + e.message,
  );
  process.exit(3);
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const origin = new URL(pageUrl).origin;
const problems = [];
const report = {};

async function text(path) {
  const r = await fetch(origin + path, { cache: "no-store" });
  if (!r.ok) throw new Error(`${path}: HTTP ${r.status} ${await r.text()}`);
  return r.text();
}

async function waitFor(what, timeoutMs, check) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await check();
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs / 1000} s waiting for ${what}`);
    await sleep(250);
  }
}

// The playlist's segments: program date time, whether complete (#EXTINF), number of parts.
function segmentsOf(playlist) {
  const segs = [];
  for (const line of playlist.split("\n")) {
    if (line.startsWith("#EXT-X-PROGRAM-DATE-TIME:")) {
      segs.push({ start: Date.parse(line.slice(25)), complete: false, parts: 0 });
    } else if (line.startsWith("#EXT-X-PART:") && segs.length) {
      segs[segs.length - 1].parts++;
    } else if (line.startsWith("#EXTINF:") && segs.length) {
      segs[segs.length - 1].complete = true;
      segs[segs.length - 1].duration = parseFloat(line.slice(8));
    }
  }
  return segs;
}

const context = await chromium.launchPersistentContext(mkdtempSync(join(outDir, "profile-")), {
  executablePath: "/usr/bin/chromium",
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
    "--autoplay-policy=no-user-gesture-required",
  ],
  viewport: { width: 1280, height: 800 },
});
const page = context.pages()[0] || (await context.newPage());
page.on("console", (m) => {
  if (m.type() === "error") problems.push(`console error: ${m.text()}`);
});
page.on("pageerror", (e) => problems.push(`page error: ${e.message}`));
page.on("request", (r) => {
  // blob: URLs are the Media Source objects hls.js feeds the <video> (in-page, no network).
  const inPage = r.url().startsWith("data:") || r.url().startsWith("blob:http://127.0.0.1:");
  if (new URL(r.url()).hostname !== "127.0.0.1" && !inPage) {
    problems.push(`request off loopback: ${r.url()}`);
  }
});
page.on("requestfailed", (r) => {
  const err = r.failure()?.errorText || "";
  // hls.js cancels a pending blocking playlist reload when it asks for a newer one.
  if (!(err === "net::ERR_ABORTED" && r.url().includes("live.m3u8"))) {
    problems.push(`request failed: ${r.url()} ${err}`);
  }
});
page.on("response", (r) => {
  if (r.status() >= 400) problems.push(`HTTP ${r.status()} for ${r.url()}`);
});

const state = () =>
  page.evaluate(() => {
    const v = document.getElementById("player");
    return {
      currentTime: v.currentTime,
      paused: v.paused,
      width: v.videoWidth,
      height: v.videoHeight,
      error: v.error && { code: v.error.code, message: v.error.message },
      latency: window.liveLatency(),
      status: document.getElementById("status").textContent,
    };
  });

async function checked() {
  const s = await state();
  if (s.error) throw new Error(`MediaError ${s.error.code} (${s.error.message})`);
  return s;
}

try {
  await page.goto(pageUrl, { waitUntil: "load" });
  const asset = await waitFor("the asset list in the page", 10_000, () => page.$eval("#asset", (s) => s.value));
  const live = `/assets/${encodeURIComponent(asset)}/live.m3u8`;
  const open = await waitFor("a durable part of the open segment", 60_000, async () => {
    const segs = segmentsOf(await text(live));
    const last = segs[segs.length - 1];
    return last && !last.complete && last.parts > 0 && last;
  });
  report.openAtStart = new Date(open.start).toISOString();

  await page.click("#live");
  const playing = await waitFor("live playback to start", 30_000, async () => {
    const s = await checked();
    return !s.paused && s.width > 0 && s.currentTime > 0 && s.latency !== null && s;
  });
  report.videoWidth = playing.width;
  report.videoHeight = playing.height;
  const startedAt = Date.now();
  const samples = [];
  let sealed = null;
  let last = playing;
  for (;;) {
    await sleep(500);
    const s = await checked();
    samples.push(s.latency);
    last = s;
    const elapsed = (Date.now() - startedAt) / 1000;
    if (!sealed) {
      // The segment open at the start, once the playlist lists it complete.
      sealed = segmentsOf(await text(live)).find((g) => g.start === open.start && g.complete) || null;
    }
    const playingDate = Date.now() - s.latency * 1000;
    const pastSeal = sealed && playingDate > open.start + sealed.duration * 1000 + 2000;
    if (elapsed >= 20 && pastSeal) break;
    if (elapsed > 75) throw new Error(`playback did not get past the seal of the segment open at the start (sealed: ${JSON.stringify(sealed)}, latency ${s.latency})`);
  }
  const wall = (Date.now() - startedAt) / 1000;
  report.measuredSeconds = wall;
  report.advance = last.currentTime - playing.currentTime;
  report.sealedDuration = sealed.duration;
  report.latency = {
    samples: samples.length,
    min: Math.min(...samples),
    max: Math.max(...samples),
    mean: samples.reduce((a, b) => a + b, 0) / samples.length,
    all: samples.map((l) => Math.round(l * 1000) / 1000),
  };
  report.status = last.status;
  report.problems = problems;
  await page.screenshot({ path: join(outDir, "live.png") });
  await context.close();
  console.log(JSON.stringify(report));
  if (problems.length) {
    console.error("the page reported problems:\n" + problems.join("\n"));
    process.exit(1);
  }
} catch (e) {
  report.problems = problems;
  await page.screenshot({ path: join(outDir, "live.png") }).catch(() => {});
  await context.close().catch(() => {});
  console.log(JSON.stringify(report));
  console.error(`${e.message}\nproblems seen: ${problems.join("; ") || "none"}`);
  process.exit(1);
}
