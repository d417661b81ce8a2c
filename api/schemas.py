"""Marshmallow schemas at the edge: request validation and the OpenAPI document."""
from __future__ import annotations

import datetime as dt

import marshmallow as ma
from marshmallow import fields, validate

REF_RE = r"^[A-Za-z0-9][A-Za-z0-9._:@-]{0,127}$"
ID_RE = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$"


class FullMatch(validate.Regexp):
    """``validate.Regexp`` that must match the whole string: ``re.match`` with ``$`` would accept a
    trailing newline (``"p-001\\n"``). The pattern (``^...$``, valid ECMA-262) is still what apispec
    puts in the OpenAPI document."""

    def __call__(self, value):
        if not isinstance(value, str) or self.regex.fullmatch(value) is None:
            raise ma.ValidationError(self._format_error(value))
        return value


class JsonInteger(fields.Integer):
    """An integer in a JSON body: a JSON number written without a fraction or exponent (``3``).
    Unlike ``fields.Integer`` it refuses ``2.5`` (which marshmallow would truncate to 2), ``2.0``
    (documented as an integer, so sent as one), numeric strings (``"5"``) and booleans."""

    def _deserialize(self, value, attr, data, **kwargs):
        if isinstance(value, bool) or not isinstance(value, int):
            raise self.make_error("invalid")
        return super()._deserialize(value, attr, data, **kwargs)


class JsonBoolean(fields.Boolean):
    """``true`` or ``false`` only (``fields.Boolean(truthy={True})`` still takes 1 and 0: ``1 == True``)."""

    def _deserialize(self, value, attr, data, **kwargs):
        if not isinstance(value, bool):
            raise self.make_error("invalid")
        return value


class Strict(ma.Schema):
    class Meta:
        unknown = ma.RAISE
        ordered = True


class ResponseValue(fields.Field):
    """A response value as the bank defines it: an integer (``3``, not ``3.0``) or a short string (never a
    boolean)."""

    default_error_messages = {"invalid": "Must be an integer or a string of at most 200 characters."}

    def _deserialize(self, value, attr, data, **kwargs):
        if isinstance(value, bool):
            raise self.make_error("invalid")
        if isinstance(value, int):
            if abs(value) > 2**53:
                raise self.make_error("invalid")
            return value
        if isinstance(value, str) and len(value) <= 200:
            return value
        raise self.make_error("invalid")

    def _serialize(self, value, attr, obj, **kwargs):
        return value

    def _jsonschema_type_mapping(self):  # pragma: no cover - documentation only
        return {"oneOf": [{"type": "integer"}, {"type": "string"}]}


class DesignField(fields.Dict):
    """A CAT design object; validated by the engine (``Design.from_dict``)."""


class CreateSessionSchema(Strict):
    OPENAPI_EXTRA = {
        "oneOf": [{"required": ["banks"]}, {"required": ["battery"]}],
        "example": {"battery": "pain-core", "patient": "p-001"},
    }

    banks = fields.List(fields.String(validate=FullMatch(ID_RE)), validate=validate.Length(min=1, max=20),
                        metadata={"description": "Bank ids to administer in this order (or give `battery`).",
                                  "uniqueItems": True})
    battery = fields.String(validate=FullMatch(ID_RE),
                            metadata={"description": "Battery id, e.g. `pain-core` (or give `banks`)."})
    patient = fields.String(required=True, validate=FullMatch(REF_RE, error="Must be 1-128 characters: "
                            "letters, digits and . _ : @ - (an opaque reference, never a name)."),
                            metadata={"description": "Opaque patient reference (pseudonym) chosen by the app."})
    design = fields.Dict(keys=fields.String(), metadata={
        "description": "Design overrides for every domain; the engine validates them (`422 invalid-design`), "
                       "see docs/design.md. `{\"prior\": {\"type\": \"previous\"}}` starts each domain from the "
                       "patient's last scored sitting of that bank (looked up when the sitting is created; the "
                       "result's `prior` says what was used)."})
    designs = fields.Dict(keys=fields.String(validate=FullMatch(ID_RE)), values=fields.Dict(), metadata={
        "description": "Design overrides per bank id; each key must be a bank of this session (else `422`), so "
                       "matches the bank id pattern `^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$` (OpenAPI 3.0 cannot "
                       "constrain property names; `x-propertyNames` states it).",
        "x-propertyNames": {"pattern": ID_RE}})
    exclude_items = fields.List(fields.String(validate=validate.Length(min=1, max=100)),
                                validate=validate.Length(max=1000),
                                metadata={"description": "Item ids never to offer to this patient, in any bank."})
    seed = JsonInteger(validate=validate.Range(min=0, max=2**63 - 1),
                       metadata={"description": "Random seed (reproducible item selection); random if absent."})

    @ma.validates_schema
    def _one_source(self, data, **kwargs):
        if ("banks" in data) == ("battery" in data):
            raise ma.ValidationError("Give exactly one of `banks` (a list of bank ids) or `battery`.",
                                     field_name="banks")
        if "banks" in data and len(set(data["banks"])) != len(data["banks"]):
            raise ma.ValidationError("A bank may appear only once.", field_name="banks")


class AnswerSchema(Strict):
    OPENAPI_EXTRA = {
        "oneOf": [
            {"required": ["value"], "properties": {"declined": {"enum": [False]}}},
            {"required": ["declined"], "properties": {"declined": {"enum": [True]}}, "not": {"required": ["value"]}},
        ],
        "example": {"seq": 1, "item_id": "PINT02", "value": 3},
    }

    seq = JsonInteger(required=True, validate=validate.Range(min=1, max=10000),
                      metadata={"description": "Number of the question answered (the question's `seq`)."})
    item_id = fields.String(required=True, validate=validate.Length(min=1, max=100))
    value = ResponseValue(metadata={"description": "One of the question's option values."})
    declined = JsonBoolean(metadata={"description": "true to decline (skip) the question."})

    @ma.validates_schema
    def _value_or_declined(self, data, **kwargs):
        declined = data.get("declined", False)
        if declined and "value" in data:
            raise ma.ValidationError("Give either `value` or `\"declined\": true`, not both.", field_name="value")
        if not declined and "value" not in data:
            raise ma.ValidationError("Missing `value` (or send `\"declined\": true`).", field_name="value")


class OptionSchema(ma.Schema):
    value = ResponseValue()
    label = fields.String()


class QuestionSchema(ma.Schema):
    seq = fields.Integer(metadata={"description": "Send this back as `seq` with the answer."})
    position = fields.Integer(metadata={"description": "1-based number of this question in the sitting."})
    item_id = fields.String()
    stem = fields.String()
    options = fields.List(fields.Nested(OptionSchema))
    bank_id = fields.String()
    domain = fields.String()
    domain_index = fields.Integer(metadata={"description": "0-based index of the domain in the sitting (a battery "
                                                           "scored jointly may alternate between domains)."})
    n_domains = fields.Integer()
    recall_period = fields.String()
    instructions = fields.String()


class DomainResultSchema(ma.Schema):
    class Meta:
        unknown = ma.INCLUDE

    bank_id = fields.String()
    bank_version = fields.String()
    domain = fields.String()
    direction = fields.String()
    finished = fields.Boolean()
    estimator = fields.String()
    prior = fields.Dict(metadata={
        "description": "Which prior the domain's CAT used: `type` `population` (with `population` mean and sd) or "
                       "`previous` (the last sitting as the starting point, with its parameters, "
                       "`change_probability` and `switched_after`); see docs/clinicians.md."})
    flag = fields.String()
    status = fields.String(metadata={"description": "`scored`, or `not_scored` when the patient answered nothing "
                                                    "in this domain: then theta, se, t_score, t_se and band are null."})
    status_reason = fields.String(allow_none=True, metadata={
        "description": "Why not scored: `no_answers`, `all_declined` or `no_eligible_items`; null when scored."})
    theta = fields.Float(allow_nan=False, allow_none=True)
    se = fields.Float(allow_none=True)
    t_score = fields.Float(allow_none=True)
    t_se = fields.Float(allow_none=True)
    band = fields.String(allow_none=True)
    stop_reason = fields.String(allow_none=True, metadata={"description": "Which stop rule fired."})
    stop_detail = fields.String(allow_none=True)
    scoring = fields.String(metadata={"description": "`joint` when the battery scores its domains together "
                                                     "(absent: each domain alone)"})
    joint = fields.Dict(metadata={"description": "Joint scoring only: what the other domains' answers said about "
                                                 "this one (`cavity` mean and sd on the theta scale) and the banks "
                                                 "it borrowed from. docs/clinicians.md"})
    n_answered = fields.Integer()
    n_declined = fields.Integer()
    items = fields.List(fields.Raw())


class SessionSchema(ma.Schema):
    id = fields.String()
    status = fields.String(metadata={"description": "in_progress | finished | abandoned | expired"})
    patient = fields.String()
    battery = fields.String(allow_none=True)
    banks = fields.List(fields.String())
    created_at = fields.String()
    updated_at = fields.String()
    expires_at = fields.String()
    finished_at = fields.String(allow_none=True)
    n_responses = fields.Integer(metadata={"description": "Answers and declines accepted so far."})
    next_seq = fields.Integer(allow_none=True, metadata={"description": "`seq` of the next answer; null when done."})
    question = fields.Nested(QuestionSchema, allow_none=True)
    results = fields.List(fields.Nested(DomainResultSchema), allow_none=True)
    answers = fields.List(fields.Dict(), metadata={"description": "Only on GET: the response log so far."})


class BankSummarySchema(ma.Schema):
    class Meta:
        unknown = ma.INCLUDE

    id = fields.String()
    name = fields.String()
    version = fields.String()
    domain = fields.String()
    recall_period = fields.String()
    direction = fields.String()
    n_items = fields.Integer()
    content_hash = fields.String()
    demo = fields.Boolean()


class BankListSchema(ma.Schema):
    banks = fields.List(fields.Dict())
    batteries = fields.List(fields.Dict())


class Page(Strict):
    """``limit`` and ``offset`` of a paginated list."""

    limit = fields.Integer(load_default=100, validate=validate.Range(min=1, max=1000))
    offset = fields.Integer(load_default=0, validate=validate.Range(min=0, max=10**9))


class PatientResultsQuerySchema(Page):
    from_ = fields.AwareDateTime(data_key="from", default_timezone=dt.timezone.utc, metadata={
        "description": "Only sittings finished at or after this time (ISO 8601; UTC if no offset)."})
    to = fields.AwareDateTime(default_timezone=dt.timezone.utc, metadata={
        "description": "Only sittings finished at or before this time."})


class ChangeSchema(ma.Schema):
    from_session_id = fields.String(metadata={"description": "The sitting compared with."})
    from_finished_at = fields.String()
    t_from = fields.Float()
    t_to = fields.Float()
    delta_t = fields.Float(metadata={"description": "T now minus T then."})
    se_delta = fields.Float(metadata={"description": "SE of the change: sqrt(SE_then² + SE_now²)."})
    rci = fields.Float(allow_none=True, metadata={"description": "Reliable change index delta_t / se_delta."})
    reliable = fields.Boolean(metadata={"description": "|delta_t| > 1.96 se_delta (Jacobson & Truax 1991)."})
    reaches_mid = fields.Boolean(metadata={"description": "|delta_t| >= the domain's MID."})
    direction = fields.String(metadata={"description": "`worse`, `better` or `none`, by the bank's direction."})
    mid = fields.Float(metadata={"description": "The MID used, T points."})


class DomainChangeSchema(ma.Schema):
    previous = fields.Nested(ChangeSchema, allow_none=True, metadata={"description": "Against the previous scored sitting."})
    baseline = fields.Nested(ChangeSchema, allow_none=True, metadata={
        "description": "Against the baseline: the sitting a clinician marked, else the first scored one."})
    mid_t = fields.Float()


class DomainGoalSchema(ma.Schema):
    t_score = fields.Float(metadata={"description": "The patient's acceptable level now."})
    source = fields.String(metadata={"description": "`patient` or `clinic_default`"})


class AnnotatedDomainResultSchema(DomainResultSchema):
    change = fields.Nested(DomainChangeSchema, allow_none=True, metadata={"description": "null when not scored."})
    goal = fields.Nested(DomainGoalSchema, allow_none=True)
    alerts = fields.List(fields.Dict(), metadata={
        "description": "Alerts this sitting opened or confirmed in this domain (GET /v1/alerts/{id})."})


class PatientResultSchema(ma.Schema):
    session_id = fields.String()
    battery = fields.String(allow_none=True)
    banks = fields.List(fields.String())
    created_at = fields.String()
    finished_at = fields.String()
    results = fields.List(fields.Nested(AnnotatedDomainResultSchema))


class PatientResultsSchema(ma.Schema):
    patient = fields.String()
    sessions = fields.List(fields.Nested(PatientResultSchema))


class CreateKeySchema(Strict):
    role = fields.String(required=True, validate=validate.OneOf(["patient-app", "clinician", "researcher", "admin"]))
    name = fields.String(required=True, validate=validate.Length(min=1, max=200))
    expires_at = fields.AwareDateTime(default_timezone=dt.timezone.utc, metadata={
        "description": "When the key stops working (ISO 8601; UTC if no offset; within 3650 days). Give this or "
                       "`expires_in_days`, or neither for a key that does not expire."})
    expires_in_days = fields.Integer(validate=validate.Range(min=1, max=3650), strict=True, metadata={
        "description": "The key stops working this many days from now."})


class KeySchema(ma.Schema):
    id = fields.String()
    tenant = fields.String()
    name = fields.String()
    role = fields.String()
    created_at = fields.String()
    revoked_at = fields.String(allow_none=True)
    expires_at = fields.String(allow_none=True, metadata={"description": "null: the key does not expire."})
    last_used_at = fields.String(allow_none=True, metadata={
        "description": "The last request made with the key, to the minute (null: never used)."})
    key = fields.String(metadata={"description": "Only in the response that creates the key."})


class SimulationSchema(Strict):
    bank = fields.String(required=True, validate=FullMatch(ID_RE), metadata={"description": "Bank id."})
    design = fields.Dict(keys=fields.String(), metadata={"description": "Design to simulate (default PROMIS)."})
    n = JsonInteger(load_default=500, validate=validate.Range(min=1, max=100_000),
                    metadata={"description": "Number of simulees, true θ drawn from the design's prior (at most "
                                             "CAT_PROM_SIM_MAX_SIMULEES, default 2000)."})
    seed = JsonInteger(validate=validate.Range(min=0, max=2**63 - 1))


class SimulationResultSchema(ma.Schema):
    """``cat_prom.simulation`` summary (see docs/simulation.md)."""

    mode = fields.String()
    n = fields.Integer()
    bank_id = fields.String()
    bank_n_items = fields.Integer()
    design = fields.Dict()
    seed = fields.Integer(allow_none=True)
    reference = fields.String(allow_none=True)
    bias = fields.Float(allow_none=True)
    rmse = fields.Float(allow_none=True)
    mean_abs_error = fields.Float(allow_none=True)
    correlation = fields.Float(allow_none=True)
    test_length = fields.Dict()
    se = fields.Dict()
    by_theta_band = fields.List(fields.Dict())
    exposure = fields.Dict()
    stop_reasons = fields.Dict()
    elapsed_s = fields.Float()
    cats_per_second = fields.Float(allow_none=True)


class ReadySchema(ma.Schema):
    status = fields.String(metadata={"description": "ready | not ready"})
    checks = fields.Dict(keys=fields.String(), values=fields.String(),
                         metadata={"description": "database, banks, engine: `ok` or what is wrong"})
    bank_errors = fields.List(fields.String(), metadata={
        "description": "Bank or battery files that failed validation and were skipped (only when there are some)."})


class ProblemSchema(ma.Schema):
    """RFC 9457 problem details (media type application/problem+json). Problem types may add
    extension members (RFC 9457 §3.2), so other members are allowed."""

    class Meta:
        unknown = ma.INCLUDE

    type = fields.String(metadata={"description": "Stable URI of the problem type, urn:cat-prom:problem:<code>"})
    title = fields.String()
    status = fields.Integer()
    detail = fields.String()
    instance = fields.String()
    request_id = fields.String()
    errors = fields.Dict(metadata={"description": "Validation errors by field"})
    fields_ = fields.Dict(data_key="fields", metadata={
        "description": "Engine errors (value-out-of-range, unknown-item, ...): the offending values"})
    seq = fields.Integer(metadata={"description": "seq-conflict, seq-out-of-order: the `seq` that was sent"})
    next_seq = fields.Integer(allow_none=True, metadata={
        "description": "seq-conflict, seq-out-of-order: the `seq` the session expects next (null when done)"})


class CreateLinkSchema(Strict):
    OPENAPI_EXTRA = {
        "oneOf": [{"required": ["banks"]}, {"required": ["battery"]}],
        "example": {"battery": "pain-core", "expires_at": "2026-12-01T18:00:00Z"},
    }

    banks = CreateSessionSchema._declared_fields["banks"]
    battery = CreateSessionSchema._declared_fields["battery"]
    expires_at = fields.AwareDateTime(metadata={
        "description": "When the link stops working (with a time zone). Default and latest: the sitting's own "
                       "expiry (CAT_PROM_SESSION_TTL from now)."})

    @ma.validates_schema
    def _one_source(self, data, **kwargs):
        CreateSessionSchema._one_source(self, data, **kwargs)


class LinkSchema(ma.Schema):
    id = fields.String(metadata={"description": "Link id (to revoke it)."})
    url = fields.String(metadata={"description": "The address to give the patient: /take/<token>. Shown once; "
                                                "only a hash of the token is stored."})
    patient = fields.String()
    session_id = fields.String(metadata={"description": "The sitting the link opens (and nothing else)."})
    battery = fields.String(allow_none=True)
    banks = fields.List(fields.String())
    created_at = fields.String()
    expires_at = fields.String()
    revoked_at = fields.String(allow_none=True)


class ReportQuerySchema(Strict):
    format = fields.String(validate=validate.OneOf(["html", "json", "pdf"]), metadata={
        "description": "`html` (browsers), `json` (apps) or `pdf` (A4, for the record). Default: HTML when the "
                       "client prefers it (Accept), else JSON."})
    done = fields.String(metadata={"description": "Set by the report's own forms after a change (a message to "
                                                  "show); ignored otherwise."})
