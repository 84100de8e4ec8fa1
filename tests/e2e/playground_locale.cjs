// Preloaded into the Agents Playground by run.sh (node --require). The Playground (0.2.x) writes
// "locale":"en-US" into every activity it sends to the bot, whatever the browser's language
// (Chromium --lang, Playwright `locale`) or the process's LANG: it is hard-coded in its activity
// generators. This rewrites those bytes on their way to the bot when a locale is asked for:
// PLAYGROUND_LOCALE (fixed), else the first line of the file PLAYGROUND_LOCALE_FILE, read at
// every request (so the e2e driver can switch to "sv-SE" for one step and back with "").
// "en-US" and any "xx-YY" have the same length: Content-Length stays right. See docs/PLATFORM.md.
"use strict";
const fs = require("node:fs");
const http = require("node:http");

const FROM = /"locale":"en-US"/g;
const LOCALE = /^[a-z]{2}-[A-Z]{2}$/;

function wanted() {
  let value = process.env.PLAYGROUND_LOCALE || "";
  const file = process.env.PLAYGROUND_LOCALE_FILE;
  if (!value && file) {
    try {
      value = fs.readFileSync(file, "utf8").split("\n")[0].trim();
    } catch {
      value = "";
    }
  }
  return LOCALE.test(value) ? value : "";
}

function fix(chunk) {
  const locale = wanted();
  if (!locale) return chunk;
  const to = `"locale":"${locale}"`;
  if (typeof chunk === "string") return chunk.replace(FROM, to);
  if (Buffer.isBuffer(chunk)) return Buffer.from(chunk.toString("utf8").replace(FROM, to), "utf8");
  return chunk;
}

const { write, end } = http.ClientRequest.prototype;
http.ClientRequest.prototype.write = function (chunk, ...rest) {
  return write.call(this, fix(chunk), ...rest);
};
http.ClientRequest.prototype.end = function (chunk, ...rest) {
  if (chunk === undefined || typeof chunk === "function") return end.call(this, chunk, ...rest);
  return end.call(this, fix(chunk), ...rest);
};
