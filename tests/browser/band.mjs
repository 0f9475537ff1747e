// The AI engine's expected band on the device page: shaded behind the line of a series that
// has one, absent where the engine has not scored any point yet; the forecast with its 95 %
// interval after the last point. Run by the e2e test
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
  // Drawn before (behind) the line; then the forecast: its 95 % interval shaded and its mean
  // dashed, after the last point (fetched once for the window).
  await temp.locator('path.forecast').waitFor();
  const order = await temp.evaluate((svg) => [...svg.querySelectorAll('path')].map((p) => p.getAttribute('class') || 'line'));
  assert.deepEqual(order, ['band', 'forecast-band', 'line', 'forecast']);
  assert.ok(Number(await temp.getAttribute('data-forecast')) >= 10, 'forecast points');
  const fd = await temp.locator('path.forecast-band').getAttribute('d');
  assert.match(fd, /^M[\d.]+ [\d.]+(L[\d.]+ [\d.]+){3,}Z$/, 'a closed interval');
  const line = await temp.locator('path:not([class])').getAttribute('d');
  const lastX = Number(/([\d.]+) [\d.]+$/.exec(line)[1]), xs = [...fd.matchAll(/([\d.]+) [\d.]+/g)].map((m) => Number(m[1]));
  assert.ok(Math.min(...xs) >= lastX, `the interval starts after the last point (${Math.min(...xs)} >= ${lastX})`);
  assert.ok(Math.max(...xs) > lastX + 50, 'and runs on to the right');
  // Too few points for the engine to score: no band, the line alone.
  const young = page.locator('svg.chart[aria-label="young chart"]');
  assert.ok(Number(await young.getAttribute('data-points')) > 0);
  assert.equal(await young.locator('path.band').count(), 0);
  await shot(page, 'device-band-forecast');
  // Only while the window ends now: half a window earlier has no forecast.
  await page.click('button[aria-label="earlier"]');
  await page.waitForFunction(() => !document.querySelector('svg.chart[aria-label="temp chart"] path.forecast'));
  seen.check();
} finally {
  await browser.close();
}
