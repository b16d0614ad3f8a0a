"""Generate the bundled sample datasets deterministically: `python generate.py` (no arguments).

Every generator uses its own seeded random.Random, so re-running rewrites identical files.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

HERE = Path(__file__).parent


def math_solver() -> list[dict]:
    """240 one-step additions/subtractions with small numbers, a few as word problems."""
    rng = random.Random(7)
    names = ["Ana", "Ben", "Cara", "Dev", "Eli", "Fay", "Gus", "Hana"]
    things = ["apples", "books", "coins", "pens", "cards", "shells"]
    items, seen = [], set()
    while len(items) < 240:
        a, b = rng.randint(1, 20), rng.randint(1, 20)
        op = rng.choice("+-")
        if op == "-" and b > a:
            a, b = b, a
        answer = a + b if op == "+" else a - b
        if rng.random() < 0.8:
            question = f"What is {a} {op} {b}?"
        elif op == "+":
            who, what = rng.choice(names), rng.choice(things)
            question = f"{who} has {a} {what} and gets {b} more. How many {what} now?"
        else:
            who, what = rng.choice(names), rng.choice(things)
            question = f"{who} has {a} {what} and gives away {b}. How many {what} are left?"
        if question not in seen:
            seen.add(question)
            items.append({"question": question, "answer": answer})
    return items



# --- the shop database (sql-agent, customer-support) -----------------------------------------

CITIES = ["Lisbon", "Oslo", "Dublin", "Porto", "Lyon", "Graz"]
CUSTOMERS = ["Dana Ruiz", "Omar Haddad", "Lena Vogel", "Ravi Shah", "Mia Chen", "Tom Berg",
             "Ines Costa", "Yuki Mori", "Sam Okoro", "Nora Lind", "Paul Weber", "Ada Nwosu",
             "Luis Diaz", "Eva Novak", "Kai Jensen", "Zoe Adams", "Ben Katz", "Ida Moen"]
PRODUCTS = [("Desk Lamp", "lighting", 25.0), ("Floor Lamp", "lighting", 60.0),
            ("Office Chair", "furniture", 120.0), ("Standing Desk", "furniture", 300.0),
            ("Bookshelf", "furniture", 80.0), ("Wireless Mouse", "electronics", 20.0),
            ("Keyboard", "electronics", 45.0), ("Monitor", "electronics", 180.0),
            ("Webcam", "electronics", 55.0), ("Notebook", "stationery", 4.5),
            ("Pen Set", "stationery", 8.0), ("Stapler", "stationery", 12.0)]
STATUSES = ["processing", "shipped", "delivered", "cancelled"]


def shop_rows() -> tuple[list[tuple], list[tuple], list[tuple]]:
    """Customers, products and orders of the fictional shop."""
    rng = random.Random(11)
    customers = [(i + 1, name, rng.choice(CITIES), name.lower().replace(" ", ".") + "@example.com")
                 for i, name in enumerate(CUSTOMERS)]
    products = [(i + 1, *p) for i, p in enumerate(PRODUCTS)]
    orders = []
    for n in range(60):
        status = STATUSES[n % 4]
        day = 1 + rng.randint(0, 20)
        ship = f"2024-03-{day + 2:02d}" if status in ("shipped", "delivered") else None
        orders.append((1001 + n, rng.randint(1, len(customers)), rng.randint(1, len(products)),
                       rng.randint(1, 3), status, f"2024-03-{day:02d}", ship))
    return customers, products, orders


def shop_sql() -> str:
    """The SQL script that builds the shop database."""
    customers, products, orders = shop_rows()
    lines = ["CREATE TABLE customers (id INTEGER PRIMARY KEY, name TEXT, city TEXT, email TEXT);",
             ("CREATE TABLE products (id INTEGER PRIMARY KEY, name TEXT, category TEXT, "
             "price REAL);"),
             ("CREATE TABLE orders (id INTEGER PRIMARY KEY, customer_id INTEGER REFERENCES "
             "customers(id), product_id INTEGER REFERENCES products(id), quantity INTEGER, "
             "status TEXT, order_date TEXT, ship_date TEXT);")]
    for table, rows in (("customers", customers), ("products", products), ("orders", orders)):
        for row in rows:
            values = ", ".join("NULL" if v is None else repr(v) if not isinstance(v, str)
                               else "'" + v.replace("'", "''") + "'" for v in row)
            lines.append(f"INSERT INTO {table} VALUES ({values});")
    return "\n".join(lines) + "\n"


def sql_agent() -> list[dict]:
    """Questions over the shop database with gold queries."""
    customers, products, _ = shop_rows()
    items = []
    for city in CITIES:
        items.append({"question": f"How many customers live in {city}?",
                      "gold_sql": f"SELECT COUNT(*) FROM customers WHERE city = '{city}'"})
    for _, name, category, _ in products:
        items.append({"question": f"What is the price of the {name}?",
                      "gold_sql": f"SELECT price FROM products WHERE name = '{name}'"})
        items.append({"question": f"How many {name} items were ordered in total?",
                      "gold_sql": "SELECT SUM(o.quantity) FROM orders o JOIN products p ON "
                                  f"o.product_id = p.id WHERE p.name = '{name}'"})
    for category in sorted({p[2] for p in products}):
        items.append({"question": f"List the names of products in the {category} category.",
                      "gold_sql": f"SELECT name FROM products WHERE category = '{category}'"})
    for status in STATUSES:
        items.append({"question": f"How many orders are {status}?",
                      "gold_sql": f"SELECT COUNT(*) FROM orders WHERE status = '{status}'"})
    for _, name, _, _ in customers:
        items.append({"question": f"Which city does {name} live in?",
                      "gold_sql": f"SELECT city FROM customers WHERE name = '{name}'"})
        items.append({"question": f"How many orders did {name} place?",
                      "gold_sql": "SELECT COUNT(*) FROM orders o JOIN customers c ON "
                                  f"o.customer_id = c.id WHERE c.name = '{name}'"})
    items.append({"question": "What is the most expensive product?",
                  "gold_sql": "SELECT name FROM products ORDER BY price DESC LIMIT 1"})
    items.append({"question": "List the three cheapest products, cheapest first.",
                  "gold_sql": "SELECT name FROM products ORDER BY price ASC LIMIT 3"})
    return items


def customer_support() -> list[dict]:
    """Order status questions answered with the LOOKUP tool; rubric from the order row."""
    customers, products, orders = shop_rows()
    rng = random.Random(13)
    asks = ["Where is my order {id}?", "Any news on order {id}?",
            "What is the status of order {id}?", "Has my order {id} shipped yet?"]
    status_facts = {"processing": "processing|being prepared|not shipped yet",
                    "shipped": "shipped|on its way|on the way",
                    "delivered": "delivered", "cancelled": "cancelled|canceled"}
    items = []
    for order in orders:
        oid, cid, pid, _, status, _, ship = order
        first = customers[cid - 1][1].split()[0]
        facts = [status_facts[status], products[pid - 1][1]]
        if ship:
            facts.append(ship)
        other = customers[cid % len(customers)][3]
        items.append({"message": f"Hi, this is {first}. " + rng.choice(asks).format(id=oid),
                      "required_facts": facts,
                      "forbidden_content": [other, "guarantee", "stupid"],
                      "max_words": 60})
    return items


# --- the passage corpus (research-assistant) ---------------------------------------------------

TOWNS = ["Velmora", "Ostrand", "Brinhall", "Caldra", "Dunmere", "Eskarn", "Fallowby", "Gravlin",
         "Harrowgate", "Istvan", "Jorvale", "Kestrel", "Lindqvist", "Marrow", "Nethby", "Orlane",
         "Pellham", "Quarry", "Rostov", "Sarnia", "Tolvern", "Umber", "Varden", "Wexley",
         "Yarrow", "Zennor", "Ashby", "Briar", "Corwen", "Delph"]
RIVERS = ["Sarn", "Ebb", "Tolle", "Wend", "Marl", "Ciss", "Orr", "Brae"]
EXPORTS = ["wool", "cheese", "glass", "timber", "copper", "salt", "honey", "linen"]


def corpus() -> list[dict]:
    """One passage per fictional town: founding year, river, export, population."""
    rng = random.Random(17)
    passages = []
    for n, town in enumerate(TOWNS):
        year, river = rng.randint(1200, 1850), rng.choice(RIVERS)
        export, people = rng.choice(EXPORTS), rng.randint(2, 90) * 1000
        passages.append({
            "id": f"p{n + 1:03d}", "title": town,
            "text": f"{town} was founded in {year} on the banks of the {river} river. "
                    f"Its main export is {export}, and about {people} people live there.",
            "facts": {"year": str(year), "river": river, "export": export,
                      "population": str(people)}})
    return passages


def research_assistant() -> list[dict]:
    """Questions answerable from one corpus passage, found with SEARCH."""
    questions = {"year": "In what year was {t} founded?",
                 "river": "Which river flows through {t}?",
                 "export": "What is the main export of {t}?"}
    items = []
    for passage in corpus():
        for fact, question in questions.items():
            answer = passage["facts"][fact]
            items.append({"question": question.format(t=passage["title"]),
                          "answers": [answer, f"{answer} river"] if fact == "river" else [answer],
                          "evidence_ids": [passage["id"]]})
    return items


# --- document-qa -------------------------------------------------------------------------------

def document_qa() -> list[dict]:
    """Three short passages per item, one of which answers the question."""
    rng = random.Random(19)
    firms = ["Altora", "Bexwell", "Corvid Labs", "Dynamo Foods", "Elmtree Bank", "Fjord Air",
             "Gantry Tools", "Halcyon Games", "Iris Optics", "Juniper Health"]
    founders = ["Maya Lund", "Igor Petrov", "Sara Holm", "Tariq Aziz", "Ellen Park",
                "Jonas Frey", "Rita Gomez", "Hugo Blanc"]
    cities = ["Bergen", "Turin", "Ghent", "Krakow", "Malmo", "Leeds", "Bilbao", "Tartu"]
    items = []
    for index in range(72):
        chosen = rng.sample(firms, 3)
        facts = []
        for firm in chosen:
            facts.append({"firm": firm, "founder": rng.choice(founders),
                          "year": str(rng.randint(1950, 2020)), "city": rng.choice(cities),
                          "staff": str(rng.randint(2, 80) * 50)})
        passages = [f"{f['firm']} was founded by {f['founder']} in {f['year']}. Its head office "
                    f"is in {f['city']} and it employs {f['staff']} people." for f in facts]
        target = index % 3
        f = facts[target]
        kind = ("founder", "year", "city", "staff")[index % 4]
        question = {"founder": f"Who founded {f['firm']}?",
                    "year": f"In what year was {f['firm']} founded?",
                    "city": f"Where is the head office of {f['firm']}?",
                    "staff": f"How many people does {f['firm']} employ?"}[kind]
        items.append({"question": question, "passages": passages, "answers": [f[kind]],
                      "evidence_ids": [f"P{target + 1}"]})
    return items


# --- coding-assistant --------------------------------------------------------------------------

def coding_assistant() -> list[dict]:
    """Small Python functions with hidden test cases."""
    kinds = [
        ("add_{n}", "returns x plus {n}", lambda n: lambda x: x + n, [0, 5, -3]),
        ("times_{n}", "returns x times {n}", lambda n: lambda x: x * n, [0, 4, -2]),
        ("is_multiple_of_{n}", "returns True if x is divisible by {n}, else False",
         lambda n: lambda x: x % n == 0, [0, 6, 7, 12, 25]),
        ("repeat_{n}", "returns the string s repeated {n} times",
         lambda n: lambda s: s * n, ["ab", "", "x"]),
        ("last_{n}", "returns the last {n} characters of the string s",
         lambda n: lambda s: s[-n:], ["abcdef", "hello world", "python"]),
        ("count_above_{n}", "returns how many numbers in the list xs are greater than {n}",
         lambda n: lambda xs: sum(1 for x in xs if x > n), [[1, 5, 9], [], [10, 2, 7, 3]]),
    ]
    simple = [
        ("reverse", "returns the string s reversed", lambda s: s[::-1], ["abc", "", "racecar"]),
        ("maximum", "returns the largest number in the list xs", max, [[1, 3, 2], [-5, -1]]),
        ("count_vowels", "returns how many vowels (a, e, i, o, u) are in the lowercase string s",
         lambda s: sum(c in "aeiou" for c in s), ["hello", "sky", "queue"]),
        ("square", "returns x squared", lambda x: x * x, [0, 3, -4]),
        ("is_even", "returns True if x is even, else False", lambda x: x % 2 == 0, [0, 3, 8]),
        ("first_word", "returns the first word of the sentence s",
         lambda s: s.split()[0], ["hello there", "one", "a b c"]),
    ]
    items = []
    for name, doc, make, inputs in kinds:
        for n in range(2, 11):
            func = make(n)
            items.append({"task": f"Write a Python function {name.format(n=n)}(x) that "
                                  f"{doc.format(n=n)}.".replace("(x)", _param(inputs)),
                          "entry_point": name.format(n=n),
                          "tests": [{"args": [v], "expected": func(v)} for v in inputs]})
    for name, doc, func, inputs in simple:
        items.append({"task": f"Write a Python function {name}{_param(inputs)} that {doc}.",
                      "entry_point": name,
                      "tests": [{"args": [v], "expected": func(v)} for v in inputs]})
    return items


def _param(inputs: list) -> str:
    first = inputs[0]
    return "(xs)" if isinstance(first, list) else "(s)" if isinstance(first, str) else "(x)"


# --- writing tasks (content-writer, email-responder) -------------------------------------------

GOODS = [("Lumo desk lamp", "three brightness levels|3 brightness levels", "USB-C"),
         ("Aero water bottle", "keeps drinks cold for 24 hours|24 hours", "steel"),
         ("Trail backpack", "30 litres|30 liters|30 l", "waterproof"),
         ("Nimbus pillow", "memory foam", "washable cover|washable"),
         ("Pico speaker", "12 hours of battery|12 hours", "Bluetooth"),
         ("Quill notebook", "200 pages", "recycled paper|recycled"),
         ("Zen kettle", "1.7 litres|1.7 liters|1.7 l", "auto shut-off|auto shutoff"),
         ("Orbit clock", "silent", "solar"),
         ("Fern plant pot", "self-watering|self watering", "ceramic"),
         ("Drift sunglasses", "polarized|polarised", "UV400")]
AUDIENCES = ["students", "hikers", "busy parents", "office workers", "travellers", "gardeners"]


def content_writer() -> list[dict]:
    """Product blurbs with required facts, banned claims and word limits."""
    rng = random.Random(23)
    items = []
    for product, fact1, fact2 in GOODS:
        for audience in rng.sample(AUDIENCES, 6):
            low = rng.choice([20, 25, 30])
            items.append({
                "brief": f"Write a short product description of the {product} for {audience}. "
                         f"Mention that it has {fact1.split('|')[0]} and {fact2.split('|')[0]}.",
                "required_facts": [product.split()[0], fact1, fact2],
                "forbidden_content": ["guarantee|guaranteed", "best in the world", "cheapest"],
                "min_words": low, "max_words": low + 50})
    return items


def email_responder() -> list[dict]:
    """Customer emails with the notes the reply must convey."""
    rng = random.Random(29)
    senders = ["Dana Ruiz", "Omar Haddad", "Lena Vogel", "Ravi Shah", "Mia Chen", "Tom Berg",
               "Ines Costa", "Yuki Mori", "Sam Okoro", "Nora Lind", "Ada Nwosu", "Kai Jensen"]
    cases = [
        ("I was charged twice for invoice {n}.", ("The duplicate charge on invoice {n} is "
         "refunded within 5 business days."), ["refund|refunded", "{n}", "5 business days"]),
        ("Can I move my appointment {n} to next week?", ("Appointment {n} is moved to Tuesday "
         "at 10:00."), ["Tuesday", "10:00", "{n}"]),
        ("My password reset link for account {n} does not work.", ("A new reset link for "
         "account {n} was sent; it expires in 24 hours."), ["new link|new reset link", "24 hours"]),
        ("Is order {n} eligible for a return?", ("Order {n} can be returned within 30 days "
         "for free."), ["30 days", "return|returned", "{n}"]),
        ("Why is ticket {n} still open?", ("Ticket {n} is waiting for the supplier; we expect "
         "an update by Friday."), ["supplier", "Friday", "{n}"]),
    ]
    items = []
    for sender in senders:
        for ask, notes, facts in rng.sample(cases, 5):
            n = rng.randint(1000, 9999)
            items.append({
                "sender": sender,
                "email": f"Hello, {ask.format(n=n)} Thanks, {sender.split()[0]}",
                "notes": notes.format(n=n),
                "required_facts": [f.format(n=n) for f in facts],
                "forbidden_content": ["INTERNAL", "guarantee", "stupid"],
                "max_words": 80})
    return items


# --- constraint tasks (task-planner, meeting-scheduler) ----------------------------------------

PLANS = [
    ("Paint the bedroom", ["buy paint", "move furniture", "tape edges", "paint walls",
                           "remove tape"],
     ["buy paint>paint walls", "move furniture>tape edges", "tape edges>paint walls",
      "paint walls>remove tape"]),
    ("Bake bread", ["mix dough", "let dough rise", "shape loaf", "bake loaf", "cool loaf"],
     ["mix dough>let dough rise", "let dough rise>shape loaf", "shape loaf>bake loaf",
      "bake loaf>cool loaf"]),
    ("Launch a website", ["buy domain", "write content", "build pages", "test site",
                          "publish site"],
     ["buy domain>publish site", "write content>build pages", "build pages>test site",
      "test site>publish site"]),
    ("Plan a trip", ["choose dates", "book flights", "book hotel", "pack bags"],
     ["choose dates>book flights", "choose dates>book hotel", "book flights>pack bags"]),
    ("Change a tyre", ["loosen nuts", "jack up car", "swap tyre", "lower car",
                       "tighten nuts"],
     ["loosen nuts>jack up car", "jack up car>swap tyre", "swap tyre>lower car",
      "lower car>tighten nuts"]),
    ("Host a dinner", ["send invites", "plan menu", "buy food", "cook meal", "set table"],
     ["plan menu>buy food", "buy food>cook meal", "send invites>cook meal"]),
    ("Move house", ["find movers", "pack boxes", "load truck", "unload truck",
                    "unpack boxes"],
     ["find movers>load truck", "pack boxes>load truck", "load truck>unload truck",
      "unload truck>unpack boxes"]),
    ("Write a report", ["collect data", "analyse data", "draft report", "review draft",
                        "send report"],
     ["collect data>analyse data", "analyse data>draft report", "draft report>review draft",
      "review draft>send report"]),
    ("Plant a garden", ["clear weeds", "dig beds", "buy seeds", "sow seeds", "water beds"],
     ["clear weeds>dig beds", "dig beds>sow seeds", "buy seeds>sow seeds",
      "sow seeds>water beds"]),
    ("Repair a bike", ["find leak", "remove wheel", "patch tube", "refit wheel",
                       "pump tyre"],
     ["remove wheel>find leak", "find leak>patch tube", "patch tube>refit wheel",
      "refit wheel>pump tyre"]),
    ("Apply for a job", ["update CV", "write cover letter", "submit application",
                         "prepare interview"],
     ["update CV>submit application", "write cover letter>submit application",
      "submit application>prepare interview"]),
    ("Clean the kitchen", ["clear counters", "wash dishes", "wipe counters", "mop floor"],
     ["clear counters>wipe counters", "wash dishes>wipe counters", "wipe counters>mop floor"]),
]


def task_planner() -> list[dict]:
    """Goals with tasks listed in shuffled order and 'A>B' dependencies."""
    rng = random.Random(31)
    items = []
    for goal, tasks, deps in PLANS:
        orders = set()
        while len(orders) < 6:
            orders.add(tuple(rng.sample(tasks, len(tasks))))
        for order in sorted(orders):
            items.append({"goal": goal, "tasks": list(order), "dependencies": deps})
    return items


def meeting_scheduler() -> list[dict]:
    """Participants' busy times on one day; some start time must fit everyone."""
    rng = random.Random(37)
    people = ["Ana", "Ben", "Cara", "Dev", "Eli", "Fay", "Gus", "Hana"]
    items = []
    while len(items) < 72:
        duration = rng.choice([30, 60])
        busy: dict[str, list[str]] = {}
        for person in rng.sample(people, rng.choice([2, 3])):
            slots = set()
            for _ in range(rng.randint(1, 3)):
                start = rng.randrange(9 * 60, 16 * 60, 30)
                slots.add((start, start + rng.choice([30, 60, 90])))
            busy[person] = [f"{a // 60:02d}:{a % 60:02d}-{b // 60:02d}:{b % 60:02d}"
                            for a, b in sorted(slots)]
        if not _has_free_slot(busy, duration):
            continue
        names = ", ".join(busy)
        items.append({"request": f"Find a {duration}-minute meeting time for {names}.",
                      "busy": busy, "duration_minutes": duration,
                      "day_start": "09:00", "day_end": "17:00"})
    return items



def _has_free_slot(busy: dict[str, list[str]], duration: int) -> bool:
    taken = [tuple(int(x[:2]) * 60 + int(x[3:]) for x in slot.split("-"))
             for slots in busy.values() for slot in slots]
    return any(all(not (start < b and a < start + duration) for a, b in taken)
               for start in range(9 * 60, 17 * 60 - duration + 1, 30))


GENERATORS = {
    "customer-support": customer_support,
    "coding-assistant": coding_assistant,
    "sql-agent": sql_agent,
    "research-assistant": research_assistant,
    "content-writer": content_writer,
    "task-planner": task_planner,
    "math-solver": math_solver,
    "document-qa": document_qa,
    "email-responder": email_responder,
    "meeting-scheduler": meeting_scheduler,
}


def main() -> None:
    """Write one JSONL file per template, the shop database script and the corpus."""
    for name, generate in GENERATORS.items():
        _write_jsonl(HERE / f"{name}.jsonl", generate())
    _write_jsonl(HERE / "corpus.jsonl", [{k: p[k] for k in ("id", "title", "text")}
                                         for p in corpus()])
    (HERE / "shop.sql").write_text(shop_sql(), encoding="utf-8")


def _write_jsonl(path: Path, rows: list[dict]) -> None:
    with open(path, "w", encoding="utf-8") as out:
        out.writelines(json.dumps(row, ensure_ascii=False, sort_keys=True) + "\n" for row in rows)
    print(f"{path.name}: {len(rows)} rows")


if __name__ == "__main__":
    main()
