"""The engine's single error hierarchy.

Every error raised on purpose by :mod:`cat_prom` is a :class:`CatPromError`.
Each subclass carries a stable ``code`` that the service maps to an RFC 9457
problem ``type``; messages say what was wrong and how to fix it.
"""
from __future__ import annotations

__all__ = [
    "CatPromError",
    "InvalidBankError",
    "InvalidDesignError",
    "InvalidBatteryError",
    "InvalidResponseError",
    "ValueOutOfRangeError",
    "UnknownItemError",
    "ItemNotOfferedError",
    "ItemAlreadyAnsweredError",
    "SessionFinishedError",
    "InvalidDataError",
    "CalibrationError",
    "UnresolvedGoalError",
    "InvalidRulesError",
    "InvalidGoalError",
]


class CatPromError(Exception):
    """Base class of every deliberate cat-prom error."""

    code = "cat-prom-error"

    def __init__(self, message: str, **fields):
        super().__init__(message)
        self.message = message
        #: machine-readable context (item id, field, row, ...)
        self.fields = fields

    def __str__(self) -> str:  # pragma: no cover - trivial
        return self.message

    def reword(self, message: str) -> "CatPromError":
        """Replace the message (``str(e)`` and ``e.args`` follow); returns ``self`` for ``raise``."""
        self.message = message
        self.args = (message,)
        return self

    def with_source(self, source: str | None, sep: str = ": ") -> "CatPromError":
        """Prefix the file (or other source) the error is about, unless empty or already there."""
        if source and not self.message.startswith(source):
            self.reword(f"{source}{sep}{self.message}")
        return self


class InvalidBankError(CatPromError, ValueError):
    """An item bank file or parameter set is malformed or inconsistent."""

    code = "invalid-bank"


class InvalidDesignError(CatPromError, ValueError):
    """A CAT design document has an unknown key or a bad value."""

    code = "invalid-design"


class UnresolvedGoalError(InvalidDesignError):
    """A design's classification threshold is the patient's goal (``"threshold_t": "goal"``), not yet resolved.

    Resolve it with :func:`cat_prom.design.resolve_design` and the patient's acceptable T-score
    before a session or simulation runs the design.
    """

    code = "design-needs-goal"


class InvalidRulesError(CatPromError, ValueError):
    """An alert-rules document (certainty, MID, acceptable levels, rules) has an unknown key or a bad value."""

    code = "invalid-rules"


class InvalidGoalError(CatPromError, ValueError):
    """A goal, an acceptable level or a Goal Attainment Scaling rating is malformed (e.g. a level outside -2..+2)."""

    code = "invalid-goal"


class InvalidBatteryError(CatPromError, ValueError):
    """A battery file (several banks in one sitting) is malformed or names a bank that is not loaded."""

    code = "invalid-battery"


class InvalidDataError(CatPromError, ValueError):
    """An input data file (responses CSV, parameter CSV) is malformed."""

    code = "invalid-data"


class InvalidResponseError(CatPromError, ValueError):
    """An answer given to a session cannot be accepted."""

    code = "invalid-response"


class ValueOutOfRangeError(InvalidResponseError):
    """A response value is not one of the item's response options."""

    code = "value-out-of-range"


class UnknownItemError(InvalidResponseError, KeyError):
    """An item id is not in the bank."""

    code = "unknown-item"

    def __str__(self) -> str:  # KeyError would quote the message
        return self.message


class ItemNotOfferedError(InvalidResponseError):
    """An answer names an item the session is not currently offering."""

    code = "item-not-offered"


class ItemAlreadyAnsweredError(InvalidResponseError):
    """An answer names an item that was already answered or declined."""

    code = "item-already-answered"


class SessionFinishedError(CatPromError, RuntimeError):
    """The session has stopped; it takes no further answers."""

    code = "session-finished"


class CalibrationError(CatPromError, RuntimeError):
    """Item calibration could not be carried out on the data given."""

    code = "calibration-error"
