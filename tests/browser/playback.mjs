// Drives the demo's playback page in Debian's Chromium (headless, through playwright-core) the
// way a person would: waits until two segments are uploaded, picks the 15-minute window, clicks
// the green bar a few seconds before the end of the first segment, and watches the <video> play
// into the second one. Prints one JSON report line on stdout (host/tests/playback_browser.rs
// checks it against the blobs on disk) and exits 1 with the reason on stderr when the page fails.
// A screenshot of the page is always saved as OUT_DIR/playback.png.
//
// usage: node tests/browser/playback.mjs PAGE_URL OUT_DIR
// No network beyond 127.0.0.1: every request the page makes elsewhere is a failure.

import { mkdtempSync } from "node:fs";
import { join } from "node:path";

const [pageUrl, outDir] = process.argv.slice(2);
if (!pageUrl || !outDir) {
  console.error("usage: node playback.mjs PAGE_URL OUT_DIR");
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
const problems = []; // console errors, page errors, failed or off-host requests
const report = {};

async function api(path) {
  const r = await fetch(origin + path, { cache: "no-store" });
  if (!r.ok) throw new Error(`${path}: HTTP ${r.status} ${await r.text()}`);
  return r.json();
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
  ],
  viewport: { width: 1280, height: 800 },
});
const page = context.pages()[0] || (await context.newPage());
page.on("console", (m) => {
  if (m.type() === "error") problems.push(`console error: ${m.text()}`);
});
page.on("pageerror", (e) => problems.push(`page error: ${e.message}`));
page.on("request", (r) => {
  if (new URL(r.url()).hostname !== "127.0.0.1" && !r.url().startsWith("data:")) {
    problems.push(`request off loopback: ${r.url()}`);
  }
});
page.on("requestfailed", (r) => {
  // Switching <video src> aborts the previous segment's pending range request: that is the
  // player moving on, not a failure.
  const err = r.failure()?.errorText || "";
  if (!(r.resourceType() === "media" && err === "net::ERR_ABORTED")) {
    problems.push(`request failed: ${r.url()} ${err}`);
  }
});
page.on("response", (r) => {
  if (r.status() >= 400) problems.push(`HTTP ${r.status()} for ${r.url()}`);
});

const video = () =>
  page.evaluate(() => {
    const v = document.getElementById("player");
    return {
      src: v.currentSrc,
      currentTime: v.currentTime,
      paused: v.paused,
      width: v.videoWidth,
      height: v.videoHeight,
      error: v.error && { code: v.error.code, message: v.error.message },
    };
  });

async function checkedVideo() {
  const v = await video();
  if (v.error) throw new Error(`MediaError ${v.error.code} (${v.error.message}) playing ${v.src}`);
  return v;
}

try {
  await page.goto(pageUrl, { waitUntil: "load" });
  const asset = await waitFor("the asset list in the page", 10_000, () =>
    page.$eval("#asset", (s) => s.value),
  );

  // Two uploaded segments, so that playback can run from the first into the second.
  const now = Date.now();
  const range = `startTime=${new Date(now - 3600e3).toISOString()}&endTime=${new Date(now + 3600e3).toISOString()}`;
  const base = `/assets/${encodeURIComponent(asset)}`;
  const segs = await waitFor("two uploaded segments", 120_000, async () => {
    const s = (await api(`${base}/segments?${range}`)).segments;
    return s.length >= 2 && s;
  });
  report.segments = segs;

  // The 15-minute window (≈ 0.7 s per pixel) redraws the bar at once.
  await page.selectOption("#window", "0.25");
  const lastEnd = Date.parse(segs[segs.length - 1].end);
  await waitFor("the bar to show the recorded range up to the second segment", 15_000, async () => {
    const titles = await page.$$eval("#bar .media", (ns) => ns.map((n) => n.title));
    return titles.some((t) => Date.parse(t.split(" → ")[1]) >= lastEnd) && titles;
  });
  report.bar = await page.$$eval("#bar .media", (ns) =>
    ns.map((n) => {
      const r = n.getBoundingClientRect();
      return { title: n.title, left: r.left, width: r.width };
    }),
  );
  report.rangesText = await page.$eval("#ranges", (n) => n.textContent);
  report.instanceText = await page.$eval("#instance", (n) => n.textContent);
  // What the server says right after the page drew it (a new upload comes only every 30 s).
  report.timeRanges = (await api(`${base}/availableMedia?precision=full&${range}`)).timeRanges;

  // Click 8 s before the first segment's end. The bar is redrawn every 10 s as the window
  // slides, so the click is placed from a fresh measurement and retried if a redraw won.
  const [first, second] = segs;
  const target = Date.parse(first.end) - 8000;
  for (let attempt = 0; ; attempt++) {
    const box = await page.$eval("#bar .media", (n) => {
      const r = n.getBoundingClientRect();
      return { left: r.left, top: r.top, width: r.width, height: r.height, title: n.title };
    });
    const [s, e] = box.title.split(" → ").map(Date.parse);
    const x = box.left + (box.width * (target - s)) / (e - s);
    await page.mouse.click(x, box.top + box.height / 2);
    report.clickStatus = await page.$eval("#status", (n) => n.textContent);
    if (report.clickStatus.includes(first.url)) break;
    if (attempt === 2) throw new Error(`the click did not start the first segment: ${report.clickStatus}`);
  }

  // Playing in the first segment: real frames of the clip's size, and time moving.
  const started = await waitFor("the first segment to start playing", 15_000, async () => {
    const v = await checkedVideo();
    return v.src.endsWith(first.url) && !v.paused && v.width > 0 && v.currentTime > 0 && v;
  });
  report.videoWidth = started.width;
  report.videoHeight = started.height;
  report.firstStartTime = started.currentTime;
  let lastInFirst = started;
  const inSecond = await waitFor("playback to continue into the second segment", 30_000, async () => {
    const v = await checkedVideo();
    if (v.src.endsWith(first.url)) lastInFirst = v;
    return v.src.endsWith(second.url) && v.currentTime > 0 && !v.paused && v;
  });
  report.firstAdvance = lastInFirst.currentTime - started.currentTime;
  const secondStart = inSecond.currentTime;
  const later = await waitFor("2 s of playback in the second segment", 15_000, async () => {
    const v = await checkedVideo();
    return v.src.endsWith(second.url) && v.currentTime - secondStart >= 2 && v;
  });
  report.secondAdvance = later.currentTime - secondStart;
  report.secondWidth = later.width;
  report.secondHeight = later.height;
  report.head = await page.$eval("#head", (n) => n.style.display);
  report.problems = problems;
  await page.screenshot({ path: join(outDir, "playback.png") });
  await context.close();
  console.log(JSON.stringify(report));
  if (problems.length) {
    console.error("the page reported problems:\n" + problems.join("\n"));
    process.exit(1);
  }
} catch (e) {
  report.problems = problems;
  await page.screenshot({ path: join(outDir, "playback.png") }).catch(() => {});
  await context.close().catch(() => {});
  console.log(JSON.stringify(report));
  console.error(`${e.message}\nproblems seen: ${problems.join("; ") || "none"}`);
  process.exit(1);
}
