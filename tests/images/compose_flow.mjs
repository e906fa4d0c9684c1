// The HTTP side of the images test (tests/images/compose_test.sh), run from the host against the
// compose constellation's published loopback ports; one phase per invocation:
//   node compose_flow.mjs scored      wait for the bootstrap champion, upload a labelled CSV
//                                     through the gateway, check it is stored and scored
//   node compose_flow.mjs trained     start a training run, see its version promoted and served
//   node compose_flow.mjs served      (after inference was recreated with an empty cache) the
//                                     champion is served again and scores an upload
//   node compose_flow.mjs prometheus  the Prometheus container scrapes every service's /metrics
//   node compose_flow.mjs heavy       each service's heaviest job inside its 512 MB container:
//                                     IMG_BIG_CSV (284,807 rows) uploaded through the gateway and
//                                     scored, then a run of the full default candidate set on
//                                     every stored row (issue #23: nothing OOM-killed)
// Environment: IMG_GATEWAY (http://127.0.0.1:PORT), IMG_PROMETHEUS, IMG_TOKEN (admin token),
// IMG_CSV (labelled CSV file), IMG_STATE (a JSON file carrying versions between phases).
// Prints one "images: ..." line per check; exits non-zero on the first failure.
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync, existsSync } from 'node:fs';

const GATEWAY = process.env.IMG_GATEWAY;
const PROMETHEUS = process.env.IMG_PROMETHEUS;
const TOKEN = process.env.IMG_TOKEN;
const STATE = process.env.IMG_STATE;
const phase = process.argv[2];
assert.ok(GATEWAY && STATE, 'IMG_GATEWAY and IMG_STATE are required');
const state = existsSync(STATE) ? JSON.parse(readFileSync(STATE, 'utf8')) : {};
const save = () => writeFileSync(STATE, JSON.stringify(state, null, 2));
const say = (m) => console.log(`images: ${m}`);

async function api(method, url, { body, headers = {}, token } = {}) {
  const h = { ...headers };
  if (token) h.authorization = `Bearer ${token}`;
  if (body !== undefined && typeof body !== 'string' && !(body instanceof Uint8Array)) {
    body = JSON.stringify(body);
    h['content-type'] = 'application/json';
  }
  const res = await fetch(url, { method, body, headers: h, signal: AbortSignal.timeout(120000) });
  const text = await res.text();
  let json = null;
  try { json = JSON.parse(text); } catch { /* not JSON */ }
  return { status: res.status, json, text };
}
const gw = (method, path, opts) => api(method, GATEWAY + path, opts);

async function waitFor(what, fn, timeoutMs) {
  const end = Date.now() + timeoutMs;
  let last;
  while (Date.now() < end) {
    try { last = await fn(); if (last) return last; } catch (e) { last = e; }
    await new Promise((r) => setTimeout(r, 1000));
  }
  throw new Error(`timed out after ${timeoutMs / 1000} s waiting for ${what} (last: ${
    last instanceof Error ? last.message : JSON.stringify(last)})`);
}

async function servedVersion() {
  const r = await gw('GET', '/api/v1/inference/model');
  return r.status === 200 ? r.json.version : null;
}

async function uploadScored(name, { retryUnscoredMs = 0, csvPath = process.env.IMG_CSV } = {}) {
  const lines = readFileSync(csvPath, 'utf8').trimEnd().split('\n');
  const rows = lines.length - 1;
  const first = Date.now();
  let t0, up, s;
  for (let attempt = 0; ; attempt++) {
    // Each attempt a new file (the last line's Time shifted by the attempt number): a duplicate of
    // an upload stored unscored is scored in its summary, but no predictions are stored for it.
    const cells = lines[rows].split(',');
    cells[0] = String(Number(cells[0]) + attempt);
    const csv = [...lines.slice(0, rows), cells.join(',')].join('\n') + '\n';
    t0 = Date.now();
    up = await gw('POST', `/api/v1/uploads?file_name=${name}`,
      { body: csv, headers: { 'content-type': 'text/csv' } });
    assert.equal(up.status, 200, up.text);
    s = up.json;
    if (s.scored || Date.now() - first > retryUnscoredMs) break;
    // Known bug (see compose_test.sh step 6): ingest's channel still dials the removed
    // container's address and the rows are stored unscored; retrying measures how long it lasts.
    say(`BUG: upload stored unscored ${Math.round((Date.now() - first) / 1000)} s after the inference restart: ${s.scoringMessage}`);
    await new Promise((r) => setTimeout(r, 5000));
  }
  if (retryUnscoredMs && Date.now() - first > 1000) {
    say(`ingest reached the recreated inference ${Math.round((t0 - first) / 1000)} s after the first attempt`);
  }
  assert.equal(Number(s.rowsAccepted), rows, 'every row accepted');
  assert.equal(Number(s.rowsRejected), 0);
  assert.equal(s.scored, true, `scored (${s.scoringMessage})`);
  assert.ok(s.metrics && s.metrics.auprc > 0 && s.metrics.auprc <= 1, 'labelled upload has metrics');
  say(`upload ${s.uploadId} (${rows} rows) stored and scored by v${s.modelVersion} in ${
    Date.now() - t0} ms, AUPRC ${s.metrics.auprc.toFixed(3)}`);
  // Stored: storage knows the upload and holds one prediction per row.
  const got = await gw('GET', `/api/v1/uploads/${s.uploadId}`);
  assert.equal(got.status, 200, got.text);
  const preds = await gw('GET', `/api/v1/uploads/${s.uploadId}/predictions?order=score&page_size=3`);
  assert.equal(preds.status, 200, preds.text);
  assert.equal(Number(preds.json.total), rows, 'one stored prediction per row');
  say(`storage holds upload ${s.uploadId} and its ${preds.json.total} predictions`);
  return s;
}

if (phase === 'scored') {
  const champion = await waitFor('the bootstrap champion', async () => {
    const r = await gw('GET', '/api/v1/models/champion');
    return r.status === 200 && r.json?.model?.version ? r.json.model.version : null;
  }, 600000);
  say(`champion v${champion} registered by the training container's bootstrap`);
  await waitFor(`inference serving v${champion}`, async () => (await servedVersion()) === champion, 120000);
  say(`inference serves v${champion}`);
  const s = await uploadScored('images-test.csv');
  assert.equal(s.modelVersion, champion);
  state.bootstrap = champion;
  save();
} else if (phase === 'trained' || phase === 'heavy') {
  assert.ok(TOKEN, 'IMG_TOKEN is required');
  const heavy = phase === 'heavy';
  if (heavy) {
    assert.ok(process.env.IMG_BIG_CSV, 'IMG_BIG_CSV is required');
    await uploadScored('images-test-big.csv', { csvPath: process.env.IMG_BIG_CSV });
  }
  // A negative margin promotes whatever the run produces: this checks the plumbing, not the model.
  // The heavy run trains every family's default grid (the compose test narrows the server's
  // default to two families for a fast bootstrap, so they are named) on every stored row.
  const start = await gw('POST', '/api/v1/training/runs', {
    body: heavy
      ? {
        families: ['logreg', 'mlp', 'xgboost', 'random_forest', 'ensemble'],
        promotionMargin: -1,
        description: 'images test: full candidate set under 512 MB',
      }
      : { families: ['logreg'], promotionMargin: -1, description: 'images test' },
    token: TOKEN,
  });
  assert.equal(start.status, 200, start.text);
  const runId = start.json.run.id;
  say(`training run ${runId} started`);
  const started = Date.now();
  const run = await waitFor(`run ${runId} finished`, async () => {
    const r = await gw('GET', `/api/v1/training/runs/${runId}`);
    const st = r.json?.run?.status;
    if (st === 'RUN_STATUS_FAILED' || st === 'RUN_STATUS_CANCELLED') {
      throw new Error(`run ${st}: ${r.json.run.message}`);
    }
    return st === 'RUN_STATUS_SUCCEEDED' ? r.json.run : null;
  }, heavy ? 1800000 : 600000);
  const v = run.modelVersion;
  const previous = heavy ? state.champion : state.bootstrap;
  assert.ok(Number(v) > Number(previous), `new version ${v} > v${previous}`);
  if (heavy) {
    const rows = Number(run.lineage?.trainRows ?? 0) + Number(run.lineage?.validationRows ?? 0);
    assert.ok(rows >= 284807 * 0.85, `the run read the big upload (${rows} training+validation rows)`);
    say(`run ${runId}: ${run.candidates?.length ?? 0} candidates on ${rows} training+validation rows in ${
      Math.round((Date.now() - started) / 1000)} s`);
  }
  assert.equal(run.promoted, true, `promoted (${run.message})`);
  say(`run ${runId} registered v${v} and promoted it (${run.message})`);
  const champ = await gw('GET', '/api/v1/models/champion');
  assert.equal(champ.json.model.version, v, 'the registry names the new champion');
  await waitFor(`inference serving v${v}`, async () => (await servedVersion()) === v, 120000);
  say(`inference serves v${v}`);
  state.champion = v;
  save();
} else if (phase === 'served') {
  const v = state.champion;
  await waitFor(`recreated inference serving champion v${v}`, async () => (await servedVersion()) === v, 300000);
  say(`recreated inference serves champion v${v} (fetched into an empty cache)`);
  const s = await uploadScored('images-test-after-restart.csv', { retryUnscoredMs: 120000 });
  assert.equal(s.modelVersion, v, 'scored by the champion');
} else if (phase === 'prometheus') {
  assert.ok(PROMETHEUS, 'IMG_PROMETHEUS is required');
  const jobs = ['gateway', 'ingest', 'inference', 'storage', 'training'];
  const up = await waitFor('Prometheus scraping every service', async () => {
    const r = await api('GET', `${PROMETHEUS}/api/v1/targets?state=active`);
    if (r.status !== 200) return null;
    const targets = r.json.data.activeTargets;
    const health = Object.fromEntries(targets.map((t) => [t.labels.job, t.health]));
    return jobs.every((j) => health[j] === 'up') ? health : null;
  }, 120000);
  say(`Prometheus targets: ${JSON.stringify(up)}`);
  for (const j of jobs) {
    const q = await api('GET', `${PROMETHEUS}/api/v1/query?query=${encodeURIComponent(
      `count({job="${j}",__name__=~"fraud_.*"})`)}`);
    assert.equal(q.status, 200, q.text);
    const n = Number(q.json.data.result[0]?.value[1] ?? 0);
    assert.ok(n > 0, `Prometheus holds fraud_* series of ${j}`);
    say(`Prometheus holds ${n} fraud_* series from ${j}`);
  }
} else {
  throw new Error(`unknown phase ${phase}`);
}
