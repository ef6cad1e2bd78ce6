"""Precision and recall of de-identification (alignloop.curate.deid) per type, and its speed.

Generates N chat-like sentences (default 2,000, fixed seed) with labelled spans of personal
data, runs `find` and scores the spans per type: exactly (same type, same start and end) and by
overlap (same type, any shared character). "masked" is the share of gold spans that some
finding of any type covers, i.e. what a release would not leak. About a quarter of the
sentences are negatives (years, dates, prices, versions, Luhn-invalid card numbers, order
numbers, places, brands, capitalised words) that should yield nothing.

The values come from Faker (its name, phone, address, e-mail, URL, IP and card providers, in
13 locales) with a fixed seed, not from the recognisers' own sources (US Census name lists,
hand-written patterns), so many names and formats are new to the recognisers. Seed 20240611
was the first set run, with the recognisers frozen beforehand; its errors then led to one
revision (the full USPS street-suffix list, Australian/Canadian postcodes, "(0191) ..." trunk
codes), so it is a development set now. The default seed, 918273, was generated only after
that revision and is the held-out figure; do not tune the recognisers on it.

    python benchmarks/deid.py [--n 2000] [--seed 918273] [--out benchmarks/results/deid.json]

Needs `pip install -c constraints.txt faker` (in the bench extra).
"""

from __future__ import annotations

import argparse
import ipaddress
import json
import random
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from importlib.metadata import version
from pathlib import Path

from faker import Faker

from alignloop.curate.deid import TYPES, Span, find, scrub

HERE = Path(__file__).resolve().parent
NAME_LOCALES = ["en_US", "en_GB", "de_DE", "fr_FR", "es_ES", "it_IT", "nl_NL", "pt_BR", "pl_PL"]
NAME_LOCALES += ["en_IN", "sv_SE", "en_AU", "en_CA"]
PHONE_LOCALES = ["en_US", "en_US", "en_US", "en_GB", "en_GB", "en_AU", "en_CA", "fr_FR", "de_DE"]
ADDRESS_LOCALES = ["en_US"] * 6 + ["en_GB"] * 3 + ["en_AU", "en_CA", "de_DE"]


def words(text: str) -> list[str]:
    return text.split()


Piece = tuple[str, str | None]  # text, and its type when it is personal data

POSITIVE_TEMPLATES = [
    "hi! my name is {NAME}, nice to meet you",
    "Hello, I'm {FIRST}. Can you help me plan a trip?",
    "my name is {LOWNAME} and i need help with my resume",
    "Can you write a birthday message for my friend {FIRST}?",
    "{NAME} is my manager and she keeps ignoring my emails",
    "I had a meeting with {TITLED} today and it went badly.",
    "Please draft a polite letter to {TITLED} about the rent increase.",
    "Thanks {FIRST}, that was really helpful!",
    "Do you know who {NAME} is? My coworker keeps mentioning them.",
    "my sister {FIRST} and her husband {NAME} are visiting next week",
    "Write a short poem for {FIRST} and {FIRST}.",
    "Best regards,\n{NAME}",
    "Tell {FIRST} I said hi when you see her.",
    "{FIRST} and I broke up last month and I still think about it",
    "Can you translate this for {NAME}? She only speaks Spanish.",
    "email me at {EMAIL} when it's done",
    "my work address is {EMAIL}, personal is {EMAIL}",
    "Is {EMAIL} a valid email format?",
    "check out my site {URL}",
    "The docs are at {URL} if you need them.",
    "can you summarize {URL} for me",
    "my router is at {IP} but I can't connect",
    "the server {IP} keeps timing out on port 22",
    "why does ping {IP} fail from my laptop?",
    "my card {CARD} got declined, why?",
    "I paid with {CARD} yesterday and got charged twice",
    "Is this a valid card number: {CARD}",
    "call me at {PHONE}",
    "my number is {PHONE}, text me anytime",
    "Their office phone is {PHONE} but nobody answers.",
    "{PHONE} keeps calling me, is it a scam?",
    "I live at {ADDRESS}, what's the nearest gym?",
    "Please send the package to {ADDRESS}.",
    "Our new apartment is {ADDRESS} and the rent is {price} a month",
    "we moved to {LOWADDRESS} in {year}",
    "Hi, I'm {NAME} ({EMAIL}), I live at {ADDRESS} and my phone is {PHONE}.",
    "{FIRST} sent me this link {URL} and her number {PHONE}",
    "My name is {NAME}, card {CARD}, please update my billing details.",
    "Contact {TITLED} at {EMAIL} or {PHONE} before {weekday}.",
    "ssh admin@{IP} says permission denied, what should I do?",
]
NEGATIVE_TEMPLATES = [
    "I was born in {year} and graduated in {year}.",
    "The meeting is on {date} at {time}.",
    "It costs {price}, down from {price} last week.",
    "I'm running version {version} on my laptop.",
    "The final score was {score}.",
    "My order number is {order}, it still hasn't arrived.",
    "Is {badcard} a valid credit card number?",
    "We're flying to {place} on {weekday}.",
    "{brand} released a new phone in {month}.",
    "Can you explain what {filename} does?",
    "Will it rain in {place} tomorrow?",
    "May I ask you something about {place}?",
    "Mark the date: {date}.",
    "Grace period ends in {month}, right?",
    "I walked {num} miles down the road today.",
    "The Best Way To Learn {language} In {num} Days",
    "Hope you're doing well! {weekday} works for me.",
    "The population of {place} is {bignum}.",
    "Add {num} cups of flour and bake at {num} degrees for {num} minutes.",
    "I scored {percent} on the test and {percent} on the quiz.",
    "Python {version} and Node {version} are installed.",
    "He lived in {place} from {year} to {year}.",
    "Bill me later, please. Chase your dreams!",
    "I'd rate {brand} {num}/10.",
    "Room {num}, Floor {num}, see you at {time}.",
    "Set an alarm for {time} on {date}, thanks.",
    "Why is {language} so hard? I've studied it since {year}.",
    "Transfer {price} to account ending {num}.",
]
PLACES = words(
    "Paris London Tokyo Berlin Chicago Austin Sydney Madrid Toronto Dublin Lisbon Seattle Denver "
    "Florence Victoria Jordan Georgia Brooklyn Phoenix Houston Orlando Charlotte Madison Savannah "
    "Vienna Prague Cairo Lima Kenya Chelsea Boston Miami Atlanta Portland Nashville Dallas "
    "Memphis Oxford Cambridge Manchester Denmark Norway Brazil Mexico Texas California"
)
BRANDS = words(
    "Apple Google Samsung Tesla Amazon Netflix Spotify Nike Adidas Toyota Ford Dell Chase Target "
    "Walmart Disney Sony Nintendo Microsoft Mercedes Lexus Honda Starbucks Costco IKEA"
)
LANGUAGES = words("Spanish French German Japanese Python Rust Guitar Piano Chess Mandarin")
WEEKDAYS = words("Monday Tuesday Wednesday Thursday Friday Saturday Sunday")
MONTHS = words("January February March April May June July August September October")
FILES = words("setup.py README.md main.rs index.html config.yaml app.js Makefile run.sh")
TITLES = ["Mr.", "Mrs.", "Ms.", "Dr.", "Prof.", "Mr", "Dr", "Miss"]


@dataclass
class Example:
    text: str
    gold: list[Span]


class Generator:
    """Composes labelled sentences from templates and Faker values, reproducibly from a seed."""

    def __init__(self, seed: int) -> None:
        Faker.seed(seed)
        self.fake = Faker(NAME_LOCALES)
        self.rng = random.Random(seed)
        self.slots: dict[str, Callable[[], list[Piece]]] = {
            "NAME": lambda: [(self.full_name(), "NAME")],
            "FIRST": lambda: [(self.locale_fake(NAME_LOCALES).first_name(), "NAME")],
            "LOWNAME": lambda: [(self.full_name().lower(), "NAME")],
            "TITLED": self.titled_name,
            "EMAIL": lambda: [(self.email(), "EMAIL")],
            "URL": lambda: [(self.url(), "URL")],
            "IP": lambda: [(self.ip(), "IP")],
            "CARD": lambda: [(self.card(valid=True), "CARD")],
            "PHONE": lambda: [(self.locale_fake(PHONE_LOCALES).phone_number(), "PHONE")],
            "ADDRESS": lambda: [(self.address(), "ADDRESS")],
            "LOWADDRESS": lambda: [(self.us().street_address().lower(), "ADDRESS")],
            "badcard": lambda: [(self.card(valid=False), None)],
        }

    def locale_fake(self, locales: list[str]) -> Faker:
        return self.fake[self.rng.choice(locales)]

    def us(self) -> Faker:
        return self.fake["en_US"]

    def full_name(self) -> str:
        f = self.locale_fake(NAME_LOCALES)
        return f"{f.first_name()} {f.last_name()}"

    def titled_name(self) -> list[Piece]:
        return [
            (self.rng.choice(TITLES) + " ", None),
            (self.locale_fake(NAME_LOCALES).last_name(), "NAME"),
        ]

    def email(self) -> str:
        f = self.locale_fake(NAME_LOCALES)
        value = self.rng.choice([f.email, f.free_email, f.company_email, f.safe_email])()
        return value.capitalize() if self.rng.random() < 0.1 else value

    def url(self) -> str:
        f = self.locale_fake(NAME_LOCALES)
        domain = f.domain_name()
        return self.rng.choice(
            [
                f.url(),
                f.uri(),
                "www." + domain,
                domain,
                f"{domain}/{f.uri_path()}",
                f"https://{domain}",
            ]
        )

    def ip(self) -> str:
        f = self.us()
        choice = self.rng.random()
        if choice < 0.5:
            return f.ipv4()
        if choice < 0.75:
            return f.ipv4_private()
        address = ipaddress.IPv6Address(f.ipv6())
        return address.exploded if self.rng.random() < 0.3 else address.compressed

    def card(self, valid: bool) -> str:
        digits = self.us().credit_card_number()
        if not valid:
            digits = digits[:-1] + str((int(digits[-1]) + self.rng.randint(1, 9)) % 10)
        style = self.rng.random()
        if style < 0.4:
            return digits
        return (" " if style < 0.8 else "-").join(card_groups(digits))

    def address(self) -> str:
        f = self.locale_fake(ADDRESS_LOCALES)
        if self.rng.random() < 0.4:
            return f.street_address()
        separator = "\n" if self.rng.random() < 0.2 else ", "
        return f.address().replace("\n", separator)

    def decoy(self, slot: str) -> str:
        rng, f = self.rng, self.us()
        makers: dict[str, Callable[[], str]] = {
            "year": lambda: str(rng.randint(1950, 2030)),
            "date": lambda: f.date(rng.choice(["%Y-%m-%d", "%m/%d/%Y", "%d.%m.%Y", "%B %d, %Y"])),
            "time": lambda: f.time(rng.choice(["%H:%M", "%I:%M %p", "%H:%M:%S"])),
            "price": lambda: rng.choice(["$", "€", "£"]) + f"{rng.uniform(1, 5000):,.2f}",
            "version": lambda: ".".join(str(rng.randint(0, 20)) for _ in range(rng.randint(2, 4))),
            "score": lambda: f"{rng.randint(0, 130)}-{rng.randint(0, 130)}",
            "order": lambda: str(rng.randint(10**7, 10**12)),
            "num": lambda: str(rng.randint(1, 500)),
            "bignum": lambda: f"{rng.randint(10**4, 10**8):,}",
            "percent": lambda: f"{rng.uniform(0, 100):.1f}%",
            "place": lambda: rng.choice(PLACES),
            "brand": lambda: rng.choice(BRANDS),
            "language": lambda: rng.choice(LANGUAGES),
            "weekday": lambda: rng.choice(WEEKDAYS),
            "month": lambda: rng.choice(MONTHS),
            "filename": lambda: rng.choice(FILES),
        }
        return makers[slot]()

    def fill(self, template: str) -> Example:
        text, gold, cursor = [], [], 0
        for part in re.split(r"(\{\w+\})", template):
            pieces: list[Piece] = [(part, None)]
            if part.startswith("{") and part.endswith("}"):
                slot = part[1:-1]
                pieces = self.slots[slot]() if slot in self.slots else [(self.decoy(slot), None)]
            for value, kind in pieces:
                if kind:
                    gold.append(Span(kind, cursor, cursor + len(value), value))
                text.append(value)
                cursor += len(value)
        return Example("".join(text), gold)

    def examples(self, n: int) -> list[Example]:
        out = []
        for _ in range(n):
            pool = POSITIVE_TEMPLATES if self.rng.random() < 0.75 else NEGATIVE_TEMPLATES
            out.append(self.fill(self.rng.choice(pool)))
        return out


def card_groups(digits: str) -> list[str]:
    """How cards print their number: 4-6-5 (15 digits), 4-6-4 (14), otherwise groups of 4."""
    if len(digits) in (14, 15):
        return [digits[:4], digits[4:10], digits[10:]]
    if len(digits) % 4 == 0 or len(digits) == 19:
        return [digits[i : i + 4] for i in range(0, len(digits), 4)]
    return [digits]


def prf(tp_pred: int, n_pred: int, tp_gold: int, n_gold: int) -> dict[str, float]:
    precision = tp_pred / n_pred if n_pred else 1.0
    recall = tp_gold / n_gold if n_gold else 1.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"precision": round(precision, 4), "recall": round(recall, 4), "f1": round(f1, 4)}


def overlaps(a: Span, b: Span) -> bool:
    return a.start < b.end and b.start < a.end


def score(examples: list[Example], predictions: list[list[Span]]) -> dict:
    """Per-type exact and overlap precision/recall/F1, masking rate, and sample errors."""
    counts = {
        t: dict.fromkeys(["gold", "pred", "exact", "pred_ov", "gold_ov", "masked"], 0)
        for t in TYPES
    }
    errors: dict[str, list] = {t: [] for t in TYPES}
    for ex, pred in zip(examples, predictions, strict=True):
        for g in ex.gold:
            c = counts[g.type]
            c["gold"] += 1
            c["exact"] += g in pred
            c["gold_ov"] += any(p.type == g.type and overlaps(p, g) for p in pred)
            c["masked"] += any(overlaps(p, g) for p in pred)
            if g not in pred and len(errors[g.type]) < 15:
                errors[g.type].append(
                    {"missed": g.text, "found": [(p.type, p.text) for p in pred], "text": ex.text}
                )
        for p in pred:
            c = counts[p.type]
            c["pred"] += 1
            good = any(g.type == p.type and overlaps(p, g) for g in ex.gold)
            c["pred_ov"] += good
            if not good and len(errors[p.type]) < 30:
                errors[p.type].append({"false": p.text, "text": ex.text})
    per_type = {}
    for t, c in counts.items():
        per_type[t] = {
            "gold": c["gold"],
            "predicted": c["pred"],
            "exact": prf(c["exact"], c["pred"], c["exact"], c["gold"]),
            "overlap": prf(c["pred_ov"], c["pred"], c["gold_ov"], c["gold"]),
            "masked": round(c["masked"] / c["gold"], 4) if c["gold"] else None,
        }
    total = {k: sum(c[k] for c in counts.values()) for k in next(iter(counts.values()))}
    micro = {
        "exact": prf(total["exact"], total["pred"], total["exact"], total["gold"]),
        "overlap": prf(total["pred_ov"], total["pred"], total["gold_ov"], total["gold"]),
        "masked": round(total["masked"] / total["gold"], 4),
    }
    return {"per_type": per_type, "micro": micro, "errors": errors}


def negatives_flagged(examples: list[Example], predictions: list[list[Span]]) -> dict:
    negatives = [(ex, p) for ex, p in zip(examples, predictions, strict=True) if not ex.gold]
    flagged = [
        {"text": ex.text, "found": [(s.type, s.text) for s in p]} for ex, p in negatives if p
    ]
    return {"sentences": len(negatives), "with_any_finding": len(flagged), "examples": flagged[:20]}


def throughput(texts: list[str], min_messages: int = 50_000) -> dict:
    """scrub() speed on one core over the generated (short, chat-like) messages."""
    repeats = max(1, min_messages // len(texts))
    batch = texts * repeats
    start = time.perf_counter()
    for text in batch:
        scrub(text)
    seconds = time.perf_counter() - start
    return {
        "messages": len(batch),
        "seconds": round(seconds, 3),
        "messages_per_s": round(len(batch) / seconds),
        "mean_chars": round(sum(map(len, texts)) / len(texts), 1),
        "cores": 1,
    }


def print_table(result: dict) -> None:
    print(
        f"{'type':8} {'gold':>5} {'pred':>5}  {'P exact':>7} {'R exact':>7} {'F1 ex':>6}  "
        f"{'P ovl':>6} {'R ovl':>6} {'F1 ovl':>6}  {'masked':>6}"
    )
    rows = [*result["per_type"].items(), ("micro", result["micro"])]
    for name, r in rows:
        ex, ov = r["exact"], r["overlap"]
        gold = r.get("gold", "")
        pred = r.get("predicted", "")
        masked = r["masked"] if r["masked"] is not None else float("nan")
        print(
            f"{name:8} {gold:>5} {pred:>5}  {ex['precision']:7.3f} {ex['recall']:7.3f} {ex['f1']:6.3f}  "
            f"{ov['precision']:6.3f} {ov['recall']:6.3f} {ov['f1']:6.3f}  {masked:6.3f}"
        )
    neg, speed = result["negatives"], result["throughput"]
    print(f"negative sentences with any finding: {neg['with_any_finding']}/{neg['sentences']}")
    print(
        f"throughput: {speed['messages_per_s']:,} messages/s on one core "
        f"({speed['mean_chars']} chars per message)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=918273)
    parser.add_argument("--out", type=Path, default=HERE / "results" / "deid.json")
    args = parser.parse_args()

    examples = Generator(args.seed).examples(args.n)
    predictions = [find(ex.text) for ex in examples]
    result = {"n": args.n, "seed": args.seed, "faker": version("faker")}
    result.update(score(examples, predictions))
    result["negatives"] = negatives_flagged(examples, predictions)
    result["throughput"] = throughput([ex.text for ex in examples])
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1, ensure_ascii=False) + "\n")
    print_table(result)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
