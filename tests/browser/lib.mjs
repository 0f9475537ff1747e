// Shared by the browser scripts: Debian's chromium through playwright-core (no browser
// download), sign-in, screenshots, figures, and a guard that fails on console errors and on
// any request to another host.
import { chromium } from 'playwright-core';
import assert from 'node:assert/strict';
import { mkdirSync } from 'node:fs';

export const url = process.env.SENTIO_URL;
const shots = process.env.SENTIO_SHOTS;
if (shots) mkdirSync(shots, { recursive: true });

export function launch() {
  return chromium.launch({ executablePath: process.env.CHROMIUM || '/usr/bin/chromium' });
}

/** `name:password` from an environment variable. */
export function credentials(variable) {
  const v = process.env[variable], i = v.indexOf(':');
  return [v.slice(0, i), v.slice(i + 1)];
}

/** Watches a page: console errors (but the failed loads of `allowed` statuses: the 401s of
 *  signing in, and those a test provokes), page errors, requests. */
export function guard(page, allowed = [401]) {
  const seen = { errors: [], foreign: [], urls: [], sockets: [] };
  const own = new URL(url).host;
  page.on('console', (m) => {
    const status = /status of (\d+)/.exec(m.text());
    if (m.type() === 'error' && !(status && allowed.includes(Number(status[1])))) seen.errors.push(m.text());
  });
  page.on('pageerror', (e) => seen.errors.push(String(e)));
  page.on('request', (r) => {
    seen.urls.push(r.url());
    const u = new URL(r.url());
    if (u.protocol !== 'data:' && u.host !== own) seen.foreign.push(r.url());
  });
  page.on('websocket', (ws) => seen.sockets.push(ws.url()));
  seen.check = () => {
    assert.deepEqual(seen.errors, [], 'no console errors');
    assert.deepEqual(seen.foreign, [], 'no request to another host');
  };
  return seen;
}

/** Fills the login form and waits for the first page to be ready. */
export async function signIn(page, [name, password]) {
  await page.fill('#name', name);
  await page.fill('#password', password);
  await page.click('#login button');
  await page.waitForSelector('body[data-ready]');
}

export async function ready(page, which) {
  await page.waitForSelector(`body[data-ready=${which}]`, { timeout: 30000 });
}

export async function shot(page, name) {
  if (shots) await page.screenshot({ path: `${shots}/${name}.png`, fullPage: true });
}

export function figure(name, value, unit) {
  console.log(`figure: ${name} = ${value} ${unit}`);
}

/** The page scrolls sideways (it must not, at any width). */
export function scrollsSideways(page) {
  return page.evaluate(() => document.documentElement.scrollWidth > window.innerWidth);
}

export { assert };
