"""A deterministic CSV of N discharged patients, in the format ``aftercare import`` reads.

The same N and seed always give the same bytes, so runs on different days compare like with like.
Every row is valid: the benchmark measures enrolling, not rejecting.

    python -m bench.generate 10000 > discharges.csv
"""

from __future__ import annotations

import argparse
import csv
import random
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TextIO
from zoneinfo import ZoneInfo

from aftercare.enrollment import FIELDS

# The benchmark's clock: discharges are spread over the day before it.
NOW = datetime(2026, 11, 23, 17, 0, tzinfo=UTC)
SEED = 20261123

# Both hemispheres, half- and quarter-hour offsets, zones with and without DST.
ZONES = (
    "America/New_York",
    "America/Chicago",
    "America/Denver",
    "America/Phoenix",
    "America/Los_Angeles",
    "America/Anchorage",
    "Pacific/Honolulu",
    "America/Puerto_Rico",
    "America/Halifax",
    "America/St_Johns",
    "America/Mexico_City",
    "America/Bogota",
    "America/Sao_Paulo",
    "America/Argentina/Buenos_Aires",
    "America/Santiago",
    "Europe/London",
    "Europe/Madrid",
    "Europe/Berlin",
    "Europe/Athens",
    "Africa/Johannesburg",
    "Africa/Lagos",
    "Asia/Dubai",
    "Asia/Kolkata",
    "Asia/Kathmandu",
    "Asia/Shanghai",
    "Asia/Tokyo",
    "Australia/Adelaide",
    "Australia/Sydney",
    "Pacific/Auckland",
    "Pacific/Chatham",
)
# 555-0000 to 555-9999 in these area codes are numbers phonenumbers accepts as valid US numbers;
# 20 codes give 200,000 distinct phones before any repeats.
# fmt: off
AREA_CODES = (
    202, 212, 213, 303, 305, 312, 404, 415, 503, 512,
    602, 617, 702, 713, 801, 808, 907, 919, 206, 216,
)
FIRST_NAMES = (
    "Ana", "José", "Mary", "Wei", "Fatima", "John", "Lucía", "Olga", "Sam", "Noor",
    "Kenji", "Chidi", "Emma", "Raúl", "Priya", "Tom", "Grace", "Diego", "Aiko", "Li",
)
# fmt: on
PROCEDURES = ("kyphoplasty", "vertebroplasty")
LANGUAGES = ("en", "es")


def phone(index: int, rng: random.Random) -> str:
    """A distinct valid US number per index, written the ways staff write them."""
    area = AREA_CODES[(index // 10_000) % len(AREA_CODES)]
    line = index % 10_000
    style = rng.randrange(3)
    if style == 0:
        return f"+1{area}555{line:04d}"
    if style == 1:
        return f"({area}) 555-{line:04d}"
    return f"{area}-555-{line:04d}"


def patients(count: int, now: datetime = NOW, seed: int = SEED) -> Iterator[dict[str, str]]:
    rng = random.Random(seed)
    for index in range(count):
        name = rng.choice(FIRST_NAMES)
        zone = rng.choice(ZONES)
        discharged = now - timedelta(seconds=rng.randrange(24 * 3600))
        yield {
            "first_name": name,
            "phone": phone(index, rng),
            "email": f"patient{index}@example.org",
            "timezone": zone,
            "procedure": rng.choice(PROCEDURES),
            # Written in the patient's own offset, as a clinic's export would.
            "discharged_at": discharged.astimezone(ZoneInfo(zone)).isoformat(timespec="seconds"),
            "language": rng.choice(LANGUAGES),
            "channels": "sms,email",
            "external_id": f"MRN{index:08d}",
        }


def write(out: TextIO, count: int, now: datetime = NOW, seed: int = SEED) -> None:
    writer = csv.DictWriter(out, fieldnames=FIELDS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(patients(count, now, seed))


def write_file(path: Path, count: int, now: datetime = NOW, seed: int = SEED) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8", newline="") as out:
        write(out, count, now, seed)
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("count", type=int, help="number of patients")
    parser.add_argument("--seed", type=int, default=SEED)
    args = parser.parse_args()
    write(sys.stdout, args.count, seed=args.seed)


if __name__ == "__main__":
    main()
