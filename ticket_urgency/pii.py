"""Masking of personal data (e-mail addresses and phone numbers) in text and log records.

Used by the prediction log (ticket text is masked before it is stored) and by the serving
API's logging (a :class:`PiiMaskingFilter` on the log handlers).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable

EMAIL_MASK = "[EMAIL]"
PHONE_MASK = "[PHONE]"

_EMAIL = re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)*\.[A-Za-z]{2,}\b")
# A phone-like run: optional +country, optional (area), 2-4 digit groups joined by one space,
# dot or dash; or a plain run of digits. The digit count decides (see _phone).
_PHONE = re.compile(
    r"(?<![\w.+/-])"
    r"(?:\+\d{1,3}[\s.-]?)?"
    r"(?:\(\d{1,4}\)[\s.-]?)?"
    r"\d{1,15}(?:[\s.-]\d{1,8}){0,5}"
    r"(?![\w/:-]|\.\d)"
)
_DATE = re.compile(r"\d{4}[-./]\d{1,2}[-./]\d{1,2}|\d{1,2}[-./]\d{1,2}[-./]\d{2,4}")
_ANY_DIGIT = re.compile(r"\d")
_IPV4 = re.compile(r"\d{1,3}(?:\.\d{1,3}){3}")


def _phone(match: re.Match[str]) -> str:
    text = match.group(0)
    digits = sum(ch.isdigit() for ch in text)
    plus_or_paren = text.startswith("+") or "(" in text
    separated = any(ch in " .-" for ch in text.strip())
    if _DATE.match(text) or _IPV4.fullmatch(text):
        return text
    if plus_or_paren and 7 <= digits <= 15:
        return PHONE_MASK
    if separated and 7 <= digits <= 15 and not text.replace(".", "").isdigit():
        return PHONE_MASK
    if separated and 7 <= digits <= 15 and text.count(".") >= 2:
        return PHONE_MASK  # 555.123.4567
    if not separated and 10 <= digits <= 15:
        return PHONE_MASK
    return text


def mask_pii(text: str) -> str:
    """Return ``text`` with e-mail addresses and phone numbers replaced by placeholders.

    Dates, IPv4 addresses, versions, short numbers and numbers of fewer than 7 digits are
    kept; a run of 10-15 digits without separators is treated as a phone number.

    Args:
        text: Any text.

    Returns:
        The masked text (``[EMAIL]``, ``[PHONE]``).
    """
    if len(text) < 6:  # shorter than any e-mail address ("a@b.cc") or phone number
        return text
    if "@" in text:
        text = _EMAIL.sub(EMAIL_MASK, text)
    if _has_seven_digits(text):
        text = _PHONE.sub(_phone, text)
    return text


def _has_seven_digits(text: str) -> bool:
    """True when ``text`` has at least 7 digits (no phone number has fewer)."""
    head = text[:1_000_000]
    if _ANY_DIGIT.search(head) is None:  # most text: one C-level scan
        return False
    if sum(map(head.count, "0123456789")) >= 7:  # ten C-level scans
        return True
    if head.isascii():
        return False
    return sum(ch.isdigit() for ch in head) >= 7  # other scripts' digits also match \d


class PiiMaskingFilter(logging.Filter):
    """A logging filter that masks e-mail addresses and phone numbers in every record."""

    def filter(self, record: logging.LogRecord) -> bool:
        """Render the message, mask it and keep the record."""
        try:
            message = record.getMessage()
        except Exception:  # a broken format string: leave it to the handler
            return True
        masked = mask_pii(message)
        if masked != message or record.args:
            record.msg, record.args = masked, ()
        return True


def install_log_masking(logger_names: Iterable[str] = ("", "uvicorn", "uvicorn.error")) -> None:
    """Add a :class:`PiiMaskingFilter` to the handlers of the named loggers (once each)."""
    for name in logger_names:
        for handler in logging.getLogger(name).handlers:
            if not any(isinstance(f, PiiMaskingFilter) for f in handler.filters):
                handler.addFilter(PiiMaskingFilter())
