// The list of stored uploads, newest first, with paging (GET /api/v1/uploads).

import { useState } from 'react';
import { useApi } from '../api/context';
import { fmtInt, fmtTime, int64, modeName, nonZero } from '../api/format';
import type { Int64, Upload } from '../api/types';
import { useAsync } from '../hooks';
import { ErrorBox, Loading } from './Status';

const PAGE = 20;

export function UploadHistory({ refreshKey }: { refreshKey: number }) {
  const api = useApi();
  const [cursors, setCursors] = useState<Int64[]>([]);
  const before = cursors[cursors.length - 1];
  const page = useAsync(() => api.listUploads(PAGE, before), [api, before, refreshKey]);
  const uploads: Upload[] = page.data?.uploads ?? [];
  const next = page.data?.nextBeforeId;

  return (
    <section className="panel" aria-labelledby="history-h">
      <div className="panel-head">
        <h2 id="history-h">Upload history</h2>
        <button type="button" onClick={page.reload}>
          Refresh
        </button>
      </div>
      <ErrorBox error={page.error} title="Could not load the uploads" />
      {page.loading && !page.data && <Loading what="uploads" />}
      {page.data && uploads.length === 0 && <p className="muted">No uploads yet.</p>}
      {uploads.length > 0 && (
        <div className="table-wrap">
          <table>
            <caption className="visually-hidden">Stored uploads, newest first</caption>
            <thead>
              <tr>
                <th scope="col" className="num">
                  Id
                </th>
                <th scope="col">File</th>
                <th scope="col">Received</th>
                <th scope="col">Mode</th>
                <th scope="col" className="num">
                  Rows
                </th>
                <th scope="col" className="num">
                  Rejected
                </th>
                <th scope="col" className="num">
                  Frauds
                </th>
                <th scope="col">Model</th>
              </tr>
            </thead>
            <tbody>
              {uploads.map((u) => (
                <tr key={int64(u.id)}>
                  <td className="num">
                    <a href={`#/uploads/${int64(u.id)}`}>#{int64(u.id)}</a>
                  </td>
                  <td className="wrap">{u.fileName || '—'}</td>
                  <td>{fmtTime(u.receivedAt)}</td>
                  <td>{modeName(u.mode)}</td>
                  <td className="num">{fmtInt(u.rows)}</td>
                  <td className="num">{fmtInt(u.rowsRejected)}</td>
                  <td className="num">{nonZero(u.labelledRows) ? fmtInt(u.frauds) : '—'}</td>
                  <td>{nonZero(u.modelVersion) ? `v${int64(u.modelVersion)}` : '—'}</td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      )}
      <div className="pager">
        <button type="button" disabled={cursors.length === 0} onClick={() => setCursors((c) => c.slice(0, -1))}>
          Newer
        </button>
        <button
          type="button"
          disabled={!nonZero(next)}
          onClick={() => next !== undefined && setCursors((c) => [...c, next])}
        >
          Older
        </button>
      </div>
    </section>
  );
}
