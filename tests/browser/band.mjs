// The AI engine's expected band on the device page: shaded behind the line of a series that
// has one, absent where the engine has not scored any point yet. Run by the e2e test
// dashboard::band.
import { assert, credentials, guard, launch, ready, shot, signIn, url } from './lib.mjs';

const viewer = credentials('SENTIO_VIEWER');
const device = process.env.SENTIO_DEVICE;

const browser = await launch();
try {
  const page = await browser.newPage({ viewport: { width: 1280, height: 800 } });
  const seen = guard(page);
  await page.goto(url);
  await page.waitForSelector('#login:not([hidden])');
  await signIn(page, viewer);
  await page.goto(`${url}/#/device/${device}`);
  await ready(page, 'device');
  const temp = page.locator('svg.chart[aria-label="temp chart"]');
  await temp.locator('path.band').waitFor();
  const d = await temp.locator('path.band').getAttribute('d');
  assert.match(d, /^M[\d.]+ [\d.]+(L[\d.]+ [\d.]+){3,}Z$/, 'a closed area');
  // Drawn before (behind) the line.
  const order = await temp.evaluate((svg) => [...svg.querySelectorAll('path')].map((p) => p.getAttribute('class') || 'line'));
  assert.deepEqual(order, ['band', 'line']);
  // Too few points for the engine to score: no band, the line alone.
  const young = page.locator('svg.chart[aria-label="young chart"]');
  assert.ok(Number(await young.getAttribute('data-points')) > 0);
  assert.equal(await young.locator('path.band').count(), 0);
  await shot(page, 'device-band');
  seen.check();
} finally {
  await browser.close();
}
