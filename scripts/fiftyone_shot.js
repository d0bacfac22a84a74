// Screenshot of a FiftyOne App page with playwright-core driving the system Chromium.
//
//   node scripts/fiftyone_shot.js URL OUT.png [--chromium /usr/bin/chromium] [--size 1400x900] [--wait 8000]
//
// Used by scripts/fiftyone_screenshots.py when playwright-core is installed (npm install
// playwright-core in a folder outside the repo, then NODE_PATH=<that folder>/node_modules).
// Marks the page as automated so the App skips its first-visit promotion popover, waits for the
// page to settle, and writes a PNG of the viewport.
"use strict";

const { chromium } = require("playwright-core");

function parse(argv) {
  const opts = { chromium: "/usr/bin/chromium", size: "1400x900", wait: 8000, positional: [] };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === "--chromium") opts.chromium = argv[++i];
    else if (a === "--size") opts.size = argv[++i];
    else if (a === "--wait") opts.wait = Number(argv[++i]);
    else opts.positional.push(a);
  }
  if (opts.positional.length !== 2) {
    throw new Error("usage: fiftyone_shot.js URL OUT.png [--chromium PATH] [--size WxH] [--wait MS]");
  }
  const [w, h] = opts.size.split("x").map(Number);
  return { url: opts.positional[0], out: opts.positional[1], chromium: opts.chromium, width: w, height: h, wait: opts.wait };
}

(async () => {
  const o = parse(process.argv.slice(2));
  const browser = await chromium.launch({
    executablePath: o.chromium,
    args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
           "--disable-component-update", "--disable-sync", "--hide-scrollbars"],
  });
  try {
    const page = await browser.newPage({ viewport: { width: o.width, height: o.height } });
    await page.addInitScript(() => {
      window.IS_PLAYWRIGHT = true;
      try { window.localStorage.setItem("fiftyone-enterprise-tooltip-seen", "true"); } catch (e) { /* ignore */ }
    });
    await page.goto(o.url, { waitUntil: "load", timeout: 120000 });
    await page.waitForLoadState("networkidle", { timeout: 20000 }).catch(() => {});
    await page.waitForTimeout(o.wait);
    await page.screenshot({ path: o.out });
    console.log(`wrote ${o.out}`);
  } finally {
    await browser.close();
  }
})().catch((err) => {
  console.error(err && err.stack ? err.stack : String(err));
  process.exit(1);
});
