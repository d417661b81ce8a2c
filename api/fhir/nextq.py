"""``Questionnaire/$next-question``: one stateless step of an adaptive sitting.

The server rebuilds the CAT from the posted QuestionnaireResponse alone: the signed state in its
contained Questionnaire (:mod:`api.fhir.signing`) gives the questionnaire, the banks and designs,
the seed and the items offered so far; the response's answers are replayed through the same engine
as the JSON API (:class:`cat_prom.session.Battery`). Each answered item is checked as it is replayed:

=====================================================================  ======  ===========================
the contained Questionnaire's state is not signed by this server (forged,   422   ``fhir-signature-invalid``
edited, or signed under a rotated key)
an answer to an item that was not offered (at that point)                   422   ``fhir-answer-not-offered``
an answer that is not one of the item's options                             422   ``fhir-answer-not-an-option``
an earlier answer edited so that the test would have asked something else   422   ``fhir-answers-changed``
an earlier question left without an answer                                  422   ``fhir-answer-missing``
two answers to one question                                                 422   ``fhir-answer-not-an-option``
the bank or design changed since the sitting started                        409   ``bank-changed``
=====================================================================  ======  ===========================

A response posted again unchanged (a retry, or an older response replayed) gets the same next
question: the seed and the offered items are in the signed state, and selection is a function of
them and the answers.
"""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from ..problems import Problem
from .codes import CS_DATA_ABSENT, DECLINED, EXT_CAT_STATE, PROFILE_QR_ADAPT, answer_codings, option_index
from .questionnaire import CONTAINED_ID, contained, score_answers
from .signing import CatStateToken, Signer
from .validate import parse


def read_request(body) -> dict:
    """The QuestionnaireResponse posted: a Parameters resource with a ``questionnaire-response``
    part (the operation's input), or a bare QuestionnaireResponse (as some clients send).

    Validated with the fhir.resources models, except the contained adaptive Questionnaire beyond
    the elements the server reads (``id``, ``extension``, ``derivedFrom``): it is the server's own,
    its state is signed, and the reply replaces it. (Validating its items is most of the cost of a
    request: about 3 KB per question asked.)"""
    if not isinstance(body, dict):
        raise Problem("fhir-invalid-resource", "Send a Parameters resource with a `questionnaire-response` "
                      "parameter, or a QuestionnaireResponse.")
    rt = body.get("resourceType")
    if rt == "Parameters":
        params = body.get("parameter")
        stub = {"resourceType": "Basic", "code": {"text": "questionnaire-response"}}  # validated on its own below
        shallow = dict(body, parameter=[dict(p, resource=stub) if isinstance(p, dict) and isinstance(
            p.get("resource"), dict) else p for p in params]) if isinstance(params, list) else body
        parse("Parameters", shallow)
        parts = [p for p in params or [] if p.get("name") == "questionnaire-response"]
        if len(parts) != 1:
            raise Problem("fhir-invalid-resource", "The Parameters resource must have exactly one parameter "
                          f"named `questionnaire-response`; found {len(parts)}.", fhir_expression=["Parameters.parameter"])
        qr = parts[0].get("resource")
        if not isinstance(qr, dict) or qr.get("resourceType") != "QuestionnaireResponse":
            raise Problem("fhir-invalid-resource", "The `questionnaire-response` parameter must carry a "
                          "QuestionnaireResponse in `resource`.", fhir_expression=["Parameters.parameter.resource"])
    elif rt == "QuestionnaireResponse":
        qr = body
    else:
        raise Problem("fhir-invalid-resource", f"Expected a Parameters or QuestionnaireResponse resource; got "
                      f"resourceType {str(rt)[:40]!r}.", fhir_expression=["resourceType"])
    parse("QuestionnaireResponse", _without_contained_items(qr))
    return qr


def _without_contained_items(qr: dict) -> dict:
    ref, contained = qr.get("questionnaire"), qr.get("contained")
    if not (isinstance(ref, str) and ref.startswith("#") and isinstance(contained, list)):
        return qr
    keep = ("resourceType", "id", "extension", "derivedFrom")
    light = [{"status": "active", **{k: c[k] for k in keep if k in c}}
             if isinstance(c, dict) and c.get("resourceType") == "Questionnaire" and c.get("id") == ref[1:] else c
             for c in contained]
    return dict(qr, contained=light)


def _qid_from_canonical(url) -> str | None:
    if not isinstance(url, str) or "/Questionnaire/" not in url:
        return None
    return url.split("|", 1)[0].rstrip("/").rsplit("/Questionnaire/", 1)[1] or None


def _find_contained(qr: dict):
    ref = qr.get("questionnaire")
    if isinstance(ref, str) and ref.startswith("#"):
        found = [c for c in qr.get("contained") or [] if isinstance(c, dict)
                 and c.get("resourceType") == "Questionnaire" and c.get("id") == ref[1:]]
        if not found:
            raise Problem("fhir-invalid-resource", f"QuestionnaireResponse.questionnaire is {ref[:80]!r}, but no "
                          f"contained Questionnaire has that id.", fhir_expression=["QuestionnaireResponse.questionnaire"])
        return found[0], None
    return None, _qid_from_canonical(ref)


def _flatten(items, out: list, path: str) -> None:
    for i, it in enumerate(items or []):
        p = f"{path}.item[{i}]"
        out.append((p, it))
        _flatten(it.get("item"), out, p)
        for j, a in enumerate(it.get("answer") or []):
            _flatten(a.get("item"), out, f"{p}.answer[{j}]")


@dataclass
class Replay:
    target: object
    cq: dict | None  # the contained Questionnaire posted (None on a first call without one)
    battery: object  # cat_prom.session.Battery or JointBattery after the answers
    nonce: str
    asked: list  # (bank, item) offered, the next question included
    answered: list  # QuestionnaireResponse items of the answers, in order


class NextQuestion:
    def __init__(self, catalog, signer: Signer, base: str):
        self.catalog = catalog
        self.signer = signer
        self.base = base

    def target_for(self, qr: dict, url_qid: str | None):
        cq, ref_qid = _find_contained(qr)
        derived = None
        if cq is not None:
            df = cq.get("derivedFrom") or []
            derived = _qid_from_canonical(df[0]) if df else None
        named = {q for q in (url_qid, ref_qid, derived) if q}
        if not named:
            raise Problem("fhir-invalid-resource", "Say which questionnaire to start: POST to "
                          "/fhir/Questionnaire/{id}/$next-question, or set the contained Questionnaire's "
                          "derivedFrom (or QuestionnaireResponse.questionnaire) to its canonical URL.",
                          fhir_expression=["QuestionnaireResponse.questionnaire"])
        if len(named) > 1:
            raise Problem("fhir-questionnaire-mismatch", f"The request names more than one questionnaire "
                          f"({', '.join(sorted(named))}); the URL, derivedFrom and questionnaire must agree.")
        qid = named.pop()
        target = self.catalog.targets.get(qid)
        if target is None:
            raise Problem("questionnaire-not-found", f"No Questionnaire {qid[:100]!r}; GET /fhir/Questionnaire "
                          f"lists them.")
        return target, cq

    def _token(self, target, cq) -> CatStateToken | None:
        exts = [e for e in (cq or {}).get("extension") or [] if isinstance(e, dict) and e.get("url") == EXT_CAT_STATE]
        if not exts:
            return None
        if len(exts) > 1:
            raise Problem("fhir-signature-invalid", "The contained Questionnaire has more than one cat-state "
                          "extension.", fhir_expression=["Questionnaire.extension"])
        tok = self.signer.verify(exts[0], "Questionnaire.extension('cat-state')")
        if tok.questionnaire != target.id:
            raise Problem("fhir-questionnaire-mismatch", f"The contained Questionnaire's state belongs to "
                          f"{tok.questionnaire!r}, not {target.id!r}.")
        if tok.banks != tuple((b.id, b.content_hash) for b in target.banks) or tok.design_hash != target.design_hash:
            raise Problem("bank-changed", "This sitting cannot continue: the item bank or the design of "
                          f"{target.id!r} changed since it started. Start the questionnaire again.")
        return tok

    def _answers(self, qr: dict, target, offered: tuple) -> dict:
        """linkId -> (path, answer) for the questions answered; server-made score items are skipped."""
        flat: list = []
        _flatten(qr.get("item"), flat, "QuestionnaireResponse")
        scores = {f"score/{b.id}" for b in target.banks}
        offered_set = set(offered)
        out = {}
        for path, it in flat:
            lid = it.get("linkId")
            if lid in scores or (isinstance(lid, str) and lid.rsplit("/", 1)[0] in scores):
                continue
            answers = it.get("answer") or []
            if not answers:
                continue
            if lid not in offered_set:
                raise Problem("fhir-answer-not-offered", f"An answer was given to item {str(lid)[:120]!r}, which "
                              f"was not offered in this sitting (at this point).", fhir_expression=[path])
            if lid in out or len(answers) != 1:
                raise Problem("fhir-answer-not-an-option", f"Item {lid!r} takes exactly one answer.",
                              fhir_expression=[path])
            out[lid] = (path + ".answer[0]", answers[0])
        return out

    def replay(self, qr: dict, url_qid: str | None = None) -> "Replay":
        """Rebuild the sitting from ``qr``, checking each answer as it is replayed (see the module doc)."""
        from ..service import start_sitting

        target, cq = self.target_for(qr, url_qid)
        tok = self._token(target, cq)
        offered = tok.offered if tok else ()
        nonce = tok.nonce if tok else self.signer.new_nonce()
        answers = self._answers(qr, target, offered)
        # the JSON API's construction: a joint battery runs joint here too; a previous-sitting prior has no
        # patient to look up in a stateless operation, so it runs (and reports) the population prior
        battery = start_sitting(target.battery, target.entries(), seed=self.signer.seed(nonce))
        asked: list = []  # (bank, item) in order
        answered: list = []  # QR items
        for i, lid in enumerate(offered):
            bank, item = battery.current_bank, battery.current_item
            if item is None or f"{bank.id}/{item.id}" != lid:  # same banks, designs and seed, other path
                raise Problem("bank-changed", "This sitting cannot be reproduced by this server version; start "
                              "the questionnaire again.")
            asked.append((bank, item))
            got = answers.get(lid)
            if got is None:
                if i < len(offered) - 1:
                    raise Problem("fhir-answer-missing", f"Question {i + 1} ({lid!r}) has no answer; an answer "
                                  f"cannot be removed once later questions were asked.",
                                  fhir_expression=["QuestionnaireResponse.item"])
                break
            path, ans = got
            self._apply(battery, bank, item, ans, path)
            answered.append(_answered_item(bank, item, ans))
            if i < len(offered) - 1:
                nb, ni = battery.current_bank, battery.current_item
                now = None if ni is None else f"{nb.id}/{ni.id}"
                if now != offered[i + 1]:
                    raise Problem("fhir-answers-changed", f"The answer to question {i + 1} ({lid!r}) is not the one "
                                  f"given when question {i + 2} was chosen: with it the test would have "
                                  f"{'stopped' if now is None else 'asked ' + repr(now)}. Restore the answer, or "
                                  f"start again.", fhir_expression=[path])
        if not battery.finished and (not offered or len(answered) == len(offered)):
            asked.append((battery.current_bank, battery.current_item))
        return Replay(target, cq, battery, nonce, asked, answered)

    def step(self, qr: dict, url_qid: str | None = None) -> dict:
        """The operation: ``qr`` with the next question added, or completed with the scores."""
        rp = self.replay(qr, url_qid)
        target, battery = rp.target, rp.battery
        finished = bool(battery.finished)
        new_tok = CatStateToken(target.id, tuple((b.id, b.content_hash) for b in target.banks), target.design_hash,
                                rp.nonce, tuple(f"{b.id}/{it.id}" for b, it in rp.asked))
        cq_new = contained(target, self.base, rp.asked, finished, self.signer.extension(new_tok))
        items = list(rp.answered)
        if finished:
            items.extend(score_answers(b, r) for b, r in zip(target.banks, battery.results()))
        return _response(qr, rp.cq, cq_new, items, finished)

    @staticmethod
    def _apply(battery, bank, item, ans: dict, path: str) -> None:
        c = ans.get("valueCoding")
        if not isinstance(c, dict) or set(ans) - {"valueCoding", "extension", "id"}:
            raise Problem("fhir-answer-not-an-option", f"Answer item {item.id!r} with a valueCoding from its "
                          f"answerOption list.", fhir_expression=[path])
        system, code = c.get("system"), c.get("code")
        if system == CS_DATA_ABSENT and code == DECLINED["code"]:
            battery.decline(item.id)
            return
        k = option_index(bank, item, c)
        if k is not None:
            battery.answer(item.id, item.values[k])
            return
        raise Problem("fhir-answer-not-an-option", f"The answer to item {item.id!r} is not one of its options "
                      f"(system {str(system)[:120]!r}, code {str(code)[:40]!r}).", fhir_expression=[path])


def _answered_item(bank, item, ans: dict) -> dict:
    c = ans["valueCoding"]
    if c.get("system") == CS_DATA_ABSENT:
        coding = dict(DECLINED)
    else:
        coding = answer_codings(bank, item)[option_index(bank, item, c)]
    return {"linkId": f"{bank.id}/{item.id}", "text": item.stem, "answer": [{"valueCoding": coding}]}


def _response(qr: dict, cq_old, cq_new: dict, items: list, finished: bool) -> dict:
    out = {"resourceType": "QuestionnaireResponse"}
    for k, v in qr.items():
        if k not in ("resourceType", "contained", "questionnaire", "status", "item", "text"):
            out[k] = v
    meta = dict(out.get("meta") or {})
    meta.pop("versionId", None)
    meta.pop("lastUpdated", None)
    profiles = [p for p in meta.get("profile") or [] if p != PROFILE_QR_ADAPT]
    meta["profile"] = [PROFILE_QR_ADAPT] + profiles
    out["meta"] = meta
    others = [c for c in qr.get("contained") or [] if c is not cq_old and not (
        isinstance(c, dict) and c.get("resourceType") == "Questionnaire" and c.get("id") == CONTAINED_ID)]
    out["contained"] = [cq_new] + others
    out["questionnaire"] = "#" + CONTAINED_ID
    out["status"] = "completed" if finished else "in-progress"
    out.setdefault("authored", dt.datetime.now(dt.timezone.utc).replace(microsecond=0).isoformat().replace("+00:00", "Z"))
    if items:
        out["item"] = items
    return out
