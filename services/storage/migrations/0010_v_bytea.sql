-- V1..V28 of a stored transaction as 224 bytes: 28 IEEE-754 doubles, big-endian, exactly as
-- PostgreSQL's own float8send writes them (so values are kept bit for bit).
--
-- Why: a float8[] makes PostgreSQL build and check an array of 28 elements for every row it
-- receives, and that was the largest single cost of an upload once the services' own CPU came
-- down (binary COPY of 284,807 rows into transactions with its keys: 1.6-2.8 s as float8[]
-- against 1.3-1.9 s as bytea in the same psql session; bench/README, upload). Nothing reads
-- single elements in SQL: storage decodes the bytes (ScanTransactions, ListPredictions, the
-- review queue, live scoring).
--
-- For people at a psql prompt: unpack_v(v) gives the float8[] back and pack_v(float8[]) makes
-- the bytes (exact both ways, tested), for example
--   SELECT line, unpack_v(v) FROM transactions WHERE upload_id = 3 LIMIT 5;

CREATE FUNCTION pack_v(a float8[]) RETURNS bytea
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE AS $$
  SELECT COALESCE(string_agg(float8send(x), ''::bytea ORDER BY o), ''::bytea)
  FROM unnest(a) WITH ORDINALITY AS u(x, o)
$$;

-- Decodes each 8-byte group by its IEEE-754 fields; every step is exact in float8 (the
-- mantissa has 52 bits, and powers of two are exact), subnormals, zeros, infinities and NaN
-- included.
CREATE FUNCTION unpack_v(b bytea) RETURNS float8[]
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE AS $$
  SELECT COALESCE(array_agg(
    CASE
      WHEN e = 2047 THEN CASE WHEN m <> 0 THEN 'NaN'::float8
                              WHEN s = 1 THEN '-Infinity'::float8 ELSE 'Infinity'::float8 END
      WHEN e = 0 THEN (1 - 2 * s) * (m::float8 * 2::float8 ^ (-1074))
      ELSE (1 - 2 * s) * ((1 + m::float8 * 2::float8 ^ (-52)) * 2::float8 ^ (e - 1023))
    END ORDER BY i), '{}'::float8[])
  FROM (SELECT i, (bits >> 63) & 1 AS s, (bits >> 52) & 2047 AS e,
               bits & 4503599627370495 AS m
        FROM (SELECT i, ('x' || encode(substring(b FROM 8 * i + 1 FOR 8), 'hex'))::bit(64)::bigint
                     AS bits
              FROM generate_series(0, octet_length(b) / 8 - 1) AS g(i)) raw) fields
$$;

-- current_transactions (0009) reads v: it goes while the column changes type and comes back
-- unchanged.
DROP VIEW current_transactions;

-- The rewrite spells pack_v out per element: 0.94 s for 284,807 rows against 3.1 s through the
-- function's unnest and string_agg (so ~35 s for 10 M stored rows, in the start-up transaction,
-- which has no statement timeout).
ALTER TABLE transactions
  DROP CONSTRAINT transactions_v_has_28,
  ALTER COLUMN v TYPE bytea USING (
    float8send(v[1]) || float8send(v[2]) || float8send(v[3]) || float8send(v[4]) ||
    float8send(v[5]) || float8send(v[6]) || float8send(v[7]) || float8send(v[8]) ||
    float8send(v[9]) || float8send(v[10]) || float8send(v[11]) || float8send(v[12]) ||
    float8send(v[13]) || float8send(v[14]) || float8send(v[15]) || float8send(v[16]) ||
    float8send(v[17]) || float8send(v[18]) || float8send(v[19]) || float8send(v[20]) ||
    float8send(v[21]) || float8send(v[22]) || float8send(v[23]) || float8send(v[24]) ||
    float8send(v[25]) || float8send(v[26]) || float8send(v[27]) || float8send(v[28])),
  ADD CONSTRAINT transactions_v_28_float8 CHECK (octet_length(v) = 224);

CREATE VIEW current_transactions AS
SELECT t.upload_id, t.line, t.time, t.amount, t.v, t.transaction_id,
  CASE WHEN o.labels IS NULL THEN t.class
       ELSE CASE get_byte(o.labels, (t.line & 1023)::int) WHEN 255 THEN t.class WHEN 254 THEN NULL
            ELSE get_byte(o.labels, (t.line & 1023)::int)::smallint END
  END AS class
FROM transactions t
LEFT JOIN label_overlay o ON o.upload_id = t.upload_id AND o.chunk = t.line >> 10;
