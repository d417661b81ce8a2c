"""Clinician pages (sign-in, patient list, report): see :mod:`api.pages`."""
from __future__ import annotations

from flask import Blueprint

from .headers import page_headers

bp = Blueprint("clinic", __name__, template_folder="templates")
bp.after_request(page_headers)
