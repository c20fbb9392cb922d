"""Cloud text for a terminal and for CSV files. Card fields are other institutions' text: on a terminal each is one
printable line (:func:`core.text.printable`: no escape sequences, no line breaks), in a CSV file every cell goes
through :func:`core.text.csv_cell` (a cell a spreadsheet would run as a formula gets a leading apostrophe, OWASP's
CSV-injection advice); everything else stays exactly as sent."""
from __future__ import annotations

import csv
from pathlib import Path

from core.text import csv_cell, printable

QUERY_COLUMNS = ("rank", "task_id", "task", "distance", "publisher", "modality", "anatomy", "classes",
                 "terms_of_reuse", "contact", "experiences")


def transferred_text(transferred: dict) -> str:
    parts = [f"{label} {transferred[key]}" for key, label in
             (("source_task", "source task"), ("architecture", "architecture"), ("policy", "policy"))
             if transferred.get(key)]
    return ", ".join(parts)


def experience_text(experience: dict) -> str:
    """One experience in words (raw text: escape it for where it is shown)."""
    return (f"{experience['scenario']} ({transferred_text(experience['transferred'])}): {experience['metric']} "
            f"{experience['value_without']:.4g} without, {experience['value_with']:.4g} with "
            f"({experience['change']:+.4g}, {experience['repetitions']} run(s)), reported by {experience['author']}"
            + (f"; {experience['note']}" if experience.get("note") else ""))


def query_rows(result: dict) -> list[dict]:
    """One flat row per ranked task (raw text), columns :data:`QUERY_COLUMNS`."""
    rows = []
    for row in result["tasks"]:
        card = row["card"]
        rows.append({"rank": row["rank"], "task_id": row["task_id"], "task": card["name"],
                     "distance": row["distance"], "publisher": row["publisher"], "modality": card["modality"],
                     "anatomy": card["anatomy"],
                     "classes": "; ".join(f"{name} ({count})" for name, count in card["classes"].items()),
                     "terms_of_reuse": card["terms_of_reuse"], "contact": card["contact"],
                     "experiences": " | ".join(experience_text(e) for e in row["experiences"])})
    return rows


def write_csv(rows: list[dict], path: Path, columns: tuple[str, ...] = QUERY_COLUMNS) -> None:
    with open(path, "w", newline="", encoding="utf-8") as sink:
        writer = csv.DictWriter(sink, fieldnames=list(columns))
        writer.writeheader()
        for row in rows:
            writer.writerow({key: csv_cell(row.get(key, "")) for key in columns})


def query_lines(result: dict, server: str) -> list[str]:
    """The ranking as terminal lines, every outside text through :func:`core.text.printable`."""
    lines = [f"cloud tasks of {printable(server, 200)} by {result['distance']} ({result['direction']})"]
    for row in result["tasks"]:
        card = row["card"]
        lines.append(f"{row['rank']:>3}  {row['distance']:.6f}  {printable(card['name'], 80)}  [{row['task_id']}]  "
                     f"published by {printable(row['publisher'], 80)}  {printable(card['modality'], 60)}")
        for experience in row["experiences"]:
            lines.append(f"       experience: {printable(experience_text(experience), 400)}")
    if result.get("not_comparable"):
        lines.append(f"({result['not_comparable']} published task(s) were made with other settings and are not "
                     "ranked)")
    lines.append(printable(result["verdict"], 1000))
    return lines
