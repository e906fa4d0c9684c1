// REST-level end-to-end test against a running constellation (FRAUD_E2E_URL, FRAUD_E2E_TOKEN).
// Upload a generated labelled file, check the summary and its metrics, duplicate detection, a
// malformed file's error, train a new version, promote it, roll back, and see inference serve each.
import assert from 'node:assert/strict';

const BASE = process.env.FRAUD_E2E_URL;
const TOKEN = process.env.FRAUD_E2E_TOKEN;
assert.ok(BASE, 'FRAUD_E2E_URL is required');
const deadline = Date.now() + 8 * 60 * 1000;  // the whole test is bounded

async function api(method, path, { body, headers = {}, token } = {}) {
  const h = { ...headers };
  if (token) h.authorization = `Bearer ${token}`;
  if (body !== undefined && typeof body !== 'string') {
    body = JSON.stringify(body);
    h['content-type'] = 'application/json';
  }
  const res = await fetch(BASE + path, { method, body, headers: h, signal: AbortSignal.timeout(120000) });
  const text = await res.text();
  let json = null;
  try { json = JSON.parse(text); } catch { /* not JSON */ }
  return { status: res.status, json, text };
}

async function waitFor(what, fn, timeoutMs) {
  const end = Math.min(Date.now() + timeoutMs, deadline);
  let last;
  while (Date.now() < end) {
    try { last = await fn(); if (last) return last; } catch (e) { last = e; }
    await new Promise((r) => setTimeout(r, 1000));
  }
  throw new Error(`timed out waiting for ${what} (last: ${last instanceof Error ? last.message : JSON.stringify(last)})`);
}

function step(name) { console.log(`e2e: ${name}`); }

step('services healthy');
await waitFor('health ok', async () => (await api('GET', '/api/v1/health')).status === 200, 60000);

step('bootstrap publishes version 1 and inference serves it');
const v1 = await waitFor('a champion', async () => {
  const r = await api('GET', '/api/v1/models/champion');
  return r.status === 200 && r.json?.model?.version ? r.json.model.version : null;
}, 300000);
await waitFor('inference serving the champion', async () => {
  const r = await api('GET', '/api/v1/inference/model');
  return r.status === 200 && r.json.version === v1;
}, 60000);

step('upload a generated labelled file');
const csv = (await api('GET', '/api/v1/demo/sample.csv?rows=5000&seed=4242&fraud_rate=0.01')).text;
assert.match(csv.split('\n')[0], /Time.*V1.*Amount.*Class/);
const up = await api('POST', '/api/v1/uploads?file_name=e2e.csv', { body: csv, headers: { 'content-type': 'text/csv' } });
assert.equal(up.status, 200, up.text);
const s = up.json;
assert.equal(Number(s.rowsAccepted), 5000);
assert.equal(Number(s.rowsRejected), 0);
assert.ok(Number(s.uploadId) > 0);
assert.equal(s.scored, true, s.scoringMessage);
assert.equal(s.modelVersion, v1);
assert.ok(s.metrics && s.metrics.auprc > 0 && s.metrics.auprc <= 1, 'labelled upload has metrics');
assert.ok(s.topSuspicious.length > 0);

step('stored predictions match the summary');
const preds = await api('GET', `/api/v1/uploads/${s.uploadId}/predictions?order=score&page_size=5`);
assert.equal(preds.status, 200, preds.text);
assert.equal(Number(preds.json.total), 5000);
assert.ok(Math.abs(preds.json.predictions[0].score - s.topSuspicious[0].score) < 1e-6);

step('the same file again is recognised');
const dup = await api('POST', '/api/v1/uploads?file_name=again.csv', { body: csv, headers: { 'content-type': 'text/csv' } });
assert.equal(dup.status, 200, dup.text);
assert.equal(dup.json.duplicateOf, s.uploadId);

step('a malformed file is refused with line, column and reason');
const lines = csv.split('\n');
const cells = lines[3].split(',');
cells[cells.length - 2] = 'abc';  // Amount
lines[3] = cells.join(',');
const bad = await api('POST', '/api/v1/uploads?file_name=bad.csv', { body: lines.join('\n'), headers: { 'content-type': 'text/csv' } });
assert.equal(bad.status, 400, bad.text);
const err = bad.json.details.summary.errors[0];
assert.equal(Number(err.line), 4);
assert.equal(err.column, 'Amount');
assert.match(err.reason, /abc/);

step('admin endpoints need the token');
assert.equal((await api('POST', '/api/v1/training/runs', { body: {} })).status, 401);
assert.equal((await api('POST', '/api/v1/training/runs', { body: {}, token: 'wrong' })).status, 401);

step('train a new version');
const start = await api('POST', '/api/v1/training/runs', { body: { families: ['logreg'], noPromote: true }, token: TOKEN });
assert.equal(start.status, 200, start.text);
const runId = start.json.run.id;
const run = await waitFor('run finished', async () => {
  const r = await api('GET', `/api/v1/training/runs/${runId}`);
  const st = r.json?.run?.status;
  if (st === 'RUN_STATUS_FAILED' || st === 'RUN_STATUS_CANCELLED') throw new Error(`run ${st}: ${r.json.run.message}`);
  return st === 'RUN_STATUS_SUCCEEDED' ? r.json.run : null;
}, 300000);
const v2 = run.modelVersion;
assert.ok(Number(v2) > Number(v1));

step('promote the new version; inference serves it');
const promote = await api('POST', `/api/v1/models/${v2}/promote`, { body: { reason: 'e2e' }, token: TOKEN });
assert.equal(promote.status, 200, promote.text);
await waitFor('inference on v2', async () => (await api('GET', '/api/v1/inference/model')).json?.version === v2, 60000);

step('roll back to version 1');
const back = await api('POST', `/api/v1/models/${v1}/promote`, { body: { reason: 'e2e rollback' }, token: TOKEN });
assert.equal(back.status, 200, back.text);
await waitFor('inference back on v1', async () => (await api('GET', '/api/v1/inference/model')).json?.version === v1, 60000);
const history = await api('GET', '/api/v1/models/champion/history');
assert.ok(history.json.changes.length >= 3, 'history records bootstrap, promotion and rollback');

console.log('e2e: http passed');
