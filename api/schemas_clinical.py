"""Marshmallow schemas of the clinical routes (goals, personal goals, baselines, alerts, settings,
webhooks, the triage list): request validation and the OpenAPI document."""
from __future__ import annotations

import datetime as dt

import marshmallow as ma
from marshmallow import fields, validate

from .schemas import REF_RE, FullMatch, JsonInteger, Page, Strict

RULES = ("above_acceptable", "severe_band", "worse_than_previous", "worse_than_baseline", "abandoned_sittings")
_T = validate.Range(min=0, max=100)


class JsonNumber(fields.Float):
    """A JSON number (not a string, not a boolean)."""

    def _deserialize(self, value, attr, data, **kwargs):
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise self.make_error("invalid")
        return super()._deserialize(value, attr, data, **kwargs)


class UtcDateTime(fields.AwareDateTime):
    """An ISO 8601 date-time; without an offset it is taken as UTC."""

    def __init__(self, **kwargs):
        super().__init__(default_timezone=dt.timezone.utc, **kwargs)


# ----------------------------------------------------------------------------- acceptable levels
class PutGoalSchema(Strict):
    OPENAPI_EXTRA = {"oneOf": [{"required": ["t_score"]}, {"required": ["band"]}],
                     "example": {"t_score": 60, "agreed_by": "both", "note": "agreed at the March review"}}
    t_score = JsonNumber(validate=_T, metadata={"description": "The worst T-score the patient finds acceptable."})
    band = fields.String(validate=validate.Length(min=1, max=100), metadata={
        "description": "Or a severity band of the bank: its worst edge becomes the T bound."})
    agreed_by = fields.String(required=True, validate=validate.OneOf(["patient", "clinician", "both"]), metadata={
        "description": "Who agreed the level; a patient-app key may give `patient` or `both`."})
    note = fields.String(load_default="", validate=validate.Length(max=1000))

    @ma.validates_schema
    def _one(self, data, **kwargs):
        if ("t_score" in data) == ("band" in data):
            raise ma.ValidationError("Give exactly one of `t_score` or `band`.", field_name="t_score")


class AcceptableLevelSchema(ma.Schema):
    bank_id = fields.String()
    domain = fields.String(allow_none=True)
    direction = fields.String(allow_none=True)
    t_score = fields.Float(metadata={"description": "The acceptable bound on the T metric."})
    band = fields.String(allow_none=True, metadata={"description": "The band it was given as, if any."})
    source = fields.String(metadata={"description": "`patient` (set for this patient) or `clinic_default`"})
    agreed_by = fields.String(allow_none=True)
    note = fields.String()
    set_by = fields.String(metadata={"description": "Id of the API key that set it."})
    set_role = fields.String()
    set_at = fields.String()


class GoalsSchema(ma.Schema):
    patient = fields.String()
    current = fields.List(fields.Nested(AcceptableLevelSchema), metadata={"description": "Per bank, what applies now."})
    history = fields.List(fields.Nested(AcceptableLevelSchema), metadata={"description": "Every change, newest first."})


# ----------------------------------------------------------------------------- personal goals (GAS)
def _levels(value, *, partial: bool) -> dict[int, str]:
    keys = {"-2", "-1", "0", "1", "2"}
    if not isinstance(value, dict) or not set(value) <= keys or (not partial and set(value) != keys):
        raise ma.ValidationError("Give the GAS levels as an object with keys " +
                                 ("among " if partial else "") + "\"-2\", \"-1\", \"0\", \"1\", \"2\".")
    out = {}
    for k, v in value.items():
        if not isinstance(v, str) or not 1 <= len(v.strip()) <= 500:
            raise ma.ValidationError(f"Level {k}: a description of 1-500 characters.")
        out[int(k)] = v.strip()
    return out


class LevelsField(fields.Field):
    def __init__(self, partial=False, **kwargs):
        self.partial = partial
        super().__init__(**kwargs)

    def _deserialize(self, value, attr, data, **kwargs):
        return _levels(value, partial=self.partial)

    def _serialize(self, value, attr, obj, **kwargs):
        return value


_LEVELS_DOC = {"type": "object", "description": "The five Goal Attainment Scaling levels in words: -2 much less than "
               "expected, -1 somewhat less, 0 the expected outcome, +1 somewhat more, +2 much more.",
               "properties": {k: {"type": "string", "maxLength": 500} for k in ("-2", "-1", "0", "1", "2")}}


class CreatePersonalGoalSchema(Strict):
    OPENAPI_EXTRA = {"example": {"title": "Walk to the shop and back", "weight": 1, "levels": {
        "-2": "cannot leave the house", "-1": "to the end of the street", "0": "to the shop with one rest",
        "1": "to the shop and back without a rest", "2": "to the park and back"}}}
    title = fields.String(required=True, validate=validate.Length(min=1, max=500))
    weight = JsonNumber(load_default=1.0, validate=validate.Range(min=0, max=100, min_inclusive=False))
    levels = LevelsField(required=True, metadata=_LEVELS_DOC)


class PatchPersonalGoalSchema(Strict):
    title = fields.String(validate=validate.Length(min=1, max=500))
    weight = JsonNumber(validate=validate.Range(min=0, max=100, min_inclusive=False))
    levels = LevelsField(partial=True, metadata=_LEVELS_DOC)


class RateGoalSchema(Strict):
    OPENAPI_EXTRA = {"example": {"level": 0, "rated_on": "2026-11-26", "note": "managed it twice this week"}}
    level = JsonInteger(required=True, validate=validate.Range(min=-2, max=2))
    rated_on = fields.Date(metadata={"description": "The day the attainment refers to (default today, UTC)."})
    note = fields.String(load_default="", validate=validate.Length(max=1000))


class RatingSchema(ma.Schema):
    id = fields.Integer()
    level = fields.Integer()
    rated_by = fields.String(metadata={"description": "`patient` (patient-app key) or `clinician`"})
    rated_on = fields.String()
    note = fields.String()
    key_id = fields.String()
    created_at = fields.String()


class PersonalGoalSchema(ma.Schema):
    id = fields.String()
    patient = fields.String()
    title = fields.String()
    weight = fields.Float()
    levels = fields.Dict(keys=fields.String(), values=fields.String())
    created_by = fields.String()
    created_at = fields.String()
    archived_at = fields.String(allow_none=True)
    ratings = fields.List(fields.Nested(RatingSchema))


class GasPointSchema(ma.Schema):
    date = fields.String()
    n_goals = fields.Integer(metadata={"description": "Goals rated by this date (each with its latest rating)."})
    t_score = fields.Float(metadata={"description": "GAS T-score: 50 when every goal is at its expected level."})


class GasSchema(ma.Schema):
    rho = fields.Float(metadata={"description": "Assumed correlation between goal scores (tenant setting)."})
    series = fields.List(fields.Nested(GasPointSchema))


class PersonalGoalsSchema(ma.Schema):
    patient = fields.String()
    goals = fields.List(fields.Nested(PersonalGoalSchema))
    gas = fields.Nested(GasSchema)


class PersonalGoalsQuerySchema(Strict):
    include_archived = fields.Boolean(load_default=False)


# ----------------------------------------------------------------------------------- baselines
class PutBaselineSchema(Strict):
    session_id = fields.String(required=True, validate=validate.Length(min=1, max=40),
                               metadata={"description": "A finished sitting of this patient, scored in this domain."})


class BaselineSchema(ma.Schema):
    patient = fields.String()
    bank_id = fields.String()
    session_id = fields.String()
    set_by = fields.String()
    set_at = fields.String()


# -------------------------------------------------------------------------------------- alerts
class AlertSchema(ma.Schema):
    id = fields.String()
    patient = fields.String()
    bank_id = fields.String(metadata={"description": "The domain's bank, `*` for sitting-level rules."})
    rule = fields.String()
    status = fields.String(metadata={"description": "`open` or `acknowledged`"})
    certainty = fields.Float(allow_none=True, metadata={
        "description": "Posterior probability that the problem is real (e.g. true T beyond the threshold)."})
    threshold_t = fields.Float(allow_none=True)
    t_score = fields.Float(allow_none=True)
    t_se = fields.Float(allow_none=True)
    details = fields.Dict(metadata={"description": "The values the rule used (docs/clinicians.md)."})
    session_id = fields.String(allow_none=True, metadata={"description": "The sitting that opened it."})
    last_session_id = fields.String(allow_none=True, metadata={"description": "The newest sitting that confirmed it."})
    reopens = fields.String(allow_none=True, metadata={"description": "The acknowledged alert this one re-opens."})
    opened_at = fields.String()
    updated_at = fields.String()
    acknowledged_at = fields.String(allow_none=True)
    acknowledged_by = fields.String(allow_none=True)
    note = fields.String(allow_none=True)


class AlertListSchema(ma.Schema):
    alerts = fields.List(fields.Nested(AlertSchema))
    limit = fields.Integer()
    offset = fields.Integer()


class AlertsQuerySchema(Page):
    status = fields.String(validate=validate.OneOf(["open", "acknowledged"]))
    patient = fields.String(validate=FullMatch(REF_RE))
    domain = fields.String(validate=validate.Length(min=1, max=100),
                           metadata={"description": "Bank id of the domain, e.g. `pain-intensity`."})
    rule = fields.String(validate=validate.OneOf(RULES))
    since = UtcDateTime(metadata={"description": "Alerts opened or updated at or after this time."})


class AcknowledgeSchema(Strict):
    OPENAPI_EXTRA = {"example": {"note": "phoned the patient; analgesia reviewed"}}
    note = fields.String(required=True, validate=validate.Length(min=1, max=1000))


class AlertStatsQuerySchema(Strict):
    since = UtcDateTime(metadata={"description": "Start of the period (default: 30 days before `until`)."})
    until = UtcDateTime(metadata={"description": "End of the period, exclusive (default: now)."})


class RuleRateSchema(ma.Schema):
    rule = fields.String()
    enabled = fields.Boolean()
    alerts = fields.Integer()
    per_100_sittings = fields.Float(allow_none=True)


class AlertStatsSchema(ma.Schema):
    since = fields.String()
    until = fields.String()
    finished_sittings = fields.Integer()
    alerts = fields.Integer()
    per_100_sittings = fields.Float(allow_none=True, metadata={"description": "null when no sitting finished."})
    by_rule = fields.List(fields.Nested(RuleRateSchema))


# ------------------------------------------------------------------------------------ settings
class PutAlertSettingsSchema(Strict):
    OPENAPI_EXTRA = {"example": {"enabled_rules": ["above_acceptable", "severe_band", "worse_than_previous"],
                                 "certainty": 0.8, "abandoned_n": 3, "gas_rho": 0.3}}
    enabled_rules = fields.List(fields.String(validate=validate.OneOf(RULES)), required=True,
                                validate=validate.Length(max=len(RULES)))
    certainty = JsonNumber(load_default=0.8, validate=validate.Range(min=0.5, max=0.999))
    abandoned_n = JsonInteger(load_default=3, validate=validate.Range(min=1, max=20))
    gas_rho = JsonNumber(load_default=0.3, validate=validate.Range(min=0, max=0.95))


class AlertSettingsSchema(ma.Schema):
    enabled_rules = fields.List(fields.String())
    certainty = fields.Float()
    abandoned_n = fields.Integer()
    gas_rho = fields.Float()
    updated_by = fields.String(allow_none=True)
    updated_at = fields.String(allow_none=True)


class PutBankSettingsSchema(Strict):
    OPENAPI_EXTRA = {"example": {"default_acceptable_t": 60, "mid_t": 5}}
    default_acceptable_t = JsonNumber(allow_none=True, validate=_T, metadata={
        "description": "The clinic's acceptable level where a patient has none (null: none)."})
    mid_t = JsonNumber(allow_none=True, validate=validate.Range(min=0.5, max=30), metadata={
        "description": "Minimally important difference in T points (null: the default, 5)."})


class BankSettingsSchema(ma.Schema):
    bank_id = fields.String()
    default_acceptable_t = fields.Float(allow_none=True)
    mid_t = fields.Float()
    mid_source = fields.String(metadata={"description": "`tenant` or `default`"})
    updated_at = fields.String(allow_none=True)


class SettingsSchema(ma.Schema):
    alerts = fields.Nested(AlertSettingsSchema)
    banks = fields.List(fields.Nested(BankSettingsSchema))


# ------------------------------------------------------------------------------------ webhooks
class CreateWebhookSchema(Strict):
    OPENAPI_EXTRA = {"example": {"url": "https://ward.example.org/cat-prom-alerts", "description": "ward inbox"}}
    url = fields.Url(required=True, schemes={"http", "https"}, require_tld=False, validate=validate.Length(max=2000))
    description = fields.String(load_default="", validate=validate.Length(max=200))


class PatchWebhookSchema(Strict):
    url = fields.Url(schemes={"http", "https"}, require_tld=False, validate=validate.Length(max=2000))
    description = fields.String(validate=validate.Length(max=200))
    active = fields.Boolean()


class WebhookSchema(ma.Schema):
    id = fields.String()
    url = fields.String()
    description = fields.String()
    active = fields.Boolean()
    created_at = fields.String()
    created_by = fields.String()
    updated_at = fields.String()
    secret = fields.String(metadata={"description": "Only in the response that creates the endpoint: the HMAC key "
                                                    "for X-Cat-Prom-Signature."})


class DeliverySchema(ma.Schema):
    outbox_id = fields.Integer()
    alert_id = fields.String()
    event = fields.String()
    attempt = fields.Integer()
    status_code = fields.Integer(allow_none=True)
    error = fields.String(allow_none=True)
    duration_ms = fields.Float()
    at = fields.String()


class DeliveriesQuerySchema(Strict):
    limit = fields.Integer(load_default=50, validate=validate.Range(min=1, max=1000))


# ------------------------------------------------------------------------------- triage list
class PatientsQuerySchema(Page):
    pass


class TriageDomainSchema(ma.Schema):
    bank_id = fields.String()
    domain = fields.String()
    t_score = fields.Float()
    t_se = fields.Float()
    band = fields.String(allow_none=True)
    finished_at = fields.String()
    session_id = fields.String()
    change = fields.Dict(allow_none=True, metadata={"description": "Against the previous scored sitting."})


class TriagePatientSchema(ma.Schema):
    patient = fields.String()
    open_alerts = fields.Integer()
    alerts = fields.List(fields.Dict())
    largest_worsening_t = fields.Float(metadata={"description": "Largest worsening ΔT among the domains (0: none)."})
    last_finished_at = fields.String()
    last_answered_at = fields.String()
    domains = fields.List(fields.Nested(TriageDomainSchema))


class TriageSchema(ma.Schema):
    patients = fields.List(fields.Nested(TriagePatientSchema))
    total = fields.Integer()
    limit = fields.Integer()
    offset = fields.Integer()

