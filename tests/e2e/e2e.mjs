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
//   9. a non-admin's view: Megan Bowen opens the team in the second Playground (she is in the
//      team, tests/e2e/config.toml names only Alex as an admin) and asks for the status; her
//      press of "Accept all matches" on her `pending` card is refused (no buttons, nothing
//      accepted); then the refresh invoke of step 7's removal card (Universal Actions, as Teams sends it for
//      user-specific views, which the Playground never sends) is posted to the bot's endpoint
//      as Megan and as Alex: Megan gets the card read-only, Alex gets its buttons
//  10. Swedish: with the Playground sending locale sv-SE, "@Entra Sync status" answers in Swedish
// Card screenshots (card-*.png, only the card) are the README's pictures (docs/screenshots/).
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { chromium } from "playwright-core";

const HERE = path.dirname(fileURLToPath(import.meta.url));
const URL = process.env.PLAYGROUND_URL || "http://127.0.0.1:29150/";
const URL2 = process.env.PLAYGROUND2_URL || "http://127.0.0.1:29152/"; // Megan Bowen's
const BOT_URL = process.env.BOT_URL || "http://127.0.0.1:3978/api/messages";
const LOCALE_FILE = process.env.E2E_LOCALE_FILE || "";
const ARTIFACTS = process.env.E2E_ARTIFACTS || path.join(HERE, "artifacts");
const CHROMIUM = process.env.CHROMIUM || "/usr/bin/chromium";
const BOT_NAME = "Entra Sync"; // .m365agentsplayground.yml bot.name
const USER_NAME = "Alex Wilber"; // .m365agentsplayground.yml currentUser.name
// The ids both Playground contexts use (docs/e2e.md "The Agents Playground's context").
const BOT_ID = "00000000-0000-0000-0000-00000000000011";
const TENANT = "00000000-0000-0000-0000-0000000000001";
const ALEX = { id: "user-id-0", name: "Alex Wilber", aadObjectId: "00000000-0000-0000-0000-0000000000020" };
const MEGAN = { id: "user-id-1", name: "Megan Bowen", aadObjectId: "00000000-0000-0000-0000-0000000000021" };
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

// Every JSON object inside a value, JSON text in strings included (the Playground's WebSocket
// frames carry the bot's activities, whose card may be an object or a JSON string).
function* objects(value) {
  if (typeof value === "string") {
    const t = value.replace(/^\d+/, ""); // a socket.io-style prefix, if any
    if (/^[[{]/.test(t)) {
      try {
        yield* objects(JSON.parse(t));
      } catch {
        /* not JSON */
      }
    }
  } else if (Array.isArray(value)) {
    for (const v of value) yield* objects(v);
  } else if (value && typeof value === "object") {
    yield value;
    for (const v of Object.values(value)) yield* objects(v);
  }
}

// The Action.Execute / Submit / ShowCard / OpenUrl buttons of a card, anywhere in it.
const buttons = (card) => [...objects(card)].filter((o) => /^Action\./.test(o.type || ""));

// Microsoft's documented refresh invoke for user-specific views ("Invoke request sent from
// Teams client to the bot", tests/fixtures/teams/user-specific-views-refresh-invoke.json) in
// the envelope the Playground sends from the team's General channel (no token: local mode),
// posted to the bot's endpoint as `user`; answers the card of the invoke response.
async function refreshAs(user, serviceUrl, data) {
  const activity = {
    type: "invoke",
    name: "adaptiveCard/action",
    id: `e2e-${Date.now()}-${user.id}`,
    timestamp: new Date().toISOString(),
    channelId: "msteams",
    serviceUrl,
    locale: "en-US",
    from: { ...user, role: "user" },
    recipient: { id: BOT_ID, name: BOT_NAME, role: "bot" },
    conversation: { id: "team-id", conversationType: "channel", tenantId: TENANT, isGroup: true },
    channelData: {
      tenant: { id: TENANT },
      team: { id: "team-id", name: "Admins", aadGroupId: "00000000-0000-0000-0000-000000000031" },
      channel: { id: "team-id", name: "General" },
    },
    value: {
      action: { type: "Action.Execute", id: "", verb: "refresh", data },
      trigger: "automatic",
    },
  };
  const res = await fetch(BOT_URL, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify(activity),
  });
  const body = await res.json();
  if (res.status !== 200 || body.type !== "application/vnd.microsoft.card.adaptive") {
    throw new Error(`refresh as ${user.name}: HTTP ${res.status} ${JSON.stringify(body).slice(0, 300)}`);
  }
  return body.value;
}

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
  // What the Playground's server pushes to the page (the bot's activities, cards included):
  // step 9 reads the posted removal card's action data from it.
  const frames = [];
  page.on("websocket", (ws) => ws.on("framereceived", (f) => frames.push(String(f.payload))));
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

    await step("a non-admin gets a card read-only, the admin gets its buttons", async () => {
      // the removal card of step 7 as the bot posted it: its Remove sync button's data
      const posted = frames
        .flatMap((f) => [...objects(f)])
        .filter((o) => o.type === "AdaptiveCard" && JSON.stringify(o).includes("Leo Larsson"))
        .flatMap((card) => buttons(card))
        .find((b) => b.verb === "remove_sync");
      if (!posted) throw new Error(`no removal card of Leo Larsson in ${frames.length} frames`);
      const data = { pid: posted.data.pid, d: posted.data.d };
      // Megan Bowen opens the team in her own Playground: in the team, not an admin
      const page2 = await context.newPage();
      page2.setDefaultTimeout(STEP_TIMEOUT);
      await page2.goto(URL2, { waitUntil: "domcontentloaded" });
      const composer = page2.getByText("Start a new post");
      for (let i = 0; i < 20 && !(await composer.isVisible()); i += 1) {
        await page2.getByRole("treeitem", { name: /General/ }).click();
        await page2.waitForTimeout(500);
      }
      await composer.waitFor();
      const before = await status(page2, "second-user-status"); // a member reads: no refusal
      // In the Playground cards keep their buttons for everyone (local mode names nobody in
      // refresh.userIds); a non-admin's press is refused and the card loses its buttons.
      await post(page2, "pending");
      const digest = cards(page2).filter({ hasText: /wait for a decision/i }).first();
      await digest.getByRole("button", { name: "Accept all matches", exact: true }).click();
      const refused = cards(page2).filter({ hasText: "Only admins can do this." }).first();
      await refused.waitFor();
      const left = await refused.getByRole("button").count();
      if (left) throw new Error(`the card Megan's press answered has ${left} buttons`);
      await screenshot(page2, "second-user-refused");
      await cardShot(refused, "non-admin-refused");
      const after = await status(page2, "second-user-status-after");
      if (after.matches !== before.matches) {
        throw new Error(`Megan's press changed pending matches: ${before.matches} -> ${after.matches}`);
      }
      const serviceUrl = `http://localhost:${new globalThis.URL(URL2).port}/_connector`;
      const megan = await refreshAs(MEGAN, serviceUrl, data);
      const alex = await refreshAs(ALEX, serviceUrl, data);
      const text = (card) => JSON.stringify(card);
      const verbs = (card) => buttons(card).map((b) => b.verb || b.type);
      log(`refresh as Megan: buttons ${JSON.stringify(verbs(megan))}; as Alex: ${JSON.stringify(verbs(alex))}`);
      if (!text(megan).includes("Leo Larsson") || !text(megan).includes("Only admins can decide")) {
        throw new Error(`Megan did not get the removal card read-only: ${text(megan).slice(0, 400)}`);
      }
      if (buttons(megan).some((b) => b.verb !== "refresh")) {
        throw new Error(`Megan's card has buttons: ${JSON.stringify(verbs(megan))}`);
      }
      if (!verbs(alex).includes("remove_sync")) {
        throw new Error(`Alex's card has no Remove sync: ${JSON.stringify(verbs(alex))}`);
      }
      await page2.close();
    });

    await step("a card in Swedish when the Playground sends locale sv-SE", async () => {
      if (!LOCALE_FILE) throw new Error("E2E_LOCALE_FILE is not set (run.sh sets it)");
      const swedish = () => cards(page).filter({ hasText: "Status för Entra Sync" });
      const before = await swedish().count();
      fs.writeFileSync(LOCALE_FILE, "sv-SE\n");
      try {
        await post(page, "status");
        await swedish().nth(before).waitFor();
      } finally {
        fs.writeFileSync(LOCALE_FILE, ""); // English again for anything after
      }
      const card = swedish().first();
      const text = await card.innerText();
      // cards/catalogue_sv.py: "{synced}/{total} synkade", "Senaste synk", "Väntar"
      for (const word of [/\d+\/\d+ synkade/, /Senaste synk/, /Väntar/]) {
        if (!word.test(text)) throw new Error(`no ${word} in the Swedish status card: ${text}`);
      }
      await screenshot(page, "swedish-card");
      await cardShot(card, "status-sv");
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
