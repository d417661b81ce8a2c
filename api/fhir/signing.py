"""The signed CAT state that makes ``$next-question`` stateless and tamper-evident.

The server keeps nothing between calls. What it needs to rebuild the sitting travels in the
contained Questionnaire as the extension ``urn:cat-prom:fhir:extension:cat-state``::

    {"url": "urn:cat-prom:fhir:extension:cat-state", "extension": [
        {"url": "state", "valueString": "{\"v\":1,\"q\":\"battery.pain-core\",...}"},
        {"url": "kid", "valueString": "3f2a9c1b"},
        {"url": "signature", "valueBase64Binary": "..."}]}

``state`` is canonical JSON (sorted keys, no spaces) of

* ``v`` the format (1), ``q`` the Questionnaire id,
* ``b`` ``[[bank id, content hash], ...]`` and ``d`` the SHA-256 of the designs in force,
* ``n`` a random nonce drawn at the first call; the CAT's seed is HMAC(key, nonce), so it is
  fixed for the sitting and the client cannot choose it (randomised item selection stays fair),
* ``o`` the items offered so far, in order, as ``"<bank id>/<item id>"``.

``signature`` is HMAC-SHA256(key, kid + "." + state). The key is ``CAT_PROM_FHIR_SIGNING_KEY``; else
derived from ``CAT_PROM_SECRET_KEY`` (HMAC with a fixed label, so the API-key pepper itself never
signs anything); else 32 random bytes kept in ``<instance>/fhir-signing.key`` (created once, mode
0600, shared by the workers of one machine). ``kid`` is the first 8 hex digits of SHA-256(key), so
a response signed under an older key is told apart from a forged one. Rotating the key ends the
sittings in progress (their next call is rejected; they start again).
"""
from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import secrets
import threading
import time
from dataclasses import dataclass

from cat_prom.jsonable import canonical

from ..problems import Problem
from .codes import EXT_CAT_STATE

STATE_VERSION = 1
_KEY_FILE = "fhir-signing.key"
_DERIVE_LABEL = b"cat-prom fhir $next-question state v1"
_LOCK = threading.Lock()


@dataclass(frozen=True)
class CatStateToken:
    questionnaire: str
    banks: tuple  # ((bank id, content hash), ...)
    design_hash: str
    nonce: str
    offered: tuple  # ("bank/item", ...)

    def to_json(self) -> str:
        return canonical({"v": STATE_VERSION, "q": self.questionnaire, "b": [list(x) for x in self.banks],
                          "d": self.design_hash, "n": self.nonce, "o": list(self.offered)})


class Signer:
    def __init__(self, key: bytes):
        self._key = key
        self.kid = hashlib.sha256(key).hexdigest()[:8]

    @classmethod
    def from_config(cls, config: dict, instance_path: str) -> "Signer":
        explicit = config.get("CAT_PROM_FHIR_SIGNING_KEY")
        if explicit:
            return cls(explicit.encode("utf-8"))
        secret = config.get("CAT_PROM_SECRET_KEY")
        if secret:
            return cls(hmac.new(secret.encode("utf-8"), _DERIVE_LABEL, hashlib.sha256).digest())
        return cls(_instance_key(instance_path))

    def seed(self, nonce: str) -> int:
        """The CAT's seed for a sitting: 62 bits of HMAC(key, "seed:" + nonce)."""
        d = hmac.new(self._key, b"seed:" + nonce.encode("ascii"), hashlib.sha256).digest()
        return int.from_bytes(d[:8], "big") >> 2

    @staticmethod
    def new_nonce() -> str:
        return secrets.token_hex(16)

    def _mac(self, state_json: str) -> bytes:
        return hmac.new(self._key, f"{self.kid}.{state_json}".encode("utf-8"), hashlib.sha256).digest()

    def extension(self, token: CatStateToken) -> dict:
        state = token.to_json()
        return {"url": EXT_CAT_STATE, "extension": [
            {"url": "state", "valueString": state},
            {"url": "kid", "valueString": self.kid},
            {"url": "signature", "valueBase64Binary": base64.b64encode(self._mac(state)).decode("ascii")},
        ]}

    def verify(self, ext: dict, where: str) -> CatStateToken:
        """The token in a cat-state extension, or a 422 Problem when it was not signed by this server."""
        parts = {}
        for sub in ext.get("extension") or []:
            if not isinstance(sub, dict) or sub.get("url") in parts:
                raise _bad(where, "has a repeated or malformed part")
            parts[sub.get("url")] = sub
        try:
            state = parts["state"]["valueString"]
            kid = parts["kid"]["valueString"]
            sig = base64.b64decode(parts["signature"]["valueBase64Binary"], validate=True)
        except (KeyError, TypeError, ValueError):
            raise _bad(where, "must have 'state', 'kid' and 'signature' parts") from None
        if not isinstance(state, str) or not isinstance(kid, str):
            raise _bad(where, "must have 'state', 'kid' and 'signature' parts")
        if kid != self.kid:
            raise Problem("fhir-signature-invalid", f"{where} was signed with key {kid[:16]!r}, which this server "
                          f"no longer uses (the key was rotated); start the questionnaire again.",
                          fhir_expression=[where])
        if not hmac.compare_digest(sig, self._mac(state)):
            raise _bad(where, "does not match its signature: the contained Questionnaire's state was not "
                              "issued by this server or was edited")
        try:
            d = json.loads(state)
            if d["v"] != STATE_VERSION:
                raise ValueError
            return CatStateToken(questionnaire=str(d["q"]), banks=tuple((str(a), str(h)) for a, h in d["b"]),
                                 design_hash=str(d["d"]), nonce=str(d["n"]), offered=tuple(str(x) for x in d["o"]))
        except (ValueError, KeyError, TypeError):  # pragma: no cover - only a server bug signs a bad state
            raise _bad(where, "holds a state this server version cannot read") from None


def _bad(where: str, what: str) -> Problem:
    return Problem("fhir-signature-invalid", f"{where} {what}; post the QuestionnaireResponse exactly as the "
                   f"server returned it, with your answers added.", fhir_expression=[where])


def _instance_key(instance_path: str) -> bytes:
    path = os.path.join(instance_path, _KEY_FILE)
    with _LOCK:
        try:
            with open(path, "rb") as fh:
                key = fh.read()
            if len(key) >= 32:
                return key
        except FileNotFoundError:
            pass
        os.makedirs(instance_path, exist_ok=True)
        key = secrets.token_bytes(32)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:  # another worker made it first: use theirs, once it is written
            for _ in range(50):
                with open(path, "rb") as fh:
                    key = fh.read()
                if len(key) >= 32:
                    return key
                time.sleep(0.01)
            raise RuntimeError(f"{path} holds no key; delete it or set CAT_PROM_FHIR_SIGNING_KEY")
        with os.fdopen(fd, "wb") as fh:
            fh.write(key)
        return key
