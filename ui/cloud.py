"""What the Knowledge cloud page shows, as plain data (testable without Streamlit): tables of published tasks and
experiences, and exactly what leaves the machine when a task is published."""
from __future__ import annotations

import hashlib
from dataclasses import asdict

import pandas as pd

from core.cloud.output import experience_text
from core.fingerprint.fingerprint import Fingerprint
from ui.text import md


def plain(text: object) -> str:
    """Text from elsewhere (a server's message) for Streamlit's message boxes, which read Markdown: one printable
    line shown as the characters it is, never as a link or markup (:func:`ui.text.md`)."""
    return md(text, 1000)


#: session keys: the connection lives in the session only (never written to disk)
URL, TOKEN = "cloud_url", "cloud_token"


def tasks_table(tasks: list[dict]) -> pd.DataFrame:
    """One row per published task (raw text: st.dataframe shows it as text, never as markup)."""
    return pd.DataFrame([{"task": t["card"]["name"], "publisher": t["publisher"], "modality": t["card"]["modality"],
                          "anatomy": t["card"]["anatomy"],
                          "classes": ", ".join(f"{k} ({v})" for k, v in t["card"]["classes"].items()),
                          "experiences": len(t.get("experiences", [])), "terms of reuse": t["card"]["terms_of_reuse"],
                          "contact": t["card"]["contact"], "backbone": t["fingerprint"]["backbone"],
                          "probe": t["fingerprint"]["probe"], "published": t["published_at"][:16], "id": t["id"]}
                         for t in tasks],
                        columns=["task", "publisher", "modality", "anatomy", "classes", "experiences",
                                 "terms of reuse", "contact", "backbone", "probe", "published", "id"])


def ranking_table(result: dict) -> pd.DataFrame:
    return pd.DataFrame([{"rank": r["rank"], "task": r["card"]["name"], "distance": r["distance"],
                          "publisher": r["publisher"], "modality": r["card"]["modality"],
                          "experiences": " | ".join(experience_text(e) for e in r["experiences"]),
                          "terms of reuse": r["card"]["terms_of_reuse"], "id": r["task_id"]}
                         for r in result["tasks"]],
                        columns=["rank", "task", "distance", "publisher", "modality", "experiences", "terms of reuse",
                                 "id"])


def experiences_table(task: dict) -> pd.DataFrame:
    return pd.DataFrame([{"scenario": e["scenario"], "source task": e["transferred"]["source_task"],
                          "architecture": e["transferred"]["architecture"], "policy": e["transferred"]["policy"],
                          "metric": e["metric"], "without": e["value_without"], "with": e["value_with"],
                          "change": e["change"], "repetitions": e["repetitions"], "reported by": e["author"],
                          "note": e["note"]} for e in task.get("experiences", [])])


def outgoing(fingerprint: Fingerprint, card: dict) -> dict:
    """Everything a publish sends: the card and the fingerprint file's complete contents (its metadata as is, its
    arrays by shape and type), with the file's size and digest."""
    data = fingerprint.to_bytes()
    return {"card": card,
            "fingerprint file": {"bytes": len(data), "sha256": hashlib.sha256(data).hexdigest(),
                                 "meta.json": asdict(fingerprint.meta),
                                 "counts.npy": f"{fingerprint.counts.shape[0]} features x "
                                               f"{fingerprint.counts.shape[1]} bins of histogram counts (integers)",
                                 "mean.npy": f"{fingerprint.mean.shape[0]} numbers: the mean feature vector",
                                 "postact_mean.npy": f"{fingerprint.postact_mean.shape[0]} numbers: the mean "
                                                     "post-activation feature vector"},
            "not sent": "no image, no pixel, no file or folder name, no per-image value"}
