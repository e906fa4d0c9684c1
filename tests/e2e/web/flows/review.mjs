// Review-queue flow of the browser e2e (issue 17 item 5), called once from e2e.spec.mjs after the
// uploads (so alerts exist) against the mock gateway and the real constellation alike: the
// Review page lists alerts with their reasons and the features beside the population, j/k move
// the selection, f marks the selected alert as fraud (admin token) and it leaves the queue, in
// the page and on the server (every page of GET /api/v1/review/queue). Screenshots at desktop
// and phone width, with no horizontal overflow.
//
// `h` carries the spec's helpers: { go, shot, check, log, expecting, answerTokenPrompt, apiGet, T }.

const keyOf = (item) => `${item.uploadId}:${item.line}`;

async function serverQueueKeys(apiGet) {
  const keys = new Set();
  let token = '';
  for (let pages = 0; pages < 100; pages++) {
    const r = await apiGet(`/api/v1/review/queue?page_size=500${token ? `&page_token=${encodeURIComponent(token)}` : ''}`);
    for (const item of r.items ?? []) keys.add(keyOf(item));
    token = r.nextPageToken ?? '';
    if (!token) break;
  }
  return keys;
}

export async function reviewFlow(page, h) {
  const { go, shot, check, log, expecting, answerTokenPrompt, apiGet, T } = h;
  const before = await serverQueueKeys(apiGet);
  check(before.size >= 2, `the review queue holds ${before.size} alerts after the uploads; expected at least 2`);

  await go(page, '#/review');
  await page.getByRole('heading', { level: 1, name: 'Review queue' }).waitFor({ timeout: T.nav });
  const selected = page.locator('table.review-queue tbody tr[aria-selected="true"]');
  await selected.waitFor({ timeout: T.nav });
  const first = await selected.getAttribute('data-key');
  check(before.has(first), `the selected alert ${first} is not in the server's queue`);

  // j/k move the selection.
  await page.keyboard.press('j');
  const second = await selected.getAttribute('data-key');
  check(second && second !== first, `j did not move the selection (still ${second})`);
  await page.keyboard.press('k');
  check((await selected.getAttribute('data-key')) === first, 'k did not move the selection back');

  // The selected alert: its top 5 reasons and its 30 features beside the population.
  const reasons = page.locator('figure.reasons tbody tr');
  await reasons.first().waitFor({ timeout: T.short });
  check((await reasons.count()) === 5, `expected 5 reasons, got ${await reasons.count()}`);
  const features = page.getByRole('table', { name: /Features beside the population/ }).locator('tbody tr');
  check((await features.count()) === 30, `expected 30 feature rows, got ${await features.count()}`);
  await shot(page, 'review-desktop');

  // f marks it as fraud; it leaves the list and the server's queue.
  await expecting([/status of 401/], async () => {
    await page.keyboard.press('f');
    await answerTokenPrompt(page, 3000);
    await page.getByText(/^Marked .* as fraud/).waitFor({ timeout: T.nav });
  });
  check((await page.locator(`table.review-queue tbody tr[data-key="${first}"]`).count()) === 0, `${first} is still listed after f`);
  const after = await serverQueueKeys(apiGet);
  check(!after.has(first), `${first} is still in the server's review queue after f`);
  check(after.size === before.size - 1, `the queue went from ${before.size} to ${after.size} alerts, expected one fewer`);

  await page.setViewportSize({ width: 390, height: 844 });
  const { sw, iw } = await page.evaluate(() => ({ sw: document.documentElement.scrollWidth, iw: window.innerWidth }));
  check(sw <= iw + 1, `review (phone): the page is ${sw}px wide at a ${iw}px viewport (horizontal overflow)`);
  await shot(page, 'review-phone');
  await page.setViewportSize({ width: 1280, height: 900 });
  log(`review: j/k moved the selection, f marked ${first} as fraud and it left the queue (${before.size} -> ${after.size})`);
}
