// End-to-end: drive the Agents Playground (a Teams-like web client) in headless Debian Chromium
// against the running bot with the demo tenant. Started by run.sh, which starts the bot and the
// Playground first. See docs/e2e.md.
//
// Steps (each a check; the last line says "e2e: N passed, M failed"):
//   1. install the app in a team (open the team's General channel)
//   2. "@Entra Sync sync now" -> the sync summary and the proposal card(s)
//   3. a match card with an Accept button (from the run, or "sync <name>" for one match of the digest)
//   4. "@Entra Sync status" -> counters before the decision
//   5. click Accept -> the card becomes "Accepted by <the Playground user>"
//   6. "@Entra Sync status" -> one fewer pending match
//   7. "@Entra Sync sync Leo Larsson" -> the removal card of a user deleted in Entra (the demo
//      directory's Leo Larsson is linked to an Entra user the demo tenant no longer has)
//   8. "@Entra Sync pending" -> page 1 of the digest; Next -> page 2, other names
// Card screenshots (card-*.png, only the card) are the README's pictures (docs/screenshots/).
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { chromium } from "playwright-core";

const HERE = path.dirname(fileURLToPath(import.meta.url));
const URL = process.env.PLAYGROUND_URL || "http://127.0.0.1:56150/";
const ARTIFACTS = process.env.E2E_ARTIFACTS || path.join(HERE, "artifacts");
const CHROMIUM = process.env.CHROMIUM || "/usr/bin/chromium";
const BOT_NAME = "Entra Sync"; // .m365agentsplayground.yml bot.name
const USER_NAME = "Alex Wilber"; // .m365agentsplayground.yml currentUser.name
const STEP_TIMEOUT = 30_000;

// Flags from the platform notes: headless, no sandbox as root, and no background networking
// (the machine's closed network refuses Chromium's own connections).
const CHROMIUM_ARGS = [
  "--no-sandbox",
  "--disable-gpu",
  "--disable-quic",
  "--no-first-run",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
];

let passed = 0;
let shot = 0;
const log = (...a) => console.log(`[e2e ${new Date().toISOString().slice(11, 19)}]`, ...a);

async function step(name, fn) {
  const t0 = Date.now();
  try {
    const out = await fn();
    passed += 1;
    log(`ok   ${name} (${((Date.now() - t0) / 1000).toFixed(1)} s)`);
    return out;
  } catch (e) {
    const err = new Error(`step "${name}" failed: ${e.message}`);
    err.cause = e;
    throw err;
  }
}

async function screenshot(page, name) {
  shot += 1;
  const file = path.join(ARTIFACTS, `${String(shot).padStart(2, "0")}-${name}.png`);
  await page.screenshot({ path: file });
  log(`screenshot ${path.relative(process.cwd(), file)}`);
  return file;
}

// A picture of one card only (small enough for the README).
async function cardShot(card, name) {
  const file = path.join(ARTIFACTS, `card-${name}.png`);
  await card.scrollIntoViewIfNeeded();
  await card.screenshot({ path: file });
  log(`screenshot ${path.relative(process.cwd(), file)}`);
  return file;
}

// The names a digest card lists ("• Match · Name"), in order.
async function digestNames(card) {
  const text = await card.innerText();
  return [...text.matchAll(/^\s*•\s*\w+\s*·\s*(.+?)\s*$/gm)].map((m) => m[1]);
}

// Type "@Entra Sync <text>" into a compose box, choosing the bot from the mention picker (the
// Playground then sends "<at>Entra Sync</at> <text>" with a mention entity, as Teams does).
async function mentionBot(page, box, text) {
  await box.click();
  await page.keyboard.type("@Entra");
  await page.getByRole("menuitem", { name: BOT_NAME }).click({ timeout: STEP_TIMEOUT });
  await page.keyboard.type(` ${text}`);
}

// A new post in the channel (a new thread); the bot answers in the thread.
async function post(page, text) {
  const box = page.getByRole("textbox").first(); // "Start a new post"
  await mentionBot(page, box, text);
  await page.getByRole("button", { name: "Post", exact: true }).click();
}

const cards = (page) => page.locator(".ac-adaptiveCard");

function parseStatus(text) {
  const synced = text.match(/(\d+)\s*\/\s*(\d+)\s*synced/i);
  const match = text.match(/\bmatch(?:es)?\b\D{0,20}?(\d+)/i);
  return {
    synced: synced ? Number(synced[1]) : null,
    of: synced ? Number(synced[2]) : null,
    matches: match ? Number(match[1]) : null,
  };
}

// "@Entra Sync status" and the text of the answer (a card or a message in the new thread).
async function status(page, label) {
  const before = await page.getByText(/\d+\s*\/\s*\d+\s*synced/i).count();
  await post(page, "status");
  const answer = page.getByText(/\d+\s*\/\s*\d+\s*synced/i);
  await answer.nth(before).waitFor({ timeout: STEP_TIMEOUT }); // new threads appear on top
  // The newest thread is the first one on the page; read its card (or text).
  const card = cards(page).filter({ hasText: /synced/i }).first();
  const text = (await card.count()) ? await card.innerText() : await answer.first().innerText();
  await screenshot(page, label);
  const counters = parseStatus(text);
  log(`${label}: ${JSON.stringify(counters)} <- ${text.replace(/\s+/g, " ").slice(0, 300)}`);
  if (counters.synced === null) throw new Error(`no "N/M synced" in the status answer: ${text}`);
  return counters;
}

async function main() {
  fs.mkdirSync(ARTIFACTS, { recursive: true });
  const userDataDir = fs.mkdtempSync(path.join(os.tmpdir(), "entra-sync-e2e-chromium-"));
  const context = await chromium.launchPersistentContext(userDataDir, {
    executablePath: CHROMIUM,
    headless: true,
    args: CHROMIUM_ARGS,
    viewport: { width: 1400, height: 1000 },
  });
  const page = context.pages()[0] || (await context.newPage());
  page.setDefaultTimeout(STEP_TIMEOUT);
  page.on("pageerror", (e) => log(`page error: ${e.message}`));
  try {
    await step("install the app in a team", async () => {
      await page.goto(URL, { waitUntil: "domcontentloaded" });
      // Opening the team's channel for the first time sends installationUpdate (add) and
      // conversationUpdate (bot added) for the team, as installing an app in a team does.
      const composer = page.getByText("Start a new post");
      for (let i = 0; i < 20 && !(await composer.isVisible()); i += 1) {
        await page.getByRole("treeitem", { name: /General/ }).click();
        await page.waitForTimeout(500);
      }
      await composer.waitFor();
      await screenshot(page, "installed-in-team");
    });

    await step("sync now posts the proposals", async () => {
      await post(page, "sync now");
      await page.getByText(/Sync done|nothing to decide|new to decide/i).first().waitFor();
      await cards(page).first().waitFor();
      await screenshot(page, "sync-now-cards");
      const digest = cards(page).filter({ hasText: /wait for a decision/i }).first();
      if (await digest.count()) await cardShot(digest, "digest");
    });

    const match = await step("a match card with Accept", async () => {
      const isMatch = (loc) => loc.filter({ hasText: /matches a directory user/i });
      let card = isMatch(cards(page)).filter({
        has: page.getByRole("button", { name: "Accept", exact: true }),
      });
      if ((await card.count()) === 0) {
        // Many proposals: the run posted one digest. Take its first match and ask for it alone.
        const digest = cards(page).filter({ hasText: /wait for a decision/i }).first();
        const text = await digest.innerText();
        const m = text.match(/Match\s*·\s*([^\n]+)/);
        if (!m) throw new Error(`no match in the digest card: ${text}`);
        const name = m[1].trim();
        log(`digest lists ${name} as a match; asking for that user alone`);
        await post(page, `sync ${name}`);
        card = isMatch(cards(page).filter({ hasText: name }));
        await card.first().waitFor();
        card = card.filter({ has: page.getByRole("button", { name: "Accept", exact: true }) });
      }
      const first = card.first();
      await first.waitFor();
      const title = (await first.innerText()).match(/^(.+?) matches a directory user/m);
      const name = title ? title[1].trim() : "";
      await first.scrollIntoViewIfNeeded();
      await screenshot(page, "match-card");
      await cardShot(first, "match");
      return { name };
    });

    const before = await step("status before the decision", () => status(page, "status-before"));

    await step("Accept changes the card to Accepted by the user", async () => {
      const card = cards(page)
        .filter({ hasText: match.name || /matches a directory user/i })
        .filter({ has: page.getByRole("button", { name: "Accept", exact: true }) })
        .first();
      await card.getByRole("button", { name: "Accept", exact: true }).click();
      const done = cards(page).filter({ hasText: new RegExp(`Accepted by ${USER_NAME}`) });
      await done.first().waitFor();
      if (match.name && !(await done.first().innerText()).includes(match.name)) {
        throw new Error(`the accepted card does not name ${match.name}`);
      }
      await done.first().scrollIntoViewIfNeeded();
      await screenshot(page, "accepted");
      await cardShot(done.first(), "accepted");
    });

    await step("status shows the new counters", async () => {
      const after = await status(page, "status-after");
      // The accepted match leaves the pending list at once. "N/M synced" is the figure of the
      // last sync run (the service counts it when it syncs), so it may only grow on the next run.
      if (before.matches === null || after.matches !== before.matches - 1) {
        throw new Error(`pending matches went ${before.matches} -> ${after.matches}, expected -1`);
      }
      if (after.synced < before.synced) {
        throw new Error(`synced went down: ${before.synced} -> ${after.synced}`);
      }
    });

    await step("sync <name> reaches the pending removal of a deleted user", async () => {
      const name = "Leo Larsson"; // examples/demo: linked in the directory, deleted in Entra
      const removal = () =>
        cards(page)
          .filter({ hasText: name })
          .filter({ has: page.getByRole("button", { name: "Remove sync", exact: true }) });
      const before = await removal().count();
      await post(page, `sync ${name}`);
      await removal().nth(before).waitFor();
      const card = removal().first(); // the newest thread is on top
      const text = await card.innerText();
      if (!/was deleted|Gone/i.test(text)) throw new Error(`not a removal card: ${text}`);
      await screenshot(page, "removal-by-name");
      await cardShot(card, "removal");
    });

    await step("pending pages through the items: Next shows the next page", async () => {
      const digests = () => cards(page).filter({ hasText: /wait for a decision/i });
      const before = await digests().count();
      await post(page, "pending");
      await digests().nth(before).waitFor();
      const card = digests().first();
      const first = await digestNames(card);
      if (first.length === 0) throw new Error(`no names on page 1: ${await card.innerText()}`);
      if (!/and \d+ more/.test(await card.innerText())) {
        throw new Error(`page 1 does not say how many more: ${await card.innerText()}`);
      }
      await card.getByRole("button", { name: "Next", exact: true }).click();
      const second = cards(page).filter({ hasText: /Page 2 of/ }).first();
      await second.waitFor();
      const next = await digestNames(second);
      if (next.length === 0 || next.some((n) => first.includes(n))) {
        throw new Error(`page 2 ${JSON.stringify(next)} repeats page 1 ${JSON.stringify(first)}`);
      }
      log(`page 1: ${first.join(", ")}; page 2: ${next.join(", ")}`);
      await screenshot(page, "pending-page-2");
      await cardShot(second, "pending-page-2");
    });
  } catch (e) {
    log(e.message);
    try {
      await screenshot(page, "failure");
    } catch {
      /* the page may be gone */
    }
    await context.close();
    console.log(`e2e: ${passed} passed, 1 failed`);
    return 1;
  }
  await context.close();
  fs.rmSync(userDataDir, { recursive: true, force: true });
  console.log(`e2e: ${passed} passed, 0 failed`);
  return 0;
}

process.exit(await main());
