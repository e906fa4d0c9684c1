// Browser flow of the operating point (issue 17 item 4), called from e2e.spec.mjs: on the Models
// page the champion's what-if slider moves and the expected figures change, an admin applies the
// candidate threshold with a reason (confirmation dialog, token prompt), and the history gains the
// row. Works against the real gateway and the mock alike.
//
//   await whatIfFlow(page, { go, check, log, shot, expecting, answerTokenPrompt, T });

export async function whatIfFlow(page, { go, check, log, shot, expecting, answerTokenPrompt, T }) {
  await go(page, '#/models');
  const slider = page.getByRole('slider', { name: 'Candidate threshold' });
  await slider.waitFor({ timeout: T.upload }); // the first what-if scores the latest labelled data
  const threshold = page.getByTestId('whatif-threshold');
  const alerts = page.getByTestId('whatif-alerts');
  const before = { t: await threshold.innerText(), a: await alerts.innerText() };
  const max = Number(await slider.getAttribute('max'));
  check(max >= 2, `the what-if curve has ${max + 1} points`);
  // Move the slider with the keyboard to the strictest end (a real user's gesture), then back a bit.
  await slider.focus();
  await page.keyboard.press('End');
  await page.keyboard.press('ArrowLeft');
  const after = { t: await threshold.innerText(), a: await alerts.innerText() };
  check(after.t !== before.t, `moving the slider left the threshold at ${after.t}`);
  check(after.a !== before.a || Number(after.t) > Number(before.t), `moving the slider changed nothing: ${JSON.stringify(after)}`);
  log(`what-if: threshold ${before.t} -> ${after.t}, alerts/day ${before.a} -> ${after.a}`);
  await shot(page, 'models-whatif');

  const reason = `e2e what-if ${Date.now()}`;
  await page.getByRole('button', { name: 'Apply operating point' }).click({ timeout: T.short });
  const dialog = page.getByRole('dialog').filter({ hasText: /operating point/ });
  await dialog.waitFor({ timeout: T.short });
  await dialog.getByLabel(/Reason/).fill(reason);
  await expecting([/status of 401/], async () => {
    await dialog.getByRole('button', { name: 'Apply', exact: true }).click({ timeout: T.short });
    await answerTokenPrompt(page, 2000);
    await page.getByText(/Operating point set: threshold/).waitFor({ timeout: T.nav });
  });
  const history = page.getByRole('table', { name: /Operating-point history/ });
  await history.getByText(reason).waitFor({ timeout: T.nav });
  const row = history.locator('tbody tr').filter({ hasText: reason });
  check((await row.count()) === 1, 'the applied operating point is not in the history');
  check((await row.innerText()).includes(after.t), `the history row does not show threshold ${after.t}`);
  await page.getByTestId('whatif-current').getByText('operating point').waitFor({ timeout: T.short });
  log(`operating point applied at threshold ${after.t} and listed in the history`);
  await shot(page, 'models-operating-point');
}
