-- The index on transactions.time becomes a BRIN index (issue 23, uploads faster than psql \copy).
--
-- Why: every stored row paid a B-tree insertion into transactions_time, and B-tree insertion was
-- the largest share of PostgreSQL's CPU during an upload (bench/README, upload). A BRIN index
-- keeps one min/max summary per 128 heap pages, so a COPY touches it once per page range, not
-- once per row. Binary COPY of 284,807 rows into transactions (primary key kept), 5 alternating
-- runs in one psql session: B-tree 0.89-1.25 s (median 1.25), BRIN 0.77-1.09 s (1.06), no index
-- on time 0.72-0.97 s (0.97).
--
-- What it costs: the one reader of Time order, ScanTransactions (training and evaluation), now
-- sorts instead of walking the B-tree: 569,614 rows in Time order took 0.61-0.65 s by the B-tree
-- and 0.91-0.93 s by a parallel sequential scan and sort, once per training run (which trains for
-- tens of seconds). A Time-range scan (evaluation's time_min / time_max) still skips the page
-- ranges outside it: uploads are written in file order, which for card data is Time order.
-- autosummarize summarises each page range once it is full, so ranges written after the last
-- VACUUM are pruned too.

DROP INDEX transactions_time;
CREATE INDEX transactions_time ON transactions USING brin (time) WITH (autosummarize = on);
