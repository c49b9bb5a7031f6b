// A real browser on examples/stack.rs: browse the cached catalog, fill a cart anonymously,
// log in (the cart is kept, the session id rotated), meet a 429, log out. Run by
// tests/browser.rs with the server's base URL; exits non-zero on the first failed check.
import { chromium } from 'playwright-core';

const base = process.argv[2];
const executablePath = process.env.CHROMIUM || '/usr/bin/chromium';
const browser = await chromium.launch({
  executablePath,
  args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
    '--disable-background-networking', '--disable-component-update', '--disable-sync'],
});
const check = (ok, what) => {
  if (!ok) throw new Error(`failed: ${what}`);
  console.log(`ok: ${what}`);
};
try {
  const context = await browser.newContext();
  const page = await context.newPage();

  // The catalog: a first visitor's view is stored; another visitor's (a browser context
  // of its own, with its own HTTP cache) comes from the server's cache.
  let response = await page.goto(`${base}/products`);
  check(response.status() === 200, 'the catalog loads');
  check((await page.textContent('body')).includes('parapet'), 'the catalog lists products');
  const other = await browser.newContext();
  response = await (await other.newPage()).goto(`${base}/products`);
  check((response.headers()['cache-status'] || '').includes('hit'), "another visitor's view is a cache hit");
  await other.close();

  // The page's own script talks to the API, with the browser's cookies.
  const call = (method, path, body) => page.evaluate(async ([method, path, body]) => {
    const r = await fetch(path, { method, body, credentials: 'same-origin' });
    return { status: r.status, text: await r.text() };
  }, [method, path, body]);
  const session = async () => (await context.cookies()).find((c) => c.name.includes('session'));

  let r = await call('POST', '/cart/items/42');
  check(r.status === 200, 'an anonymous client adds to its cart');
  const anonymous = await session();
  check(anonymous && anonymous.httpOnly && anonymous.secure, 'the session cookie is HttpOnly and Secure');
  r = await call('GET', '/cart');
  check(JSON.parse(r.text).items.includes('42'), 'the cart holds the item');

  r = await call('POST', '/login', 'alice');
  check(r.status === 200, 'login');
  const loggedIn = await session();
  check(loggedIn && loggedIn.value !== anonymous.value, 'login rotates the session id');
  r = await call('GET', '/cart');
  const cart = JSON.parse(r.text);
  check(cart.user === 'alice' && cart.items.includes('42'), 'the cart is kept across login');

  let limited = null;
  for (let i = 0; i < 30 && !limited; i++) {
    r = await call('POST', `/cart/items/${i}`);
    if (r.status === 429) limited = r;
  }
  check(limited !== null, 'adding too fast is refused with 429');

  r = await call('POST', '/logout');
  check(r.status === 200, 'logout');
  r = await call('GET', '/cart');
  check(JSON.parse(r.text).user === null, 'logged out');
  console.log('browser walk: ok');
} finally {
  await browser.close();
}
