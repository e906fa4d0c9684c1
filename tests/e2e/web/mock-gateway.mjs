#!/usr/bin/env node
// An in-memory stand-in for the gateway's REST contract (services/gateway/API.md), for developing the
// web UI and checking tests/e2e/web/e2e.spec.mjs without the C++ services. It is NOT the
// product: scores come from a toy linear rule, training is simulated with timers.
//
//   node tests/e2e/web/mock-gateway.mjs [--port 8089] [--dist clients/web/dist] [--token t]
//
// Serves the web build at / (SPA fallback) and /api/v1/* with proto-JSON bodies (int64 as
// strings, enums by name, RFC 3339 timestamps). Admin endpoints need "Authorization: Bearer
// <token>" (default token "test-token"; MOCK_TOKEN or --token override; "" disables auth).

import { createHash } from 'node:crypto';
import { createReadStream, existsSync, statSync } from 'node:fs';
import { createServer } from 'node:http';
import { extname, join, normalize, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = fileURLToPath(new URL('.', import.meta.url));
const args = Object.fromEntries(
  process.argv.slice(2).reduce((acc, a, i, all) => (a.startsWith('--') ? [...acc, [a.slice(2), all[i + 1]]] : acc), []),
);
const PORT = Number(args.port ?? process.env.MOCK_PORT ?? 8089);
const DIST = resolve(args.dist ?? join(here, '../../../clients/web/dist'));
const TOKEN = args.token ?? process.env.MOCK_TOKEN ?? 'test-token';
const TRAIN_MS = Number(process.env.MOCK_TRAIN_MS ?? 3000);
const NOT_SCORED_UNTIL_TRAINED = process.env.MOCK_NO_CHAMPION === '1';

const FEATURES = ['Time', ...Array.from({ length: 28 }, (_, i) => `V${i + 1}`), 'Amount'];
const FAMILIES = {
  logreg: 'MODEL_FAMILY_LOGREG',
  mlp: 'MODEL_FAMILY_MLP',
  xgboost: 'MODEL_FAMILY_XGBOOST',
  random_forest: 'MODEL_FAMILY_RANDOM_FOREST',
  ensemble: 'MODEL_FAMILY_ENSEMBLE',
};

// ---------------------------------------------------------------- helpers

const s = (n) => String(Math.trunc(n));
const now = () => new Date().toISOString();

function rng(seed) {
  let a = seed >>> 0 || 1;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function gauss(r) {
  const u = Math.max(r(), 1e-12);
  return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * r());
}

function metricsOf(scores, labels, threshold) {
  const n = scores.length;
  const idx = scores.map((_, i) => i).sort((a, b) => scores[b] - scores[a]);
  const P = labels.reduce((a, b) => a + b, 0);
  let tp = 0;
  let fp = 0;
  let ap = 0;
  const curve = [];
  for (let k = 0; k < n; k++) {
    const i = idx[k];
    if (labels[i]) {
      tp++;
      ap += tp / (tp + fp + 0) / Math.max(P, 1);
    } else fp++;
    if (k === n - 1 || scores[idx[k + 1]] !== scores[i]) curve.push({ recall: P ? tp / P : 0, precision: tp / (tp + fp), threshold: scores[i] });
  }
  // ROC-AUC by rank sum.
  const asc = scores.map((v, i) => [v, labels[i]]).sort((a, b) => a[0] - b[0]);
  let rank = 0;
  let sumPos = 0;
  for (let i = 0; i < asc.length; i++) {
    rank = i + 1;
    if (asc[i][1]) sumPos += rank;
  }
  const N = n - P;
  const auc = P && N ? (sumPos - (P * (P + 1)) / 2) / (P * N) : 0;
  let TP = 0;
  let FP = 0;
  let TN = 0;
  let FN = 0;
  scores.forEach((v, i) => {
    const d = v >= threshold;
    if (d && labels[i]) TP++;
    else if (d) FP++;
    else if (labels[i]) FN++;
    else TN++;
  });
  const precision = TP + FP ? TP / (TP + FP) : 0;
  const recall = TP + FN ? TP / (TP + FN) : 0;
  const step = Math.max(1, Math.ceil(curve.length / 200));
  const single = P === 0 || N === 0;
  return {
    rows: s(n),
    positives: s(P),
    auprc: single ? 0 : ap,
    auprcCiLow: 0,
    auprcCiHigh: 0,
    rocAuc: single ? 0 : auc,
    threshold,
    precision,
    recall,
    f1: precision + recall ? (2 * precision * recall) / (precision + recall) : 0,
    accuracy: n ? (TP + TN) / n : 0,
    confusion: { truePositives: s(TP), falsePositives: s(FP), trueNegatives: s(TN), falseNegatives: s(FN) },
    precisionAtK: [10, 50, 100].map((k) => ({
      k,
      precision: idx.slice(0, k).filter((i) => labels[i]).length / Math.min(k, Math.max(n, 1)),
    })),
    prCurve: [{ recall: 0, precision: 1, threshold: 1 }, ...curve.filter((_, i) => i % step === 0 || i === curve.length - 1)],
    weighted: false,
    singleClass: single,
  };
}

// ---------------------------------------------------------------- state

const state = {
  uploads: [],
  predictions: new Map(),
  models: [],
  champion: 0,
  championSince: now(),
  history: [],
  runs: [],
  watchers: new Map(),
  counters: { reloads: 0, predictRows: 0, requests: 0 },
};

function makeModel(version, family, quality, description, runId) {
  const r = rng(version * 7919);
  const sc = [];
  const lb = [];
  for (let i = 0; i < 4000; i++) {
    const fraud = r() < 0.02 ? 1 : 0;
    lb.push(fraud);
    sc.push(1 / (1 + Math.exp(-(fraud ? quality * 2.2 : -quality * 2.2) - gauss(r) * 1.3)));
  }
  const cmp = metricsOf(sc, lb, 0.5);
  const val = metricsOf(sc.map((v) => Math.min(1, v * 1.02)), lb, 0.5);
  return {
    version: s(version),
    family,
    manifest: {
      version: s(version),
      family,
      featureNames: FEATURES,
      threshold: 0.5,
      params: family === 'MODEL_FAMILY_MLP' ? { hidden: '64,32' } : { l2: '0.001' },
      lineage: {
        uploadIds: [],
        timeMin: 0,
        timeMax: 100000,
        trainRows: s(100000 + version * 20000),
        trainFrauds: s(180 + version * 30),
        validationRows: s(20000),
        validationFrauds: s(40),
        description,
      },
      validationMetrics: val,
      comparisonMetrics: cmp,
      createdAt: now(),
      runId: s(runId),
    },
    artifactUri: `models/${version}`,
    artifactSha256: createHash('sha256').update(`model${version}`).digest('hex'),
    createdAt: now(),
    isChampion: false,
    runId: s(runId),
  };
}

function setChampion(version, reason, actor) {
  const prev = state.champion;
  state.champion = version;
  state.championSince = now();
  for (const m of state.models) m.isChampion = Number(m.version) === version;
  const change = {
    id: s(state.history.length + 1),
    version: s(version),
    previousVersion: s(prev),
    reason,
    actor,
    changedAt: state.championSince,
  };
  state.history.push(change);
  state.counters.reloads++;
  return change;
}

if (!NOT_SCORED_UNTIL_TRAINED) {
  state.models.push(makeModel(1, 'MODEL_FAMILY_LOGREG', 1.4, 'initial synthetic set', 0));
  setChampion(1, 'bootstrap', 'mock');
}

// ---------------------------------------------------------------- CSV

function sampleCsv(rows, seed, fraudRate, labels) {
  const r = rng(seed);
  const out = [labels ? `${FEATURES.join(',')},Class` : FEATURES.join(',')];
  let t = seed % 1000;
  for (let i = 0; i < rows; i++) {
    t += r() * 4;
    const fraud = r() < fraudRate ? 1 : 0;
    const v = [];
    for (let j = 1; j <= 28; j++) {
      const shift = fraud && (j === 14 || j === 17 || j === 12) ? -4 : fraud && j === 4 ? 3 : 0;
      v.push((gauss(r) + shift).toFixed(6));
    }
    const amount = (Math.exp(gauss(r) * 1.2 + 3) * (fraud ? 1.5 : 1)).toFixed(2);
    out.push(`${t.toFixed(0)},${v.join(',')},${amount}${labels ? `,${fraud}` : ''}`);
  }
  return `${out.join('\n')}\n`;
}

// The toy rule's log-odds: bias plus one weight per feature it reads (its exact reason codes).
function ruleOf(version) {
  const m = state.models.find((x) => Number(x.version) === version);
  const q = m ? 0.8 + version * 0.1 : 1;
  return { bias: -5.5, weights: { 14: -q / 2.5, 17: -q / 2.5, 12: -q / 2.5, 4: q / 3 } };
}

function scoreRow(f, version) {
  const { bias, weights } = ruleOf(version);
  const z = Object.entries(weights).reduce((acc, [j, w]) => acc + w * f[Number(j)], bias);
  return 1 / (1 + Math.exp(-z));
}

function explainRow(f, version, topK) {
  const { bias, weights } = ruleOf(version);
  const all = FEATURES.map((feature, index) => ({ feature, index, value: f[index], contribution: (weights[index] ?? 0) * f[index] }));
  const margin = all.reduce((acc, c) => acc + c.contribution, bias);
  const top = [...all].sort((a, b) => Math.abs(b.contribution) - Math.abs(a.contribution)).slice(0, topK);
  const rest = margin - bias - top.reduce((acc, c) => acc + c.contribution, 0);
  return { top, bias, margin, rest: topK >= 30 ? 0 : rest };
}

function parseUpload(text, mode, fileName) {
  const lines = text.split(/\r?\n/);
  if (lines.length && lines[lines.length - 1] === '') lines.pop();
  const errors = [];
  const header = (lines[0] ?? '').split(',').map((h) => h.trim().replace(/^"|"$/g, ''));
  const labelled = header.length === 31 && header[30] === 'Class';
  if (!(header.length === 30 || labelled) || header.slice(0, 30).some((h, i) => h !== FEATURES[i])) {
    errors.push({ line: '1', column: '', columnIndex: 0, reason: `bad header: expected Time,V1..V28,Amount[,Class]` });
  }
  const rows = [];
  for (let i = 1; i < lines.length && errors.length < 1000; i++) {
    const cells = lines[i].split(',');
    const want = labelled ? 31 : 30;
    if (cells.length !== want) {
      errors.push({ line: s(i + 1), column: '', columnIndex: 0, reason: `expected ${want} fields, found ${cells.length}` });
      continue;
    }
    const f = [];
    let bad = false;
    for (let j = 0; j < want; j++) {
      const v = Number(cells[j]);
      if (cells[j].trim() === '' || !Number.isFinite(v)) {
        errors.push({ line: s(i + 1), column: j < 30 ? FEATURES[j] : 'Class', columnIndex: j + 1, reason: `not a number: '${cells[j]}'` });
        bad = true;
        break;
      }
      f.push(v);
    }
    if (bad) continue;
    if (labelled && f[30] !== 0 && f[30] !== 1) {
      errors.push({ line: s(i + 1), column: 'Class', columnIndex: 31, reason: `Class must be 0 or 1, got '${cells[30]}'` });
      continue;
    }
    rows.push({ line: i + 1, f: f.slice(0, 30), label: labelled ? f[30] : -1 });
  }
  return { rows, errors, labelled, total: lines.length - 1, mode, fileName };
}

function summarize(parsed, bytes, sha, mode, fileName, started) {
  const { rows, errors, labelled } = parsed;
  const version = state.champion;
  const scored = version > 0;
  const scores = scored ? rows.map((r) => scoreRow(r.f, version)) : [];
  const labels = rows.map((r) => r.label);
  const hist = Array.from({ length: 20 }, (_, i) => ({
    lower: i / 20,
    upper: (i + 1) / 20,
    countNormal: 0,
    countFraud: 0,
    countUnlabelled: 0,
  }));
  scores.forEach((v, i) => {
    const b = hist[Math.min(19, Math.floor(v * 20))];
    if (!labelled) b.countUnlabelled++;
    else if (labels[i]) b.countFraud++;
    else b.countNormal++;
  });
  const frauds = labelled ? labels.filter((l) => l === 1).length : 0;
  const times = rows.map((r) => r.f[0]);
  const amounts = rows.map((r) => r.f[29]);
  let dec = 0;
  for (let i = 1; i < times.length; i++) if (times[i] < times[i - 1]) dec++;
  const drift = FEATURES.map((f, j) => {
    const mean = rows.reduce((a, r) => a + r.f[j], 0) / Math.max(rows.length, 1);
    const psi = j === 0 ? 0.05 : j === 29 ? Math.min(1, Math.abs(Math.log(Math.max(mean, 1) / 22)) / 2) : Math.abs(mean) * 0.3;
    return { feature: f, psi, ks: psi / 3, flagged: psi >= 0.25 };
  });
  const order = scores.map((_, i) => i).sort((a, b) => scores[b] - scores[a]).slice(0, 20);
  return {
    uploadId: '0',
    duplicateOf: '0',
    sha256: sha,
    bytes: s(bytes),
    rowsTotal: s(parsed.total),
    rowsAccepted: s(rows.length),
    rowsRejected: s(parsed.total - rows.length),
    errors: errors.slice(0, 100),
    errorsTruncated: errors.length > 100,
    scored,
    modelVersion: s(version),
    scoringMessage: scored ? '' : 'no champion model yet: the rows were stored but not scored',
    predictedFrauds: s(scores.filter((v) => v >= 0.5).length),
    ...(scored && labelled ? { metrics: metricsOf(scores, labels, 0.5) } : {}),
    topSuspicious: order.map((i) => ({ line: s(rows[i].line), score: scores[i], label: labels[i], time: rows[i].f[0], amount: rows[i].f[29] })),
    scoreHistogram: scored ? hist.map((b) => ({ ...b, countNormal: s(b.countNormal), countFraud: s(b.countFraud), countUnlabelled: s(b.countUnlabelled) })) : [],
    report: {
      rows: s(rows.length),
      labelledRows: s(labelled ? rows.length : 0),
      frauds: s(frauds),
      fraudRate: labelled && rows.length ? frauds / rows.length : 0,
      timeMin: times.length ? times.reduce((a, b) => Math.min(a, b), Infinity) : 0,
      timeMax: times.length ? times.reduce((a, b) => Math.max(a, b), -Infinity) : 0,
      timeMonotonic: dec === 0,
      timeDecreases: s(dec),
      amountMean: amounts.reduce((a, b) => a + b, 0) / Math.max(amounts.length, 1),
      amountMax: amounts.reduce((a, b) => Math.max(a, b), 0),
      drift: scored ? drift : [],
      driftFlagged: scored ? drift.filter((d) => d.flagged).length : 0,
    },
    mode,
    elapsedSeconds: (Date.now() - started) / 1000,
    fileName,
    _rows: rows,
    _scores: scores,
  };
}

// ---------------------------------------------------------------- training simulation

function broadcast(run) {
  for (const res of state.watchers.get(run.id) ?? []) {
    res.write(`event: run\ndata: ${JSON.stringify(run)}\n\n`);
    if (['RUN_STATUS_SUCCEEDED', 'RUN_STATUS_FAILED', 'RUN_STATUS_CANCELLED'].includes(run.status)) {
      res.write('event: end\ndata: {}\n\n');
      res.end();
    }
  }
  if (['RUN_STATUS_SUCCEEDED', 'RUN_STATUS_FAILED', 'RUN_STATUS_CANCELLED'].includes(run.status)) state.watchers.delete(run.id);
}

function simulate(run, families, noPromote) {
  const epochs = 5;
  const steps = [];
  steps.push(() => Object.assign(run.progress, { phase: 'loading', message: 'scanning labelled rows' }));
  families.forEach((fam, ci) => {
    const curve = [];
    const cand = {
      name: fam === 'mlp' ? 'mlp[64,32] lr=0.001' : fam,
      family: FAMILIES[fam] ?? 'MODEL_FAMILY_UNSPECIFIED',
      params: {},
      curve,
      trainSeconds: 0,
      peakRssBytes: '0',
      selected: false,
    };
    for (let e = 1; e <= epochs; e++) {
      steps.push(() => {
        if (e === 1) run.candidates.push(cand);
        const loss = 0.3 / e + 0.02 * ci;
        const auprc = 0.5 + 0.06 * e - 0.02 * ci;
        curve.push({ epoch: e, trainLoss: loss, validationLoss: loss * 1.1, validationAuprc: auprc });
        Object.assign(run.progress, { phase: 'training', candidate: cand.name, candidatesDone: ci, candidatesTotal: families.length, epoch: e, loss, metric: auprc, message: '' });
      });
    }
    steps.push(() => {
      cand.trainSeconds = 1.5 + ci;
      cand.peakRssBytes = s(150e6 + ci * 20e6);
      cand.validationMetrics = metricsOf([0.9, 0.8, 0.3, 0.1, 0.05], [1, 1, 0, 1, 0], 0.5);
      cand.validationMetrics.auprc = 0.8 - 0.02 * ci;
      run.progress.candidatesDone = ci + 1;
    });
  });
  steps.push(() => Object.assign(run.progress, { phase: 'evaluating', candidate: '', epoch: 0, message: 'comparison set' }));
  steps.push(() => {
    run.progress.phase = 'publishing';
    const version = state.models.length + 1;
    const best = run.candidates[0];
    best.selected = true;
    const champ = state.models.find((m) => Number(m.version) === state.champion);
    const model = makeModel(version, best.family, 1.4 + 0.15 * version, `mock run ${run.id}`, Number(run.id));
    state.models.push(model);
    run.modelVersion = s(version);
    run.challengerComparison = model.manifest.comparisonMetrics;
    run.championComparison = champ?.manifest.comparisonMetrics;
    run.championVersionBefore = s(state.champion);
    const better = !champ || model.manifest.comparisonMetrics.auprc > champ.manifest.comparisonMetrics.auprc + 0.001;
    if (better && !noPromote) {
      setChampion(version, `promoted by run ${run.id}`, 'training');
      run.promoted = true;
      run.message = `promoted: AUPRC ${model.manifest.comparisonMetrics.auprc.toFixed(4)} > ${champ ? champ.manifest.comparisonMetrics.auprc.toFixed(4) : 'none'} + margin`;
    } else {
      run.message = noPromote ? 'registered, not promoted (no_promote)' : 'registered, not promoted: no improvement';
    }
  });
  steps.push(() => {
    run.status = 'RUN_STATUS_SUCCEEDED';
    run.finishedAt = now();
    run.progress = { ...run.progress, phase: 'done', message: run.message };
  });
  const every = Math.max(20, Math.floor(TRAIN_MS / steps.length));
  run.status = 'RUN_STATUS_RUNNING';
  run.startedAt = now();
  let i = 0;
  const tick = () => {
    if (run.status === 'RUN_STATUS_CANCELLED') return;
    steps[i++]();
    broadcast(run);
    if (i < steps.length) setTimeout(tick, every);
  };
  setTimeout(tick, every);
}

// ---------------------------------------------------------------- HTTP

function send(res, status, body, headers = {}) {
  const text = typeof body === 'string' ? body : JSON.stringify(body);
  res.writeHead(status, { 'Content-Type': typeof body === 'string' ? 'text/plain; charset=utf-8' : 'application/json', 'Cache-Control': 'no-store', ...headers });
  res.end(text);
}

const fail = (res, status, code, message, details) => send(res, status, { code, message, details: details ?? {} });

function readBody(req, limit = 512 * 1024 * 1024) {
  return new Promise((ok, ko) => {
    const chunks = [];
    let n = 0;
    req.on('data', (c) => {
      n += c.length;
      if (n > limit) ko(new Error('too large'));
      else chunks.push(c);
    });
    req.on('end', () => ok(Buffer.concat(chunks)));
    req.on('error', ko);
  });
}

function authorized(req) {
  return !TOKEN || req.headers.authorization === `Bearer ${TOKEN}`;
}

function csvFromBody(buf, contentType) {
  const m = /boundary=(?:"([^"]+)"|([^;]+))/.exec(contentType ?? '');
  if (!/multipart\/form-data/.test(contentType ?? '') || !m) return buf.toString('utf8');
  const boundary = `--${m[1] ?? m[2]}`;
  const text = buf.toString('utf8');
  const start = text.indexOf('\r\n\r\n', text.indexOf(boundary)) + 4;
  const end = text.indexOf(`\r\n${boundary}`, start);
  return text.slice(start, end < 0 ? undefined : end);
}

const MIME = { '.html': 'text/html; charset=utf-8', '.js': 'text/javascript', '.css': 'text/css', '.svg': 'image/svg+xml', '.json': 'application/json', '.png': 'image/png', '.ico': 'image/x-icon' };

function serveStatic(req, res, path) {
  const file = normalize(join(DIST, path));
  const target = file.startsWith(DIST) && existsSync(file) && statSync(file).isFile() ? file : join(DIST, 'index.html');
  if (!existsSync(target)) return send(res, 404, 'web build missing: run npm run build in clients/web');
  res.writeHead(200, { 'Content-Type': MIME[extname(target)] ?? 'application/octet-stream' });
  createReadStream(target).pipe(res);
}

async function api(req, res, url) {
  const p = url.pathname;
  const q = url.searchParams;
  const M = req.method;
  let m;
  state.counters.requests++;

  if (M === 'GET' && (p === '/api/v1/health' || p === '/healthz')) {
    return send(res, 200, { status: 'ok', services: { ingest: 'SERVING', storage: 'SERVING', inference: 'SERVING', training: 'SERVING' } });
  }
  if (M === 'GET' && p === '/api/v1/demo/sample.csv') {
    const rows = Math.min(500000, Number(q.get('rows') ?? 1000));
    const text = sampleCsv(rows, Number(q.get('seed') ?? 1), Number(q.get('fraud_rate') ?? 0.004), q.get('labels') !== 'false');
    return send(res, 200, text, { 'Content-Type': 'text/csv; charset=utf-8' });
  }
  if (M === 'POST' && (p === '/api/v1/uploads' || p === '/api/v1/uploads:validate')) {
    const started = Date.now();
    let buf;
    try {
      buf = await readBody(req);
    } catch {
      return fail(res, 413, 'PAYLOAD_TOO_LARGE', 'upload too large');
    }
    const mode = q.get('mode') === 'lenient' ? 'UPLOAD_MODE_LENIENT' : 'UPLOAD_MODE_STRICT';
    const fileName = q.get('file_name') ?? 'upload.csv';
    const sha = createHash('sha256').update(buf).digest('hex');
    const parsed = parseUpload(csvFromBody(buf, req.headers['content-type']), mode, fileName);
    const summary = summarize(parsed, buf.length, sha, mode, fileName, started);
    const { _rows, _scores, ...clean } = summary;
    if (parsed.errors.length && (mode === 'UPLOAD_MODE_STRICT' || parsed.errors.some((e) => e.line === '1'))) {
      const rejected = { ...clean, rowsAccepted: '0', scored: false, metrics: undefined, topSuspicious: [], scoreHistogram: [], predictedFrauds: '0' };
      return fail(res, 400, 'INVALID_ARGUMENT', `${parsed.errors.length} invalid rows; nothing was stored`, { summary: rejected });
    }
    if (p.endsWith(':validate')) return send(res, 200, { ...clean, scored: false, metrics: undefined });
    const dup = state.uploads.find((u) => u.sha256 === sha);
    if (dup) return send(res, 200, { ...clean, duplicateOf: dup.id, uploadId: '0' });
    const id = state.uploads.length + 1;
    clean.uploadId = s(id);
    const upload = {
      id: s(id),
      sha256: sha,
      fileName,
      mode,
      status: 'UPLOAD_STATUS_COMMITTED',
      receivedAt: new Date(started).toISOString(),
      committedAt: now(),
      rows: clean.rowsAccepted,
      rowsRejected: clean.rowsRejected,
      labelledRows: clean.report.labelledRows,
      frauds: clean.report.frauds,
      timeMin: clean.report.timeMin,
      timeMax: clean.report.timeMax,
      modelVersion: clean.modelVersion,
      bytes: clean.bytes,
      summaryJson: JSON.stringify(clean),
    };
    state.uploads.push(upload);
    state.predictions.set(id, _rows.map((r, i) => ({
      uploadId: s(id),
      line: s(r.line),
      modelVersion: clean.modelVersion,
      score: _scores[i] ?? 0,
      decision: (_scores[i] ?? 0) >= 0.5,
      label: r.label,
      features: r.f,
    })));
    state.counters.predictRows += _rows.length;
    return send(res, 200, clean);
  }
  if (M === 'GET' && p === '/api/v1/uploads') {
    const size = Math.min(500, Number(q.get('page_size') || 50));
    const before = Number(q.get('before_id') || 0);
    const list = [...state.uploads].reverse().filter((u) => !before || Number(u.id) < before);
    const page = list.slice(0, size).map(({ summaryJson, ...u }) => ({ ...u, summaryJson: '' }));
    return send(res, 200, { uploads: page, nextBeforeId: list.length > size ? page[page.length - 1].id : '0' });
  }
  if (M === 'GET' && (m = /^\/api\/v1\/uploads\/(\d+)$/.exec(p))) {
    const u = state.uploads.find((x) => x.id === m[1]);
    return u ? send(res, 200, { upload: u }) : fail(res, 404, 'NOT_FOUND', `no upload ${m[1]}`);
  }
  if (M === 'GET' && (m = /^\/api\/v1\/uploads\/(\d+)\/predictions$/.exec(p))) {
    const all = state.predictions.get(Number(m[1]));
    if (!all) return fail(res, 404, 'NOT_FOUND', `no upload ${m[1]}`);
    const list = q.get('order') === 'score' ? [...all].sort((a, b) => b.score - a.score) : all;
    const off = Number(q.get('offset') || 0);
    const size = Math.min(1000, Number(q.get('page_size') || 100));
    return send(res, 200, { predictions: list.slice(off, off + size), total: s(all.length) });
  }
  if (M === 'GET' && p === '/api/v1/models') return send(res, 200, { models: state.models });
  if (M === 'GET' && p === '/api/v1/models/champion') {
    const model = state.models.find((x) => Number(x.version) === state.champion);
    return send(res, 200, model ? { model, since: state.championSince } : {});
  }
  if (M === 'GET' && p === '/api/v1/models/champion/history') return send(res, 200, { changes: [...state.history].reverse() });
  if (M === 'GET' && (m = /^\/api\/v1\/models\/(\d+)$/.exec(p))) {
    const model = state.models.find((x) => x.version === m[1]);
    return model ? send(res, 200, { model }) : fail(res, 404, 'NOT_FOUND', `no model version ${m[1]}`);
  }
  if (M === 'POST' && (m = /^\/api\/v1\/models\/(\d+)\/promote$/.exec(p))) {
    if (!authorized(req)) return fail(res, 401, 'UNAUTHENTICATED', 'missing or wrong bearer token');
    const body = JSON.parse((await readBody(req)).toString() || '{}');
    const model = state.models.find((x) => x.version === m[1]);
    if (!model) return fail(res, 404, 'NOT_FOUND', `no model version ${m[1]}`);
    const change = setChampion(Number(m[1]), body.reason || 'promoted', 'admin');
    return send(res, 200, { change, reloaded: true, message: `inference now serves v${m[1]}` });
  }
  // ---- operating points (what-if curve, audited changes): a toy curve, history in memory ----
  if ((m = /^\/api\/v1\/models\/(\d+|champion)\/(what-if|operating-point)$/.exec(p))) {
    const v = m[1] === 'champion' ? String(state.champion) : m[1];
    const model = state.models.find((x) => x.version === v);
    if (!model) return fail(res, 404, 'NOT_FOUND', `no model version ${v}`);
    const hist = (state.operatingPoints ??= {})[v] ??= [];
    const at = (t) => ({ threshold: t, alerts: s(2000 * (1 - t) ** 3), alertsPerDay: 1000 * (1 - t) ** 3, alertFraction: (1 - t) ** 3 / 100, trueAlerts: s(20 * (1 - t * t)), precision: Math.min(1, 0.02 + t * 0.9), recall: 1 - t * t });
    const served = hist.length ? hist[0].threshold : model.manifest.threshold;
    if (M === 'GET' && m[2] === 'what-if') {
      return send(res, 200, { version: v, rows: '200000', frauds: '340', days: 2, firstDay: '0', lastDay: '1', dataGeneration: s(state.uploads.length), curve: Array.from({ length: 49 }, (_, i) => at(0.02 * (i + 1))), current: at(served), currentSource: hist.length ? 'operating_point' : 'manifest', manifest: at(model.manifest.threshold), ...(hist.length ? { operatingPoint: hist[0] } : {}), budgets: [], cached: true, seconds: 0.001 });
    }
    if (M === 'GET') return send(res, 200, { ...(hist.length ? { point: hist[0] } : {}), manifestThreshold: model.manifest.threshold, threshold: served, history: hist });
    if (!authorized(req)) return fail(res, 401, 'UNAUTHENTICATED', 'missing or wrong bearer token');
    const body = JSON.parse((await readBody(req)).toString() || '{}');
    if (!body.reason) return fail(res, 400, 'INVALID_ARGUMENT', 'reason: required (why the operating point changes)');
    const t = body.kind === 'OPERATING_POINT_KIND_ALERTS_PER_DAY' ? Math.min(1, 1 - Math.cbrt(body.value / 1000)) : body.value;
    const e = at(t);
    const point = { id: s(Object.values(state.operatingPoints).flat().length + 1), version: v, kind: body.kind, requestedValue: body.value, threshold: t, previousThreshold: served, reason: body.reason, actor: body.actor || 'admin', changedAt: now(), expectedAlertsPerDay: e.alertsPerDay, expectedPrecision: e.precision, expectedRecall: e.recall, evaluatedRows: '200000', evaluatedDays: 2 };
    hist.unshift(point);
    return send(res, 200, { point, reloaded: Number(v) === state.champion, message: `v${v} serves at threshold ${t.toFixed(4)}` });
  }
  if (M === 'POST' && p === '/api/v1/score') {
    const body = JSON.parse((await readBody(req)).toString() || '{}');
    const rows = Array.isArray(body.rows) ? body.rows : [];
    if (!rows.length || rows.some((r) => !Array.isArray(r) || r.length !== 30)) {
      return fail(res, 400, 'INVALID_ARGUMENT', 'rows must be arrays of 30 numbers');
    }
    const topK = body.top_k ?? 0;
    if (!Number.isInteger(topK) || topK < 0 || topK > 30) return fail(res, 400, 'INVALID_ARGUMENT', `top_k is ${topK}`);
    const version = state.champion;
    const model = state.models.find((x) => Number(x.version) === version);
    if (!model) return fail(res, 503, 'UNAVAILABLE', 'no model loaded yet');
    const threshold = model.manifest?.threshold ?? 0.5;
    const scores = rows.map((r) => scoreRow(r, version));
    const out = { scores: { scores, decisions: scores.map((v) => v >= threshold), modelVersion: s(version), threshold } };
    if (body.explain) out.explanations = rows.map((r) => explainRow(r, version, topK || 5));
    return send(res, 200, out);
  }
  if (M === 'GET' && p === '/api/v1/inference/model') {
    const model = state.models.find((x) => Number(x.version) === state.champion);
    return model
      ? send(res, 200, { version: model.version, manifest: model.manifest, loadedAt: state.championSince, artifactPath: model.artifactUri })
      : fail(res, 503, 'UNAVAILABLE', 'no model loaded');
  }
  if (M === 'POST' && p === '/api/v1/training/runs') {
    if (!authorized(req)) return fail(res, 401, 'UNAUTHENTICATED', 'missing or wrong bearer token');
    const body = JSON.parse((await readBody(req)).toString() || '{}');
    const families = (body.families?.length ? body.families : Object.keys(FAMILIES)).filter((f) => f in FAMILIES);
    if (!families.length) return fail(res, 400, 'INVALID_ARGUMENT', 'unknown model family');
    const run = {
      id: s(state.runs.length + 1),
      status: 'RUN_STATUS_QUEUED',
      trigger: body.trigger || 'manual',
      params: body.params ?? {},
      createdAt: now(),
      progress: { phase: 'queued', candidate: '', candidatesDone: 0, candidatesTotal: families.length, epoch: 0, loss: 0, metric: 0, message: '' },
      candidates: [],
      lineage: { description: body.description || 'all labelled uploads', trainRows: s(120000), trainFrauds: s(210) },
      modelVersion: '0',
      promoted: false,
      championVersionBefore: s(state.champion),
      message: '',
    };
    state.runs.push(run);
    simulate(run, families, !!body.noPromote);
    return send(res, 200, { run });
  }
  if (M === 'GET' && p === '/api/v1/training/runs') {
    return send(res, 200, { runs: [...state.runs].reverse(), nextBeforeId: '0' });
  }
  if (M === 'GET' && (m = /^\/api\/v1\/training\/runs\/(\d+)$/.exec(p))) {
    const run = state.runs.find((r) => r.id === m[1]);
    return run ? send(res, 200, { run }) : fail(res, 404, 'NOT_FOUND', `no run ${m[1]}`);
  }
  if (M === 'GET' && (m = /^\/api\/v1\/training\/runs\/(\d+)\/events$/.exec(p))) {
    const run = state.runs.find((r) => r.id === m[1]);
    if (!run) return fail(res, 404, 'NOT_FOUND', `no run ${m[1]}`);
    res.writeHead(200, { 'Content-Type': 'text/event-stream', 'Cache-Control': 'no-store', Connection: 'keep-alive' });
    res.write(`event: run\ndata: ${JSON.stringify(run)}\n\n`);
    if (['RUN_STATUS_SUCCEEDED', 'RUN_STATUS_FAILED', 'RUN_STATUS_CANCELLED'].includes(run.status)) {
      res.write('event: end\ndata: {}\n\n');
      return res.end();
    }
    const set = state.watchers.get(run.id) ?? new Set();
    set.add(res);
    state.watchers.set(run.id, set);
    req.on('close', () => set.delete(res));
    return undefined;
  }
  if (M === 'POST' && (m = /^\/api\/v1\/training\/runs\/(\d+)\/cancel$/.exec(p))) {
    if (!authorized(req)) return fail(res, 401, 'UNAUTHENTICATED', 'missing or wrong bearer token');
    const run = state.runs.find((r) => r.id === m[1]);
    if (!run) return fail(res, 404, 'NOT_FOUND', `no run ${m[1]}`);
    run.status = 'RUN_STATUS_CANCELLED';
    run.finishedAt = now();
    run.message = 'cancelled by admin';
    broadcast(run);
    return send(res, 200, { run });
  }
  // Review queue (issue 17 item 5): alerts = flagged predictions of unreviewed rows, newest upload first, then score;
  // page_token = "upload:score:line" of the last item; reasons as stored with the alert (as the real gateway answers
  // them when ingest stored them); the population = deciles of the stored rows' features.
  if (p === '/api/v1/review/queue' || p === '/api/v1/review') {
    const reviewed = (state.reviewed ??= new Set());
    const rows = [...state.predictions.entries()].sort((a, b) => b[0] - a[0]).flatMap(([, list]) => [...list].sort((a, b) => b.score - a.score || Number(b.line) - Number(a.line)));
    if (M === 'POST') {
      if (!authorized(req)) return fail(res, 401, 'UNAUTHENTICATED', 'missing or wrong bearer token');
      const body = JSON.parse((await readBody(req)).toString() || '{}');
      const d = String(body.disposition ?? '').toLowerCase().replace('review_disposition_', '').replace('-', '_');
      if (!['fraud', 'not_fraud', 'unsure'].includes(d)) return fail(res, 400, 'INVALID_ARGUMENT', 'field disposition: must be FRAUD, NOT_FRAUD or UNSURE');
      const row = rows.find((r) => r.uploadId === String(body.uploadId) && r.line === String(body.line));
      if (!row) return fail(res, 404, 'NOT_FOUND', `no stored transaction at upload ${body.uploadId} line ${body.line}`);
      reviewed.add(`${row.uploadId}:${row.line}`);
      const label = d === 'unsure' ? row.label : d === 'fraud' ? 1 : 0;
      const outcome = d === 'unsure' ? '' : row.label === undefined || row.label === null ? 'applied' : row.label === label ? 'unchanged' : 'conflict';
      for (const r of rows.filter((x) => x.uploadId === row.uploadId && x.line === row.line)) r.label = label;
      return send(res, 200, { uploadId: row.uploadId, line: row.line, reviewId: s(reviewed.size), labelOutcome: outcome, currentLabel: label ?? -1 });
    }
    const size = Math.min(500, Number(q.get('page_size') || 50));
    const [tu, ts, tl] = (q.get('page_token') || '').split(':').map(Number);
    const after = (r) => !q.get('page_token') || Number(r.uploadId) < tu || (Number(r.uploadId) === tu && (r.score < ts || (r.score === ts && Number(r.line) < tl)));
    const alerts = rows.filter((r) => r.decision && !reviewed.has(`${r.uploadId}:${r.line}`) && after(r));
    const page = alerts.slice(0, size);
    const items = page.map((r) => ({ uploadId: r.uploadId, line: r.line, transactionId: '', modelVersion: r.modelVersion, score: r.score, time: r.features[0], amount: r.features[29], features: r.features, currentLabel: r.label ?? -1, explanation: explainRow(r.features, Number(r.modelVersion) || 1, 5), explanationSource: 'stored', explanationModelVersion: r.modelVersion }));
    const sample = rows.slice(0, 2000).map((r) => r.features);
    const features = FEATURES.map((feature, j) => { const v = sample.map((f) => f[j]).sort((a, b) => a - b); return { feature, edges: v.length ? [1, 2, 3, 4, 5, 6, 7, 8, 9].map((k) => v[Math.floor((k * (v.length - 1)) / 10)]) : [], fractions: Array(10).fill(0.1) }; });
    const last = page[page.length - 1];
    return send(res, 200, { items, nextPageToken: alerts.length > size ? `${last.uploadId}:${last.score}:${last.line}` : '', population: { modelVersion: s(state.champion), features } });
  }
  // Realised metrics per (version, day) of the stored predictions, on the labels the rows carry (no AUPRC: 0).
  if (M === 'GET' && p === '/api/v1/monitoring/realised') {
    const k = Number(url.searchParams.get('k')) || 100;
    const groups = new Map();
    for (const list of state.predictions.values()) for (const r of list) {
      const key = `${r.modelVersion}:${Math.floor(r.features[0] / 86400)}`;
      if (!groups.has(key)) groups.set(key, []);
      groups.get(key).push(r);
    }
    const metrics = [...groups.entries()].map(([key, g]) => {
      const [modelVersion, period] = key.split(':');
      const labelled = g.filter((r) => (r.label ?? -1) >= 0);
      const alerts = g.filter((r) => r.decision);
      const alertsLabelled = alerts.filter((r) => (r.label ?? -1) >= 0);
      const trueAlerts = alertsLabelled.filter((r) => r.label === 1).length;
      const frauds = labelled.filter((r) => r.label === 1).length;
      const top = [...g].sort((a, b) => b.score - a.score).slice(0, k).filter((r) => (r.label ?? -1) >= 0);
      const times = g.map((r) => r.features[0]);
      return { modelVersion, period, rowsScored: s(g.length), rowsLabelled: s(labelled.length), unlabelledShare: 1 - labelled.length / g.length, alerts: s(alerts.length), alertsLabelled: s(alertsLabelled.length), trueAlerts: s(trueAlerts), frauds: s(frauds), precision: alertsLabelled.length ? trueAlerts / alertsLabelled.length : 0, recall: frauds ? trueAlerts / frauds : 0, auprc: 0, precisionAtK: top.length ? top.filter((r) => r.label === 1).length / top.length : 0, topKLabelled: s(top.length), timeMin: Math.min(...times), timeMax: Math.max(...times) };
    });
    return send(res, 200, { metrics, k, by: 'REALISED_PERIOD_DAY' });
  }
  if (M === 'GET' && p === '/api/v1/monitoring') {
    const champion = state.models.find((x) => Number(x.version) === state.champion);
    const svc = (name, metrics) => ({ name, healthy: true, metrics });
    return send(res, 200, {
      services: [
        svc('gateway', { fraud_http_requests_total: state.counters.requests }),
        svc('ingest', { fraud_ingest_rows_total: state.counters.predictRows, fraud_rpc_latency_seconds_sum: 1.5 }),
        svc('storage', { fraud_storage_uploads_total: state.uploads.length }),
        svc('inference', { fraud_inference_reloads_total: state.counters.reloads, fraud_inference_predict_latency_seconds_p99: 0.004 }),
        svc('training', { fraud_training_runs_total: state.runs.length }),
      ],
      ...(champion ? { champion, championSince: state.championSince } : {}),
      uploads: state.uploads.map((u) => ({
        id: u.id,
        fileName: u.fileName,
        rows: u.rows,
        frauds: u.frauds,
        predictedFrauds: JSON.parse(u.summaryJson).predictedFrauds,
        time: u.receivedAt,
        modelVersion: u.modelVersion,
      })),
    });
  }
  return fail(res, 404, 'NOT_FOUND', `no route ${M} ${p}`);
}

const server = createServer((req, res) => {
  const url = new URL(req.url ?? '/', 'http://localhost');
  if (url.pathname.startsWith('/api/') || url.pathname === '/healthz') {
    api(req, res, url).catch((err) => fail(res, 500, 'INTERNAL', String(err)));
  } else {
    serveStatic(req, res, url.pathname);
  }
});
server.listen(PORT, '127.0.0.1', () => {
  console.log(`mock gateway on http://127.0.0.1:${PORT} (dist ${DIST}, token ${TOKEN ? 'set' : 'off'})`);
});
const stop = () => {
  server.close(() => process.exit(0));
  server.closeAllConnections();
};
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
