"""gen_sql.py - writes a deterministic SQL script for the sqlite3 benchmark.

Usage: python3 gen_sql.py SCALE > bench.sql, then sqlite3 :memory: '.read bench.sql'.
The script builds a database (customers and orders, inserted by explicit
multi-row INSERT statements, so the parser works too), indexes it, and runs
joins, aggregates, sorts, string functions, updates, deletes and a recursive
query. The last line printed is "RESULT ..." and is the same everywhere.
"""
import random
import sys

CITIES = ["Oslo", "Lima", "Pune", "Kyiv", "Graz", "Cork", "Fez", "Hue", "Ulm", "Nis"]
ITEMS = ["bolt", "nut", "gear", "cog", "axle", "pin", "cam", "rod", "hub", "disc",
         "lever", "spring", "valve", "pump", "fan", "belt"]


def rows(rng, n, make):
    out = []
    for i in range(1, n + 1):
        out.append(make(rng, i))
        if len(out) == 200 or i == n:
            yield ",".join(out)
            out = []


def main():
    scale = int(sys.argv[1]) if len(sys.argv) > 1 else 10
    rng = random.Random(2024)
    customers, orders = 1000 * scale, 10000 * scale
    w = sys.stdout.write
    w("PRAGMA cache_size=-65536;\n")
    w("CREATE TABLE customers(id INTEGER PRIMARY KEY, name TEXT, city TEXT, joined INTEGER);\n")
    w("CREATE TABLE orders(id INTEGER PRIMARY KEY, customer INTEGER, item TEXT, qty INTEGER,"
      " price REAL, note TEXT);\n")
    w("BEGIN;\n")
    for chunk in rows(rng, customers, lambda r, i: "(%d,'customer %05d','%s',%d)" % (
            i, r.randint(0, 99999), r.choice(CITIES), r.randint(2000, 2024))):
        w("INSERT INTO customers VALUES %s;\n" % chunk)
    for chunk in rows(rng, orders, lambda r, i: "(%d,%d,'%s',%d,%.2f,'%s')" % (
            i, r.randint(1, customers), r.choice(ITEMS), r.randint(1, 20),
            r.uniform(0.5, 500.0), "n" * r.randint(0, 60))):
        w("INSERT INTO orders VALUES %s;\n" % chunk)
    w("COMMIT;\n")
    w("CREATE INDEX orders_customer ON orders(customer);\n")
    w("CREATE INDEX orders_item_price ON orders(item, price);\n")
    w("CREATE INDEX customers_city ON customers(city, name);\n")
    w(".output /dev/null\n")
    for _ in range(3):
        w("SELECT c.city, count(*), sum(o.qty * o.price) FROM orders o JOIN customers c"
          " ON c.id = o.customer GROUP BY c.city ORDER BY 3 DESC;\n")
        w("SELECT customer, group_concat(item, ','), max(price) FROM orders GROUP BY customer"
          " HAVING count(*) > 3 ORDER BY customer;\n")
        w("SELECT upper(name) || ':' || city, length(name) FROM customers ORDER BY name DESC;\n")
        w("SELECT item, count(DISTINCT customer), avg(price) FROM orders GROUP BY item;\n")
        w("SELECT * FROM orders ORDER BY price * qty DESC, id LIMIT 1000;\n")
        w("SELECT printf('%s-%d', item, qty), substr(note, 1, 10) FROM orders"
          " WHERE note LIKE 'nnnnn%' ORDER BY 1;\n")
    w("UPDATE orders SET note = note || '-updated', price = price * 1.1 WHERE qty > 10;\n")
    w("DELETE FROM orders WHERE id % 7 = 0;\n")
    w("CREATE TABLE totals AS SELECT customer, sum(qty) AS q, total(price) AS p FROM orders"
      " GROUP BY customer;\n")
    w("WITH RECURSIVE seq(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM seq WHERE x < %d)"
      " SELECT count(*), sum(length(printf('%%08d', x))) FROM seq;\n" % (20000 * scale))
    w("REINDEX;\n")
    w("VACUUM;\n")
    w(".output stdout\n")
    w("SELECT 'RESULT orders=' || count(*) || ' qty=' || sum(qty) FROM orders;\n")


if __name__ == "__main__":
    main()
