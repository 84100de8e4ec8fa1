// Renders Adaptive Cards with the official JavaScript renderer (npm `adaptivecards`, pinned in
// package.json) in headless Debian Chromium, with Teams' light and dark host configs, and
// prints what the renderer reported, as JSON on stdout:
//   {"renderer": "<version>", "cards": {"<name>": {"<theme>": {"warnings": [...], "errors": [...],
//    "text": "<the rendered text>", "parsed": ["TextBlock", ...]}}}}
// warnings: the parse context's validation events (unknown types or properties, bad values)
//   and those of validateProperties(); errors: no element rendered, a page error, or a
//   DATE/TIME template the renderer did not expand.
// Usage: node render.mjs <cards.json> [hostconfig-dir]   (cards.json: {"name": card, ...})
// Environment: CHROMIUM (/usr/bin/chromium). No browser is downloaded: playwright-core only
// drives the Debian one, with the flags of tests/e2e/e2e.mjs.
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { createRequire } from "node:module";
import { fileURLToPath } from "node:url";
import { chromium } from "playwright-core";

const HERE = path.dirname(fileURLToPath(import.meta.url));
const require = createRequire(import.meta.url);
const CHROMIUM = process.env.CHROMIUM || "/usr/bin/chromium";
const CHROMIUM_ARGS = [
  "--no-sandbox",
  "--disable-gpu",
  "--disable-quic",
  "--no-first-run",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
];

const [cardsPath, hostDir = path.join(HERE, "..", "fixtures", "teams")] = process.argv.slice(2);
if (!cardsPath) {
  console.error("usage: node render.mjs <cards.json> [hostconfig-dir]");
  process.exit(2);
}
const cards = JSON.parse(fs.readFileSync(cardsPath, "utf8"));
const hostConfigs = {
  light: JSON.parse(fs.readFileSync(path.join(hostDir, "microsoft-teams-light.json"), "utf8")),
  dark: JSON.parse(fs.readFileSync(path.join(hostDir, "microsoft-teams-dark.json"), "utf8")),
};
const pkg = require("adaptivecards/package.json");
const bundle = require.resolve("adaptivecards/dist/adaptivecards.min.js");

function renderAll({ cards, hostConfigs }) {
  const AC = window.AdaptiveCards;
  // Teams renders TextBlock text as Markdown; this small processor does what the cards use:
  // backslash escapes (set aside first), **bold**, _italic_, [label](https://...) links; HTML
  // in the text is escaped.
  AC.AdaptiveCard.onProcessMarkdown = (text, result) => {
    const html = text
      .replace(/\\([\\`*_{}\[\]()#+\-.!|~&<>])/g, (_, c) => `\u0000${c.charCodeAt(0)}\u0000`)
      .replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;")
      .replace(/\*\*(.+?)\*\*/g, "<strong>$1</strong>")
      .replace(/(^|\s)_(.+?)_(?=\s|$)/g, "$1<em>$2</em>")
      .replace(/\[([^\]]+)\]\((https:[^)\s]+)\)/g, '<a href="$2">$1</a>')
      .replace(/\u0000(\d+)\u0000/g, "&#$1;");
    result.outputHtml = html;
    result.didProcess = true;
  };
  const out = {};
  for (const [name, json] of Object.entries(cards)) {
    out[name] = {};
    for (const [theme, hc] of Object.entries(hostConfigs)) {
      const warnings = [];
      const errors = [];
      const card = new AC.AdaptiveCard();
      card.hostConfig = new AC.HostConfig(hc);
      const context = new AC.SerializationContext();
      // every element and action the renderer built, by type: a type the renderer does not
      // know is dropped (and logged as a parse event), so it is missing here
      const parsed = [];
      context.onParseElement = (el) => parsed.push(el.getJsonTypeName());
      context.onParseAction = (action) => parsed.push(action.getJsonTypeName());
      card.parse(json, context);
      for (let i = 0; i < context.eventCount; i++) {
        const e = context.getEventAt(i);
        warnings.push(`parse: ${AC.ValidationEvent[e.event] ?? e.event}: ${e.message}`);
      }
      for (const e of card.validateProperties().validationEvents) {
        warnings.push(`validate: ${AC.ValidationEvent[e.event] ?? e.event}: ${e.message}`);
      }
      let text = "";
      try {
        const el = card.render();
        if (!el) {
          errors.push("render() returned nothing");
        } else {
          const host = document.createElement("div");
          host.style.width = "500px";
          host.appendChild(el);
          document.body.appendChild(host);
          text = host.innerText;
          if (/\{\{(DATE|TIME)\(/.test(text)) errors.push("a DATE/TIME template was not expanded");
          host.remove();
        }
      } catch (e) {
        errors.push(`render threw: ${e && e.message}`);
      }
      out[name][theme] = { warnings, errors, text, parsed };
    }
  }
  return out;
}

async function main() {
  const userDataDir = fs.mkdtempSync(path.join(os.tmpdir(), "entra-sync-cards-render-"));
  const context = await chromium.launchPersistentContext(userDataDir, {
    executablePath: CHROMIUM,
    headless: true,
    args: CHROMIUM_ARGS,
  });
  const pageErrors = [];
  try {
    const page = context.pages()[0] || (await context.newPage());
    page.on("pageerror", (e) => pageErrors.push(e.message));
    page.on("console", (m) => {
      if (m.type() === "error" || m.type() === "warning") pageErrors.push(`console ${m.type()}: ${m.text()}`);
    });
    await page.setContent("<!doctype html><html lang=\"en\"><body></body></html>");
    await page.addScriptTag({ path: bundle });
    const result = await page.evaluate(renderAll, { cards, hostConfigs });
    if (pageErrors.length) {
      for (const r of Object.values(result)) for (const t of Object.values(r)) t.errors.push(...pageErrors);
    }
    process.stdout.write(JSON.stringify({ renderer: pkg.version, cards: result }) + "\n");
  } finally {
    await context.close();
    fs.rmSync(userDataDir, { recursive: true, force: true });
  }
}

main().catch((e) => {
  console.error(e && e.stack ? e.stack : String(e));
  process.exit(1);
});
