#!/bin/bash
# preload_sqlite3: the sqlite3 CLI builds a file database (tables, 100k+
# rows from recursive CTEs, indexes) and runs joins, GROUP BY, ORDER BY,
# window functions, LIKE, large string concatenations and a .dump, plainly
# and under mapalloc (each on its own database file); stdouts must match.
# Usage: preload_sqlite3.sh /path/to/libmapalloc.so
set -euo pipefail
source "$(dirname "$0")/common.sh"
pl_init "${1:-}"
pl_require sqlite3
cd "$T"

cat >script.sql <<'SQL'
.bail on
.headers on
.mode list
PRAGMA journal_mode = WAL;
PRAGMA cache_size = -8000;
BEGIN;
CREATE TABLE customer(id INTEGER PRIMARY KEY, name TEXT NOT NULL, city TEXT, born INTEGER);
CREATE TABLE product(id INTEGER PRIMARY KEY, label TEXT, price REAL, category TEXT);
CREATE TABLE orders(id INTEGER PRIMARY KEY, customer INTEGER REFERENCES customer,
                    product INTEGER REFERENCES product, qty INTEGER, day INTEGER, note TEXT);
WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM c WHERE i < 20000)
INSERT INTO customer
SELECT i,
       char(65 + ((i * 2654435761) >> 7) % 26)
         || lower(char(65 + ((i * 2654435761) >> 11) % 26, 65 + ((i * 2654435761) >> 15) % 26,
                       65 + ((i * 2654435761) >> 19) % 26))
         || substr('aeiouy', 1 + (i * 40503 >> 9) % 6, 1 + i % 3)
         || ' ' || char(65 + ((i * 40503) >> 5) % 26) || printf('%04d', i % 9973),
       CASE i % 7 WHEN 0 THEN 'Berlin' WHEN 1 THEN 'Lisbon' WHEN 2 THEN 'Oslo'
                  WHEN 3 THEN 'Paris' WHEN 4 THEN 'Quito' WHEN 5 THEN 'Rome' ELSE 'Tokyo' END,
       1940 + (i * 2654435761) % 65
FROM c;
WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM c WHERE i < 2000)
INSERT INTO product
SELECT i, 'product-' || hex(i * 40503 % 65536) || '-' || substr('abcdefghijklmnopqrstuvwxyz', 1 + i % 20, 6),
       round(((i * 48271) % 100000) / 100.0 + 0.99, 2),
       'cat' || (i % 37)
FROM c;
WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM c WHERE i < 120000)
INSERT INTO orders
SELECT i, 1 + ((i * 2654435761) >> 8) % 20000, 1 + ((i * 40503) >> 3) % 2000,
       1 + ((i * 2654435761) >> 20) % 9,
       (i * 7919) % 3650,
       CASE WHEN i % 11 = 0 THEN 'gift wrap, ' || printf('%d', i) ELSE NULL END
FROM c;
CREATE INDEX orders_customer ON orders(customer);
CREATE INDEX orders_product_day ON orders(product, day);
CREATE INDEX customer_city ON customer(city, name);
COMMIT;
ANALYZE;

SELECT 'counts', (SELECT count(*) FROM customer), (SELECT count(*) FROM product),
       (SELECT count(*) FROM orders), (SELECT sum(qty) FROM orders);

-- join + GROUP BY + ORDER BY
SELECT c.city, count(*) AS n, sum(o.qty) AS items,
       printf('%.2f', sum(o.qty * p.price)) AS revenue
FROM orders o JOIN customer c ON c.id = o.customer JOIN product p ON p.id = o.product
GROUP BY c.city ORDER BY revenue DESC, c.city;

SELECT p.category, count(DISTINCT o.customer) AS buyers, max(o.day) AS last_day
FROM orders o JOIN product p ON p.id = o.product
GROUP BY p.category HAVING buyers > 100 ORDER BY p.category;

-- window functions
SELECT * FROM (
  SELECT c.city, c.name, sum(o.qty) AS q,
         rank() OVER (PARTITION BY c.city ORDER BY sum(o.qty) DESC, c.name) AS r,
         printf('%.3f', avg(sum(o.qty)) OVER (PARTITION BY c.city)) AS city_avg
  FROM customer c JOIN orders o ON o.customer = c.id
  GROUP BY c.id)
WHERE r <= 3 ORDER BY city, r;

SELECT day / 365 AS year, count(*) AS n,
       sum(count(*)) OVER (ORDER BY day / 365 ROWS UNBOUNDED PRECEDING) AS running,
       lag(count(*), 1, 0) OVER (ORDER BY day / 365) AS prev
FROM orders GROUP BY year ORDER BY year;

-- LIKE, GLOB, substr
SELECT count(*), min(name), max(name) FROM customer WHERE name LIKE 'B%a%';
SELECT count(*) FROM product WHERE label LIKE '%-cdef%' OR label GLOB '*[0-9][A-F]-*';
SELECT id, label FROM product WHERE label LIKE 'product-1%' ORDER BY label LIMIT 10;

-- large string concatenations
SELECT length(group_concat(name, ',')), hex(substr(group_concat(name, ','), 5000, 40))
FROM (SELECT name FROM customer ORDER BY name, id);
SELECT city, length(s), substr(s, 1, 60), substr(s, -60) FROM (
  SELECT city, group_concat(name || ':' || born, ';') AS s
  FROM (SELECT * FROM customer ORDER BY id) GROUP BY city) ORDER BY city;
SELECT length(x), substr(x, 100000, 30) FROM (
  SELECT group_concat(printf('%08d:%s', o.id, coalesce(o.note, p.label)), '|') AS x
  FROM (SELECT * FROM orders ORDER BY id) o JOIN product p ON p.id = o.product);
SELECT length(replace(replace(group_concat(label, ''), 'a', 'xyz'), 'product', ''))
FROM (SELECT label FROM product ORDER BY id);

-- subqueries, CTE, json, update/delete in a transaction
WITH top AS (SELECT customer, sum(qty) AS q FROM orders GROUP BY customer
             ORDER BY q DESC, customer LIMIT 20)
SELECT c.name, top.q, json_object('city', c.city, 'born', c.born) FROM top
JOIN customer c ON c.id = top.customer ORDER BY top.q DESC, c.name;
BEGIN;
UPDATE orders SET qty = qty * 2 WHERE day % 10 = 3;
DELETE FROM orders WHERE product IN (SELECT id FROM product WHERE category = 'cat5');
SELECT 'after', count(*), sum(qty) FROM orders;
ROLLBACK;
SELECT 'rolled back', count(*), sum(qty) FROM orders;
PRAGMA integrity_check;
SELECT * FROM orders WHERE id % 997 = 0 ORDER BY id;
SQL

run_sqlite() { # DB
    sqlite3 -batch "$1" <script.sql
    sqlite3 -batch "$1" .dump
    sqlite3 -batch -csv "$1" 'SELECT * FROM customer ORDER BY born, name DESC, id'
}
pl_plain sqlite3 bash -c "$(declare -f run_sqlite); cd '$T' && run_sqlite plain.db"
pl_ma sqlite3 bash -c "$(declare -f run_sqlite); cd '$T' && run_sqlite ma.db"
pl_compare sqlite3
pl_check_stats sqlite3
grep -q '^rolled back|120000|' "$T/sqlite3.plain.out" || fail "sqlite3: unexpected output (test is broken)"
echo "preload_sqlite3: OK ($(wc -c <"$T/sqlite3.ma.out") bytes identical)"
