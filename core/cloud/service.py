"""Every read and write of the cloud, independent of HTTP. Each write runs in one transaction together with its
audit entry. Refusals raise :class:`CloudError` with an HTTP status and one line of text.

Rules: reading needs the ``read`` scope (or none, when the server allows public reads); publishing, adding an
experience, changing a card and withdrawing need ``publish``; only the publisher or an ``admin`` changes or
withdraws a task; a withdrawn task leaves every read and query but its audit entries stay."""
from __future__ import annotations

import hashlib
import json
import logging
import secrets
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Engine, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from core.cloud.database import writer
from core.cloud.frames import STORE_DISTANCE, FrameStores
from core.cloud.records import CardUpdate, ExperienceIn, PublishRequest, TaskCard, decode_fingerprint
from core.cloud.schema import AuditEntry, Experience, Institution, Task, Token, utc_now
from core.cloud.tokens import NewToken, new_token, normalised_scopes, parse_token, secret_matches
from core.errors import FingerprintFileError
from core.fingerprint.fingerprint import Fingerprint


class CloudError(Exception):
    """A refusal: ``status`` (HTTP) and ``message`` (one line)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status, self.message = status, message


@dataclass(frozen=True)
class Caller:
    """Who sends a request: None fields for an anonymous reader (public reads)."""

    institution_id: int | None
    institution: str | None
    token_public_id: str | None
    scopes: frozenset[str]

    def require(self, scope: str) -> None:
        if scope not in self.scopes:
            who = f"token {self.token_public_id}" if self.token_public_id else "a request without a token"
            raise CloudError(401 if self.token_public_id is None else 403,
                             f"{who} may not {scope}; " + ("send a token (Authorization: Bearer ...)"
                                                           if self.token_public_id is None
                                                           else f"it has the scopes: {' '.join(sorted(self.scopes))}"))


ANONYMOUS_READER = Caller(None, None, None, frozenset({"read"}))


def _iso(moment: datetime | None) -> str | None:
    return None if moment is None else moment.isoformat()


def _audit(session: Session, caller: Caller | None, action: str, task_id: str | None, detail: dict) -> None:
    session.add(AuditEntry(at=utc_now(), institution_id=caller.institution_id if caller else None,
                           token_public_id=caller.token_public_id if caller else None, action=action,
                           task_id=task_id, detail_json=json.dumps(detail, sort_keys=True)))


def _card(task: Task) -> dict:
    return {"name": task.name, "modality": task.modality, "anatomy": task.anatomy,
            "classes": json.loads(task.classes_json), "terms_of_reuse": task.terms_of_reuse, "contact": task.contact}


def _experience(row: Experience, authors: dict[int, str]) -> dict:
    return {"id": row.id, "task_id": row.task_id, "author": authors.get(row.author_id, "?"), "scenario": row.scenario,
            "transferred": {"source_task": row.source_task, "architecture": row.architecture, "policy": row.policy},
            "metric": row.metric, "value_without": row.value_without, "value_with": row.value_with,
            "change": row.value_with - row.value_without, "repetitions": row.repetitions, "note": row.note,
            "created_at": _iso(row.created_at)}


class CloudService:
    """The cloud over one database (``engine`` after :func:`core.cloud.database.upgrade`)."""

    def __init__(self, engine: Engine, public_reads: bool = False, stores: FrameStores | None = None) -> None:
        """``stores``: the frames' source stores (:mod:`core.cloud.frames`); without them every query is ranked
        in memory (small clouds only)."""
        self.engine, self.write_engine, self.public_reads = engine, writer(engine), public_reads
        self.stores = stores

    # ------------------------------------------------------------------ institutions and tokens
    def create_token(self, institution: str, scopes: tuple[str, ...]) -> NewToken:
        """A new token for ``institution`` (created when new); the token text is in the result only."""
        name = institution.strip()
        if not name or len(name) > 256 or any(ord(c) < 32 for c in name):
            raise CloudError(422, "the institution name must be 1 to 256 printable characters")
        scope_text = normalised_scopes(scopes)
        token = new_token()
        with Session(self.write_engine) as session, session.begin():
            found = session.scalar(select(Institution).where(Institution.name == name))
            if found is None:
                found = Institution(name=name, created_at=utc_now())
                session.add(found)
                session.flush()
                _audit(session, None, "institution.create", None, {"institution": name})
            session.add(Token(public_id=token.public_id, secret_hash=token.secret_hash, institution_id=found.id,
                              scopes=scope_text, created_at=utc_now()))
            _audit(session, None, "token.create", None, {"institution": name, "token": token.public_id,
                                                         "scopes": scope_text})
        return token

    def revoke_token(self, public_id: str) -> str:
        """Revoke a token by its public id (the 16 hex digits after ``tfe_``); returns its institution."""
        with Session(self.write_engine) as session, session.begin():
            token = session.scalar(select(Token).where(Token.public_id == public_id))
            if token is None:
                raise CloudError(404, f"no token with id {public_id}")
            if token.revoked_at is None:
                token.revoked_at = utc_now()
                _audit(session, None, "token.revoke", None, {"token": public_id})
            return session.get(Institution, token.institution_id).name

    def list_tokens(self) -> list[dict]:
        with Session(self.engine) as session:
            rows = session.execute(select(Token, Institution.name).join(Institution)
                                   .order_by(Token.id)).all()
            return [{"token": t.public_id, "institution": name, "scopes": t.scopes, "created_at": _iso(t.created_at),
                     "revoked_at": _iso(t.revoked_at)} for t, name in rows]

    def authenticate(self, token: str | None) -> Caller:
        """The caller of a request with this bearer token (None: no token)."""
        if not token:
            if self.public_reads:
                return ANONYMOUS_READER
            raise CloudError(401, "this cloud needs a token (Authorization: Bearer tfe_...); ask its operator")
        parsed = parse_token(token)
        if parsed is None:
            raise CloudError(401, "the token is not a knowledge-cloud token (tfe_<16 hex>_<43 characters>)")
        public_id, secret = parsed
        with Session(self.engine) as session:
            row = session.execute(select(Token, Institution.name).join(Institution)
                                  .where(Token.public_id == public_id)).first()
        if row is None or not secret_matches(public_id, secret, row[0].secret_hash):
            raise CloudError(401, "the token is not valid for this cloud")
        stored, institution = row
        if stored.revoked_at is not None:
            raise CloudError(401, f"token {public_id} was revoked on {stored.revoked_at:%Y-%m-%d %H:%M} UTC")
        return Caller(stored.institution_id, institution, public_id, frozenset(stored.scopes.split()))

    # ------------------------------------------------------------------ writes
    def publish(self, caller: Caller, request: PublishRequest) -> tuple[dict, bool]:
        """Validate the fingerprint (the strict validator), store it with its card; (task, created). The same
        request id from the same institution returns the task it made (a retry never duplicates)."""
        from core.cloud.ranking import frame_of

        caller.require("publish")
        try:
            fingerprint = Fingerprint.from_bytes(decode_fingerprint(request.fingerprint), "uploaded fingerprint")
        except ValueError as err:
            raise CloudError(422, str(err)) from None
        except FingerprintFileError as err:
            raise CloudError(422, str(err)) from None
        existing = self._by_request(caller, request.request_id)
        if existing is not None:
            return existing, False
        canonical = fingerprint.to_bytes()
        card = request.card
        classes = card.classes or dict(fingerprint.meta.class_counts)
        meta = fingerprint.meta
        task_id = "ct_" + secrets.token_hex(8)
        now = utc_now()
        try:
            with Session(self.write_engine) as session, session.begin():
                session.add(Task(
                    id=task_id, publisher_id=caller.institution_id, request_id=request.request_id, name=card.name,
                    modality=card.modality, anatomy=card.anatomy, classes_json=json.dumps(classes),
                    terms_of_reuse=card.terms_of_reuse, contact=card.contact, fingerprint=canonical,
                    fingerprint_sha256=hashlib.sha256(canonical).hexdigest(), frame=frame_of(meta),
                    backbone=meta.backbone, probe=meta.probe, weights_sha256=meta.weights_sha256,
                    edges_id=meta.edges_id, feature_dim=meta.feature_dim, n_samples=meta.n_samples,
                    published_at=now, updated_at=now))
                _audit(session, caller, "task.publish", task_id,
                       {"name": card.name, "fingerprint_sha256": hashlib.sha256(canonical).hexdigest(),
                        "request_id": request.request_id})
        except IntegrityError:  # the same request id published at the same moment by a retry
            existing = self._by_request(caller, request.request_id)
            if existing is None:
                raise
            return existing, False
        if self.stores is not None:
            try:
                self.stores.publish(frame_of(meta), task_id, fingerprint)
            except Exception:  # the database has it; the frame's store is brought level at its next query
                logging.getLogger(__name__).exception("task %s: not added to its frame's store", task_id)
        return self.task(caller, task_id), True

    def _by_request(self, caller: Caller, request_id: str) -> dict | None:
        with Session(self.engine) as session:
            task_id = session.scalar(select(Task.id).where(Task.publisher_id == caller.institution_id,
                                                           Task.request_id == request_id))
        return None if task_id is None else self.task(caller, task_id, include_withdrawn=True)

    def _owned(self, session: Session, caller: Caller, task_id: str, verb: str) -> Task:
        caller.require("publish")
        task = session.get(Task, task_id)
        if task is None or task.withdrawn_at is not None:
            raise CloudError(404, f"no task {task_id} (never published or withdrawn)")
        if task.publisher_id != caller.institution_id and "admin" not in caller.scopes:
            raise CloudError(403, f"task {task_id} was published by another institution; only its publisher or an "
                                  f"admin may {verb} it")
        return task

    def update_card(self, caller: Caller, task_id: str, update: CardUpdate) -> dict:
        with Session(self.write_engine) as session, session.begin():
            task = self._owned(session, caller, task_id, "change")
            card: TaskCard = update.card
            before = _card(task)
            task.name, task.modality, task.anatomy = card.name, card.modality, card.anatomy
            task.classes_json = json.dumps(card.classes or before["classes"])
            task.terms_of_reuse, task.contact, task.updated_at = card.terms_of_reuse, card.contact, utc_now()
            _audit(session, caller, "task.update", task_id, {"before": before, "after": _card(task)})
        return self.task(caller, task_id)

    def withdraw(self, caller: Caller, task_id: str) -> dict:
        with Session(self.write_engine) as session, session.begin():
            task = self._owned(session, caller, task_id, "withdraw")
            task.withdrawn_at = task.updated_at = utc_now()
            _audit(session, caller, "task.withdraw", task_id, {"name": task.name})
            answer, frame = {"id": task_id, "withdrawn_at": _iso(task.withdrawn_at)}, task.frame
        if self.stores is not None:
            try:
                self.stores.withdraw(frame, task_id)
            except Exception:  # brought level at the frame's next query
                logging.getLogger(__name__).exception("task %s: not withdrawn from its frame's store", task_id)
        return answer

    def add_experience(self, caller: Caller, task_id: str, experience: ExperienceIn) -> dict:
        """Attach an experience; any institution with ``publish`` may report what it measured for a task."""
        caller.require("publish")
        with Session(self.write_engine) as session, session.begin():
            task = session.get(Task, task_id)
            if task is None or task.withdrawn_at is not None:
                raise CloudError(404, f"no task {task_id} (never published or withdrawn)")
            moved = experience.transferred
            row = Experience(task_id=task_id, author_id=caller.institution_id, scenario=experience.scenario,
                             source_task=moved.source_task, architecture=moved.architecture, policy=moved.policy,
                             metric=experience.metric, value_without=experience.value_without,
                             value_with=experience.value_with, repetitions=experience.repetitions,
                             note=experience.note, created_at=utc_now())
            session.add(row)
            session.flush()
            _audit(session, caller, "experience.add", task_id, {"experience": row.id, **experience.model_dump()})
            return _experience(row, {caller.institution_id: caller.institution})

    # ------------------------------------------------------------------ reads
    def _authors(self, session: Session) -> dict[int, str]:
        return dict(session.execute(select(Institution.id, Institution.name)).all())

    def _describe(self, task: Task, authors: dict[int, str], experiences: list[Experience] | None) -> dict:
        described = {"id": task.id, "card": _card(task), "publisher": authors.get(task.publisher_id, "?"),
                     "fingerprint": {"sha256": task.fingerprint_sha256, "frame": task.frame, "backbone": task.backbone,
                                     "probe": task.probe, "weights_sha256": task.weights_sha256,
                                     "edges_id": task.edges_id, "feature_dim": task.feature_dim,
                                     "n_samples": task.n_samples},
                     "published_at": _iso(task.published_at), "updated_at": _iso(task.updated_at)}
        if task.withdrawn_at is not None:
            described["withdrawn_at"] = _iso(task.withdrawn_at)
        if experiences is not None:
            described["experiences"] = [_experience(e, authors) for e in experiences]
        return described

    def tasks(self, caller: Caller, frame: str | None = None) -> list[dict]:
        """Published (not withdrawn) tasks, oldest first, each with its experiences; only ``frame``'s if given."""
        caller.require("read")
        with Session(self.engine) as session:
            light = [column for column in Task.__table__.c if column.name != "fingerprint"]  # blobs stay put
            query = select(*light).where(Task.withdrawn_at.is_(None)).order_by(Task.published_at, Task.id)
            if frame:
                query = query.where(Task.frame == frame)
            rows = session.execute(query).all()
            experiences = session.scalars(select(Experience).join(Task).where(Task.withdrawn_at.is_(None))
                                          .order_by(Experience.id)).all()
            authors = self._authors(session)
        grouped: dict[str, list] = {}
        for experience in experiences:
            grouped.setdefault(experience.task_id, []).append(experience)
        return [self._describe(Task(**row._mapping), authors, grouped.get(row.id, [])) for row in rows]

    def task(self, caller: Caller, task_id: str, include_withdrawn: bool = False) -> dict:
        caller.require("read")
        with Session(self.engine) as session:
            task = session.get(Task, task_id)
            if task is None or (task.withdrawn_at is not None and not include_withdrawn):
                raise CloudError(404, f"no task {task_id} (never published or withdrawn)")
            experiences = session.scalars(select(Experience).where(Experience.task_id == task_id)
                                          .order_by(Experience.id)).all()
            return self._describe(task, self._authors(session), list(experiences))

    def fingerprint_bytes(self, caller: Caller, task_id: str) -> bytes:
        caller.require("read")
        with Session(self.engine) as session:
            row = session.execute(select(Task.fingerprint, Task.withdrawn_at).where(Task.id == task_id)).first()
        if row is None or row.withdrawn_at is not None:
            raise CloudError(404, f"no task {task_id} (never published or withdrawn)")
        return row.fingerprint

    def query(self, caller: Caller, fingerprint_b64: str, distance: str | None) -> dict:
        """Rank the query's frame's tasks for it (see :mod:`core.cloud.ranking`); refused when no published task
        is comparable."""
        from core.cloud.ranking import IN_MEMORY_UP_TO, cached_catalogue, frame_of, rank, rank_in_store
        from core.distances.registry import DEFAULT_DISTANCE, DISTANCES

        caller.require("read")
        distance = distance or DEFAULT_DISTANCE
        if distance not in DISTANCES:
            raise CloudError(422, f"unknown distance '{distance}'; choose one of {', '.join(DISTANCES)}")
        try:
            query = Fingerprint.from_bytes(decode_fingerprint(fingerprint_b64), "query fingerprint")
        except (ValueError, FingerprintFileError) as err:
            raise CloudError(422, str(err)) from None
        frame = frame_of(query.meta)

        def load(task_id: str) -> Fingerprint:
            return Fingerprint.from_bytes(self.fingerprint_bytes(caller, task_id), f"cloud task {task_id}")

        if self.stores is not None and distance == STORE_DISTANCE:
            with self.stores.lock(frame):  # the ids are read under the lock that publish and withdraw take
                frame_ids, published = self._frame_ids(frame, query)
                store = self.stores.store(frame, frame_ids, load)
                result = rank_in_store(store, frame_ids, query, lambda ids: self._described(ids), load)
        else:
            frame_ids, published = self._frame_ids(frame, query)
            if len(frame_ids) > IN_MEMORY_UP_TO:
                raise CloudError(422, f"{len(frame_ids)} comparable tasks: this cloud ranks that many by "
                                      f"{STORE_DISTANCE} only (other distances up to {IN_MEMORY_UP_TO} tasks)")
            tasks = self.tasks(caller, frame)
            catalogue = cached_catalogue(frame, tasks, load)
            result = rank(catalogue, tasks, query, distance)
        result["not_comparable"] = published - len(frame_ids)
        return result

    def _frame_ids(self, frame: str, query: Fingerprint) -> tuple[list[str], int]:
        """(the frame's live task ids, oldest first; how many tasks are published in all); refused (409) when the
        frame has none."""
        from core.cloud.ranking import describe_frame

        with Session(self.engine) as session:
            frame_ids = list(session.scalars(select(Task.id).where(Task.withdrawn_at.is_(None), Task.frame == frame)
                                             .order_by(Task.published_at, Task.id)))
            published = session.scalar(select(func.count(Task.id)).where(Task.withdrawn_at.is_(None)))
        if not frame_ids:
            raise CloudError(409, f"no published task was made like your fingerprint ({describe_frame(query.meta)}); "
                                  f"{published} task(s) were made with other settings and cannot be compared")
        return frame_ids, published

    def _described(self, task_ids: list[str]) -> dict[str, dict]:
        """{id: task as :meth:`task` describes it} for live tasks, in one query (plus one for experiences)."""
        with Session(self.engine) as session:
            light = [column for column in Task.__table__.c if column.name != "fingerprint"]
            rows = session.execute(select(*light).where(Task.id.in_(task_ids))).all()
            experiences = session.scalars(select(Experience).where(Experience.task_id.in_(task_ids))
                                          .order_by(Experience.id)).all()
            authors = self._authors(session)
        grouped: dict[str, list] = {}
        for experience in experiences:
            grouped.setdefault(experience.task_id, []).append(experience)
        return {row.id: self._describe(Task(**row._mapping), authors, grouped.get(row.id, [])) for row in rows}

    def audit(self, caller: Caller, limit: int = 1000) -> list[dict]:
        """The newest audit entries first (admins only)."""
        if "admin" not in caller.scopes:
            raise CloudError(403, "only an admin token may read the audit log")
        with Session(self.engine) as session:
            rows = session.scalars(select(AuditEntry).order_by(AuditEntry.id.desc()).limit(limit)).all()
            authors = self._authors(session)
            return [{"id": r.id, "at": _iso(r.at), "institution": authors.get(r.institution_id),
                     "token": r.token_public_id, "action": r.action, "task_id": r.task_id,
                     "detail": json.loads(r.detail_json)} for r in rows]
