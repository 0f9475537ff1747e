// Every page through axe-core (the pinned npm package, injected into the page), at a desktop
// and a phone's width, as the admin and as a viewer: fails on any violation and prints them.
// Also saves a screenshot of each page at each width, and walks the admin's way to
// acknowledging an alert with the keyboard alone. Run by the e2e test
// dashboard::accessibility.
import { createRequire } from 'node:module';
import { assert, credentials, guard, launch, ready, scrollsSideways, shot, signIn, url } from './lib.mjs';

const axePath = createRequire(import.meta.url).resolve('axe-core/axe.min.js');
const device = process.env.SENTIO_DEVICE;
const WIDTHS = [['desktop', 1280], ['phone', 375]];
// The pages each role can open (hash, the data-ready it sets).
const PAGES = {
  admin: [['#/', 'fleet'], [`#/device/${device}`, 'device'], ['#/alerts', 'alerts'], ['#/rules', 'rules'], ['#/provision', 'provision'], ['#/users', 'users'], ['#/system', 'system'], ['#/me', 'me']],
  viewer: [['#/', 'fleet'], [`#/device/${device}`, 'device'], ['#/alerts', 'alerts'], ['#/me', 'me'], ['#/rules', 'error']],
};

/** axe's violations on the page as it is, one line per node. */
async function violations(page) {
  if (!(await page.evaluate(() => 'axe' in window))) await page.addScriptTag({ path: axePath });
  const found = await page.evaluate(() => window.axe.run(document).then((r) => r.violations)); // eslint-disable-line no-undef
  return found.flatMap((v) => v.nodes.map((n) => `${v.id} (${v.impact}): ${v.help}: ${n.target.join(' ')}: ${n.failureSummary.replace(/\s+/g, ' ')}`));
}

/** Presses Tab until the focused element passes `test` (at most 100 presses); the count. */
async function tabTo(page, test) {
  for (let n = 1; n <= 100; n++) {
    await page.keyboard.press('Tab');
    if (await page.evaluate(`(${test})(document.activeElement)`)) return n;
  }
  throw new Error(`not reachable with Tab: ${test}`);
}

const browser = await launch();
const all = [], guards = [];
let checked = 0;
try {
  // The sign-in page, at both widths.
  // bypassCSP: the page's policy allows its own script only; axe is injected beside it.
  const first = await browser.newPage({ viewport: { width: 1280, height: 800 }, bypassCSP: true });
  await first.goto(url);
  await first.waitForSelector('#login:not([hidden])');
  for (const [name, width] of WIDTHS) {
    await first.setViewportSize({ width, height: 800 });
    all.push(...(await violations(first)).map((v) => `login ${name}: ${v}`));
    await shot(first, `login-${name}`);
    checked++;
  }
  await first.close();
  for (const role of ['admin', 'viewer']) {
    const page = await browser.newPage({ viewport: { width: 1280, height: 800 }, bypassCSP: true });
    const seen = guard(page, [401, 403]);
    await page.goto(url);
    await signIn(page, credentials(role === 'admin' ? 'SENTIO_ADMIN' : 'SENTIO_VIEWER'));
    for (const [hash, which] of PAGES[role]) {
      for (const [name, width] of WIDTHS) {
        await page.setViewportSize({ width, height: 800 });
        await page.evaluate((hash) => {
          delete document.body.dataset.ready;
          if (location.hash === hash) window.dispatchEvent(new HashChangeEvent('hashchange')); else location.hash = hash;
        }, hash);
        await ready(page, which);
        // The charts drawn at this width (a resize redraws on the next fetch; wait for it).
        await page.waitForTimeout(200);
        if (width === 375) assert.equal(await scrollsSideways(page), false, `${role} ${hash}: no horizontal scroll at 375 px`);
        const v = await violations(page);
        all.push(...v.map((x) => `${role} ${hash} ${name}: ${x}`));
        await shot(page, `${role}-${which === 'error' ? 'refused' : which}-${name}`);
        checked++;
      }
    }
    guards.push(seen);
    await page.close();
  }
  // The keyboard alone: sign in, reach the alerts page from the navigation, acknowledge the
  // open alert, with Tab and Enter only (no mouse, no element clicked by the test).
  const page = await browser.newPage({ viewport: { width: 1280, height: 800 } });
  const seen = guard(page, [401, 403]);
  await page.goto(url);
  await page.waitForSelector('#login:not([hidden])');
  const [name, password] = credentials('SENTIO_ADMIN');
  await page.focus('#name');
  await page.keyboard.type(name);
  await page.keyboard.press('Tab');
  await page.keyboard.type(password);
  await page.keyboard.press('Enter');
  await page.waitForSelector('body[data-ready]');
  const tabs = await tabTo(page, (el) => el.tagName === 'A' && el.getAttribute('href') === '#/alerts');
  await page.keyboard.press('Enter');
  await ready(page, 'alerts');
  await tabTo(page, (el) => el.tagName === 'BUTTON' && el.textContent === 'Acknowledge');
  await page.keyboard.press('Enter');
  await page.waitForFunction(() => [...document.querySelectorAll('.who')].some((p) => p.textContent.startsWith('Acknowledged by')), null, { timeout: 10000 });
  const unreachable = await page.evaluate(() => [...document.querySelectorAll('a[href], button, input, select, textarea')]
    .filter((el) => el.offsetParent !== null && el.tabIndex < 0).map((el) => el.outerHTML.slice(0, 80)));
  assert.deepEqual(unreachable, [], 'every visible control on the alerts page is in the tab order');
  console.log(`keyboard: signed in, reached the alerts page (${tabs} tabs) and acknowledged an alert with Tab and Enter only`);
  guards.push(seen);
  await page.close();
} finally {
  await browser.close();
}
console.log(`axe-core: ${checked} page views checked, ${all.length} violations`);
for (const v of all) console.log(`  ${v}`);
assert.equal(all.length, 0, 'axe-core reports no violation');
for (const seen of guards) seen.check();
console.log('accessibility: ok');
