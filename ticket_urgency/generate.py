"""Synthetic support-ticket generator with controllable drift.

The generator produces realistic-looking support tickets (title, free-text
description, channel, customer tier) labelled with one of four urgency levels.
It is designed so that a text classifier can learn the label well but not
perfectly:

* every urgency level has many title / description templates with varied
  phrasing and slot values (products, features, error codes, numbers, names);
* vocabulary overlaps between classes (customers write "URGENT" on how-to
  questions, and calmly describe production outages), templates are sometimes
  borrowed from a neighbouring urgency level, and about 6 % of the labels are
  flipped (annotation noise);
* ``source`` and ``customer_tier`` shift the urgency a little (phone calls and
  Platinum customers are slightly more urgent);
* there are random typos, near-duplicate titles (``Re:`` / ``Fwd:`` / case
  changes), about 3 % empty descriptions and about 1 % very long descriptions
  with a pasted log or stack trace of 5-50 kB.

Drift scenarios (:data:`DRIFT_SCENARIOS`) only change the distribution of the
generated rows: ``source`` and ``tier`` shift the channel and tier mix, ``topic``
adds an outage wave about a new product (:data:`TOPIC_KEYWORDS`) with a more
urgent label mix, and ``all`` combines the three. :func:`generate_dataset`
applies the drift to the *new* batch only.

Everything is driven by :func:`numpy.random.default_rng`, so the same arguments
always give an identical :class:`pandas.DataFrame`. Template and slot choices
are vectorised; one million rows take a few seconds.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from functools import lru_cache
from typing import Final

import numpy as np
import numpy.typing as npt
import pandas as pd

__all__ = [
    "COLUMNS",
    "DRIFT_SCENARIOS",
    "LABELS",
    "SOURCES",
    "TIERS",
    "TOPIC_KEYWORDS",
    "generate_dataset",
    "generate_tickets",
]

DRIFT_SCENARIOS: tuple[str, ...] = ("none", "source", "tier", "topic", "all")
"""Supported drift scenarios, see :func:`generate_tickets`."""

SOURCES: tuple[str, ...] = ("email", "web", "chat", "phone", "api")
"""Channels a ticket can arrive through."""

TIERS: tuple[str, ...] = ("Free", "Bronze", "Silver", "Gold", "Platinum")
"""Customer subscription tiers, cheapest first."""

LABELS: tuple[str, ...] = ("low", "medium", "high", "critical")
"""Urgency labels, least urgent first."""

COLUMNS: tuple[str, ...] = (
    "ticket_id",
    "created_at",
    "title",
    "description",
    "source",
    "customer_tier",
    "label_urgency",
)
"""Column order of the generated frames."""

TOPIC_KEYWORDS: tuple[str, ...] = ("payments gateway", "SSO", "single sign-on")
"""Vocabulary that only appears in tickets of the ``topic`` drift wave.

Match it case-insensitively on word boundaries (``SSO`` is a whole word).
"""

# --------------------------------------------------------------------------- #
# Distributions
# --------------------------------------------------------------------------- #
_LABEL_TARGET: Final = np.array([0.35, 0.35, 0.20, 0.10])
_TOPIC_LABEL_TARGET: Final = np.array([0.08, 0.22, 0.38, 0.32])

_SOURCE_P: Final = np.array([0.34, 0.30, 0.16, 0.12, 0.08])
_SOURCE_P_DRIFT: Final = np.array([0.22, 0.18, 0.30, 0.08, 0.22])  # +28 points chat/api
_TIER_P: Final = np.array([0.30, 0.25, 0.22, 0.15, 0.08])
_TIER_P_DRIFT: Final = np.array([0.46, 0.12, 0.10, 0.12, 0.20])  # +28 points Free/Platinum
_TOPIC_SHARE: Final = 0.35

# Additive logit effects on (low, medium, high, critical).
_SOURCE_EFFECT: Final = np.array(
    [
        [0.00, 0.05, 0.00, -0.05],  # email
        [0.10, 0.05, -0.05, -0.20],  # web
        [0.00, 0.00, 0.05, 0.05],  # chat
        [-0.35, -0.10, 0.20, 0.45],  # phone
        [-0.10, 0.00, 0.10, 0.20],  # api
    ]
)
_TIER_EFFECT: Final = np.array(
    [
        [0.25, 0.05, -0.15, -0.30],  # Free
        [0.10, 0.05, -0.05, -0.10],  # Bronze
        [0.00, 0.00, 0.00, 0.00],  # Silver
        [-0.10, -0.05, 0.10, 0.15],  # Gold
        [-0.30, -0.10, 0.20, 0.40],  # Platinum
    ]
)

_LABEL_NOISE: Final = 0.06
_NEIGHBOUR_TITLE: Final = 0.16  # title template borrowed from an adjacent level
_NEIGHBOUR_CORE: Final = 0.16  # description core borrowed from an adjacent level
_NEIGHBOUR_IMPACT: Final = 0.22
_P_IMPACT: Final = 0.55
_P_EMPTY: Final = 0.03
_P_LONG_BY_LABEL: Final = np.array([0.004, 0.008, 0.015, 0.025])  # ~1 % overall
_P_TYPO_DESC: Final = 0.10
_P_TYPO_TITLE: Final = 0.05
_MEAN_GAP_S: Final = 120.0
_DEFAULT_START: Final = datetime(2024, 1, 1, tzinfo=UTC)

# --------------------------------------------------------------------------- #
# Slot values
# --------------------------------------------------------------------------- #
_SLOTS: Final = (
    "product",
    "feature",
    "error",
    "customer",
    "company",
    "n",
    "pct",
    "minutes",
    "version",
    "invoice",
    "env",
)

_PRODUCTS: Final = (
    "Helpdesk Pro",
    "the analytics dashboard",
    "the mobile app",
    "the billing portal",
    "the reporting API",
    "Inventory Sync",
    "email campaigns",
    "the admin console",
    "the chat widget",
    "the scheduler",
    "file storage",
    "search",
    "the notifications service",
    "the integrations hub",
    "the CRM connector",
    "the forms builder",
    "workflow automation",
    "the desktop client",
    "the data warehouse sync",
    "the customer portal",
)
_FEATURES: Final = (
    "CSV export",
    "dark mode",
    "bulk edit",
    "two-factor authentication",
    "user roles",
    "webhooks",
    "saved filters",
    "custom fields",
    "scheduled reports",
    "the audit log",
    "password reset",
    "invoice download",
    "API keys",
    "calendar sync",
    "attachments",
    "tagging",
    "dashboards",
    "search filters",
    "notification settings",
    "data import",
    "the Slack integration",
    "team permissions",
    "time zone settings",
    "PDF reports",
)
_ERROR_NAMES: Final = (
    "HTTP 500",
    "HTTP 502",
    "HTTP 503",
    "HTTP 504",
    "HTTP 429",
    "HTTP 403",
    "ERR_TIMEOUT",
    "ECONNRESET",
    "ECONNREFUSED",
    "DB_LOCK_TIMEOUT",
    "NullReferenceException",
    "OutOfMemoryError",
    "SSL_ERROR_SYSCALL",
    "QUOTA_EXCEEDED",
    "INVALID_STATE",
    "SYNC_CONFLICT",
)
_FIRST_NAMES: Final = (
    "Anna", "Ben", "Carla", "David", "Elena", "Farid", "Grace", "Hiro", "Ines", "Jonas",
    "Kemal", "Laura", "Mateo", "Nina", "Omar", "Priya", "Quentin", "Rosa", "Sven", "Tanya",
    "Umar", "Vera", "Wei", "Ximena", "Yusuf", "Zoe", "Lukas", "Mia", "Noah", "Olga",
)  # fmt: skip
_LAST_NAMES: Final = (
    "Schmidt", "Garcia", "Nguyen", "Okafor", "Rossi", "Kowalski", "Tanaka", "Dubois",
    "Silva", "Johansson", "Patel", "Murphy", "Novak", "Haddad", "Kim", "Fischer",
    "Lopez", "Andersen", "Ivanova", "Becker", "Costa", "Moreau", "Yilmaz", "Chen",
)  # fmt: skip
_COMPANIES: Final = (
    "Acme Retail", "Northwind Traders", "Blue Harbor Logistics", "Globex", "Initech",
    "Umbrella Health", "Stark Freight", "Wayne Foods", "Vandelay Imports", "Hooli",
    "Pied Piper", "Soylent Labs", "Tyrell Systems", "Cyberdyne Clinics", "Oceanic Air",
    "Monarch Realty", "Gringotts Finance", "Duff Beverages", "Kramerica", "Prestige Print",
    "Sunrise Dental", "Green Valley Farms", "Atlas Insurance", "Nimbus Studio",
)  # fmt: skip
_ENVS: Final = ("production", "prod", "staging", "our live site", "the EU instance", "the US site")

# --------------------------------------------------------------------------- #
# Templates. ``{slot}`` names are replaced by positional indices at import.
# Index 0..3 = low, medium, high, critical.
# --------------------------------------------------------------------------- #
_TITLES: Final[tuple[tuple[str, ...], ...]] = (
    (  # low
        "How do I change {feature}?",
        "Question about {feature}",
        "Feature request: {feature} in {product}",
        "Where can I find {feature}?",
        "Can we rename our workspace?",
        "Typo on the {product} settings page",
        "Request: add {feature} to {product}",
        "Small cosmetic issue in {product}",
        "How to export data from {product}",
        "Pricing question for {n} extra seats",
        "Documentation for {feature} is outdated",
        "Suggestion for {product}",
        "Is there a keyboard shortcut for {feature}?",
        "URGENT: how do I update our billing address?",
        "Urgent question about {feature} settings",
        "Update company name on invoice {invoice}",
        "Logo looks blurry in {product}",
        "Can I get a copy of invoice {invoice}?",
        "Need help setting up {feature}",
        "Onboarding question for a new colleague",
        "Translation mistake in {product}",
        "Request for a training session",
        "Change the default time zone",
        "Tooltip text is confusing in {product}",
        "Feedback on the new {product} design",
    ),
    (  # medium
        "{feature} not working as expected",
        "{product} is slow today",
        "Problem with {feature} in {product}",
        "{feature} shows wrong numbers",
        "Error {error} when using {feature}",
        "Sync issue with {product}",
        "{product}: some reports are missing",
        "Can't upload attachments in {product}",
        "Notifications arrive late",
        "{feature} fails for some users",
        "Intermittent {error} in {product}",
        "Wrong totals on invoice {invoice}",
        "Issue after updating to version {version}",
        "{product} keeps logging me out",
        "Filters reset when I reload {product}",
        "Data import skipped {n} rows",
        "Scheduled report did not arrive",
        "Problem with {feature} - please help",
        "Search in {product} returns old results",
        "Duplicate entries after {feature}",
        "Charts not loading in {product}",
        "Webhook retries failing with {error}",
        "Mobile app crashes when opening {feature}",
        "Urgent: {feature} broken for one user",
        "Calendar sync stopped working",
    ),
    (  # high
        "{product} not working for our team",
        "Cannot access {product}",
        "{error} errors across {product}",
        "Major issue with {feature} - many users affected",
        "{product} extremely slow, team blocked",
        "Data missing in {product} after update",
        "Login failures for {n} users",
        "Urgent: {feature} broken for all agents",
        "{product} down for part of our team",
        "Customers cannot complete orders",
        "Integration with {product} broken since {version}",
        "Wrong invoices sent to customers",
        "Exports failing with {error}",
        "Blocking issue with {feature}",
        "Important: {product} keeps failing",
        "High error rate on {env}",
        "{n} customers reporting {error}",
        "Our agents can't reply to tickets",
        "Emails not being delivered from {product}",
        "Permissions broken - users see wrong data",
        "{product} unusable since this morning",
        "API returning {error} for most requests",
        "Possible issue with {product}",
        "Need help quickly: {feature} failing",
        "Sync stopped, {n} records stuck",
    ),
    (  # critical
        "{product} is DOWN",
        "Production outage - {product} unavailable",
        "URGENT: complete outage on {env}",
        "All users locked out of {product}",
        "Data loss in {product}!!!",
        "Critical: {error} everywhere, nothing works",
        "Security incident - suspicious access",
        "Site down, losing revenue",
        "Entire team cannot work - {product} offline",
        "Customer data exposed to other tenants",
        "EMERGENCY: {product} deleted our records",
        "Outage: {error} on every request",
        "{env} is down for all customers",
        "Critical outage affecting {n} stores",
        "Our whole company is blocked",
        "Database corrupted after update to {version}",
        "Possible breach: API keys leaked",
        "Everything is failing since {minutes} minutes",
        "P1: {product} completely unavailable",
        "Question about {product} being unavailable",
        "Production problem with {product}",
        "Nobody can log in",
        "All orders failing since {version}",
        "Service outage - please call us",
        "Please check {product} asap",
    ),
)

_CORES: Final[tuple[tuple[str, ...], ...]] = (
    (  # low
        "I was wondering how to set up {feature} for our account.",
        "Could you tell me where the option for {feature} is in {product}?",
        "It would be great if {product} supported {feature}.",
        "We would like to change the company name shown on our invoices.",
        "There is a small typo on the settings page of {product}.",
        "Is it possible to get a copy of invoice {invoice} as a PDF?",
        "We are thinking about adding {n} seats and want to know the price.",
        "The documentation for {feature} still shows the old screenshots.",
        "Just a suggestion: the colour of the buttons in {product} is hard to read.",
        "Can you recommend a good way to organise {feature} for a team of {n}?",
        "A new colleague starts next week, how do I give her access to {product}?",
        "Marked as urgent by our internal process, but really it's just a question "
        "about how {feature} works.",
        "Everything works fine, I only want to understand the difference between the plans.",
        "The tooltip for {feature} is a bit confusing, maybe it could be reworded.",
        "I'd like to request a short training session on {product} for our team.",
        "Could you add an option to change the default time zone for {feature}?",
        "Our logo looks a bit blurry in {product}, is there a recommended size?",
        "How do I export all data from {product} to a spreadsheet?",
        "Is there an API endpoint for {feature}? Nothing critical, just planning.",
        "We noticed a translation mistake in the German version of {product}.",
        "Please update the billing contact to {customer}.",
        "When is {feature} coming to {product}? Our team keeps asking.",
    ),
    (  # medium
        "Since yesterday {feature} does not work as expected in {product}.",
        "{product} has been slower than usual today, pages take a few seconds to load.",
        "Some of our reports in {product} are missing data for the last {n} days.",
        "When I try to use {feature} I sometimes get {error}, but it works on retry.",
        "Attachments larger than a few MB fail to upload in {product}.",
        "Notifications from {product} arrive around {minutes} minutes late.",
        "{feature} fails for a couple of users in our team, others are fine.",
        "Invoice {invoice} shows the wrong total, we were charged for {n} seats.",
        "After updating to version {version}, {feature} behaves differently.",
        "{product} keeps logging me out every few minutes.",
        "The data import skipped {n} rows without any error message.",
        "Our scheduled report did not arrive this morning.",
        "Search in {product} returns results that are a few days old.",
        "We see duplicate entries after using {feature}.",
        "Charts in {product} do not load in Firefox, Chrome seems OK.",
        "Webhook deliveries fail with {error} about {pct}% of the time.",
        "The mobile app crashes when I open {feature}, there is a workaround via the web.",
        "One of our users cannot use {feature}, it's quite urgent for her.",
        "Calendar sync stopped working for my account, I have to add events by hand.",
        "Filters in {product} reset every time I reload the page, which is annoying.",
        "We can work around it for now, but {feature} should be fixed this week.",
        "The numbers in {feature} don't match the export, off by about {pct}%.",
    ),
    (  # high
        "{product} is not working for most of our team since this morning.",
        "We cannot access {product} at all, the page shows {error}.",
        "{feature} is broken for all our agents, they cannot do their work properly.",
        "After the last update data is missing in {product} for {n} of our customers.",
        "{n} users cannot log in and our support queue is growing.",
        "Our customers cannot complete orders, checkout fails with {error}.",
        "The integration with {product} has been broken since version {version}.",
        "Invoices with wrong amounts were sent to {n} of our customers.",
        "All exports fail with {error}, we need them for month-end closing.",
        "{product} is so slow that the team is effectively blocked.",
        "About {pct}% of API requests fail with {error} on {env}.",
        "Emails from {product} are not delivered to our customers.",
        "Users see data from other departments, permissions seem broken.",
        "The sync stopped and {n} records are stuck, our warehouse is waiting.",
        "Not sure how serious this is, but {product} has been failing for "
        "{minutes} minutes for many users.",
        "This is blocking our sales team, please look at it today.",
        "{product} has been unusable since this morning for the whole support floor.",
        "Our agents can't reply to tickets, replies fail with {error}.",
        "We have a deadline tomorrow and {feature} fails for everybody.",
        "Part of {env} returns {error}, roughly {pct}% of our users are affected.",
        "Orders are getting stuck in {product}, we have {n} pending already.",
        "Could someone have a look when possible: {feature} fails for most of the team.",
    ),
    (  # critical
        "{product} is completely down for all our users.",
        "We have a full outage on {env}, every request fails with {error}.",
        "Nobody in our company can log in to {product}.",
        "We lost data: records created in the last {minutes} minutes are gone.",
        "{error} on every single page, nothing works.",
        "We suspect a security incident, there were logins from unknown countries.",
        "Our site is down and we are losing revenue every minute.",
        "Customer data from another tenant is visible in our account.",
        "{product} deleted {n} records during the sync, this is an emergency.",
        "All {n} of our stores cannot process orders.",
        "The database looks corrupted after updating to version {version}.",
        "API keys were leaked in a public log, we need them revoked immediately.",
        "Production has been down for {minutes} minutes, please escalate.",
        "Hi, when you have a moment could you check {product}? It seems to be "
        "unavailable for all of our users since {minutes} minutes.",
        "Not sure if it's just us, but nobody can reach {product} on {env} right now.",
        "Our entire operation depends on {product} and it is offline.",
        "Every order has failed since the release of {version}.",
        "Please call us, the whole company is blocked by this outage.",
        "We are seeing {error} for 100% of requests, all customers affected.",
        "Patients cannot book appointments because {product} is down.",
        "It looks like {product} wiped our configuration, nothing loads.",
        "Payroll runs today and {product} is unavailable for everyone.",
    ),
)

_IMPACTS: Final[tuple[tuple[str, ...], ...]] = (
    (  # low
        "No rush, whenever you have time.",
        "This is not blocking anything.",
        "Just curious, nothing is broken.",
        "Low priority for us.",
        "It's only cosmetic.",
        "We can wait until the next release.",
        "Only affects me, and only a little.",
        "Not time-sensitive at all.",
    ),
    (  # medium
        "It affects a few people on the team.",
        "There is a workaround but it costs us time.",
        "Would be good to fix this week.",
        "Annoying but we can live with it for a few days.",
        "It happens a few times per day.",
        "Two or three colleagues reported the same.",
        "Not critical, but it is slowing us down.",
        "We'd appreciate a fix soon.",
    ),
    (  # high
        "About {n} users are affected.",
        "Most of the team is blocked.",
        "This is hurting our customers.",
        "We need a fix today.",
        "Our managers are escalating this internally.",
        "There is no workaround.",
        "It is affecting revenue.",
        "Please prioritise this.",
    ),
    (  # critical
        "Everyone is affected.",
        "We are losing money every minute.",
        "Our business is completely stopped.",
        "This is a P1 for us.",
        "Our CEO is asking for updates every 10 minutes.",
        "All customers are affected.",
        "We need someone on this immediately.",
        "This is the worst possible time, we are in peak season.",
    ),
)

# Topic drift wave: a new product (payments gateway) and SSO login failures.
_TOPIC_TITLES: Final[tuple[tuple[str, ...], ...]] = (
    (
        "Question about payments gateway fees",
        "How do I configure SSO with Okta?",
        "Documentation for the new payments gateway",
        "Can we enable single sign-on for {n} users?",
        "SSO setup question",
    ),
    (
        "Payments gateway webhook delayed",
        "Intermittent SSO redirect loop",
        "Some card payments declined by payments gateway",
        "SSO login slow for a few users",
        "Payments gateway report shows wrong totals",
    ),
    (
        "SSO login failures for part of our team",
        "Payments gateway timeouts on {pct}% of card payments",
        "Many users cannot sign in via SSO",
        "Payments gateway returns {error} for most payments",
        "Single sign-on broken after IdP change",
    ),
    (
        "Payments gateway outage - all checkouts failing",
        "SSO down - nobody can log in",
        "URGENT: payments gateway outage",
        "Single sign-on outage, whole company locked out",
        "Payments gateway down, losing revenue",
    ),
)
_TOPIC_CORES: Final[tuple[tuple[str, ...], ...]] = (
    (
        "We are evaluating the new payments gateway and want to understand the fees.",
        "How do I connect our Okta tenant for SSO? Nothing broken, just setting up.",
        "Is there documentation for the payments gateway refunds API?",
        "Could you enable single sign-on for our workspace next month?",
    ),
    (
        "Payments gateway webhooks arrive about {minutes} minutes late.",
        "A few users end up in an SSO redirect loop, clearing cookies helps.",
        "Some card payments are declined by the payments gateway without a reason.",
        "SSO login takes almost a minute for some colleagues.",
    ),
    (
        "Since this morning SSO login fails for about {pct}% of our team.",
        "The payments gateway times out for many card payments with {error}.",
        "Users cannot sign in via single sign-on after we rotated the certificate.",
        "Most payments through the payments gateway fail, customers are complaining.",
    ),
    (
        "The payments gateway is down, every checkout fails with {error}.",
        "SSO is completely down, nobody in the company can log in.",
        "Payments gateway outage: we cannot take any payments since {minutes} minutes.",
        "Single sign-on outage locks all {n} employees out of every tool.",
    ),
)

# Class-independent text.
_GREETINGS: Final = (
    "Hi,",
    "Hello,",
    "Hi team,",
    "Hello support,",
    "Dear support team,",
    "Good morning,",
    "Hey there,",
    "Hi {customer} here.",
    "To whom it may concern,",
    "Hello again,",
)
_SIGNOFFS: Final = (
    "Thanks,\n{customer}",
    "Best regards,\n{customer}\n{company}",
    "Cheers, {customer}",
    "Thank you!",
    "Sent from my iPhone",
    "-- {customer} ({company})",
    "Kind regards, {customer}",
    "Thanks in advance.",
)
_DETAILS: Final = (
    "Error code: {error}.",
    "We are on version {version}.",
    "Environment: {env}.",
    "Reference: invoice {invoice}.",
    "Browser: Chrome on Windows 11.",
    "Account: {company}.",
    "Screenshot attached.",
    "It started around {minutes} minutes ago.",
    "We have {n} users on our plan.",
    "Affected module: {product}.",
    "Using Safari on macOS.",
    "Our account manager is {customer}.",
)
_FILLERS: Final = (
    "I already tried clearing the cache.",
    "Let me know if you need more information.",
    "This is the second time I'm writing about this.",
    "Please advise.",
    "Our admin is on vacation this week.",
    "Please treat this as urgent.",
    "No rush on this one.",
    "I restarted the app but nothing changed.",
    "Could you please look into it?",
    "I couldn't find anything in the help center.",
    "We have been customers for {n} months.",
    "My colleague {customer} noticed it first.",
    "Happy to jump on a call.",
    "Thanks for the quick help last time.",
    "Please reply as soon as possible.",
    "Not sure if this is the right channel.",
    "I have attached a screenshot.",
    "This is important for us.",
    "Sorry for the long message.",
    "We are on the {env} environment.",
)
_SOURCE_PREFIXES: Final[tuple[tuple[str, ...], ...]] = (
    ("", "", "Fwd from our IT team:"),  # email
    ("[Submitted via web form]", "", "Category: Other."),  # web
    ("(chat transcript)", "Customer in chat:", "Chat started."),  # chat
    ("Customer called in.", "Caller reports:", "Phone call summary:"),  # phone
    ("Created via API integration.", "[auto-created]", "Ticket created by {company} helpdesk."),
)
_TITLE_PREFIXES: Final = ("Re: ", "RE: ", "Fwd: ", "FW: ", "[{company}] ", "Follow-up: ")
_TITLE_SUFFIXES: Final = (" (again)", " - follow up", "!!", "?", " - please help", " !!!", "...")
_LONG_HEADERS: Final = (
    "Full log below:",
    "Pasting the stack trace:",
    "Here is the output from our server:",
    "Logs attached inline:",
    "Console output:",
)

_SLOT_RE: Final = re.compile(r"\{\{(\w+)\}\}")
_TOPIC_RE: Final = re.compile(
    "|".join(rf"\b{re.escape(k)}\b" for k in TOPIC_KEYWORDS), flags=re.IGNORECASE
)


def _positional(template: str) -> str:
    """Convert ``{slot}`` placeholders to ``{index}`` and escape other braces."""
    escaped = template.replace("{", "{{").replace("}", "}}")
    return _SLOT_RE.sub(lambda m: "{" + str(_SLOTS.index(m.group(1))) + "}", escaped)


def _compile(pool: tuple[str, ...]) -> npt.NDArray[np.object_]:
    return np.array([_positional(t) for t in pool], dtype=object)


def _compile_by_label(pools: tuple[tuple[str, ...], ...]) -> list[npt.NDArray[np.object_]]:
    return [_compile(p) for p in pools]


_C_TITLES: Final = _compile_by_label(_TITLES)
_C_CORES: Final = _compile_by_label(_CORES)
_C_IMPACTS: Final = _compile_by_label(_IMPACTS)
_C_TOPIC_TITLES: Final = _compile_by_label(_TOPIC_TITLES)
_C_TOPIC_CORES: Final = _compile_by_label(_TOPIC_CORES)
_C_GREETINGS: Final = _compile(_GREETINGS)
_C_SIGNOFFS: Final = _compile(_SIGNOFFS)
_C_DETAILS: Final = _compile(_DETAILS)
_C_FILLERS: Final = _compile(_FILLERS)
_C_SOURCE_PREFIXES: Final = [_compile(p) for p in _SOURCE_PREFIXES]
_C_TITLE_PREFIXES: Final = _compile(_TITLE_PREFIXES)
_C_TITLE_SUFFIXES: Final = _compile(_TITLE_SUFFIXES)

_KEYBOARD_NEIGHBOURS: Final = {
    "a": "sqwz", "b": "vghn", "c": "xdfv", "d": "serfcx", "e": "wsdr", "f": "drtgvc",
    "g": "ftyhbv", "h": "gyujnb", "i": "ujko", "j": "huikmn", "k": "jiolm", "l": "kop",
    "m": "njk", "n": "bhjm", "o": "iklp", "p": "ol", "q": "wa", "r": "edft", "s": "awedxz",
    "t": "rfgy", "u": "yhji", "v": "cfgb", "w": "qase", "x": "zsdc", "y": "tghu", "z": "asx",
}  # fmt: skip


# --------------------------------------------------------------------------- #
# Helpers
# --------------------------------------------------------------------------- #
def _softmax(logits: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    z = np.exp(logits - logits.max(axis=-1, keepdims=True))
    out: npt.NDArray[np.float64] = z / z.sum(axis=-1, keepdims=True)
    return out


@lru_cache(maxsize=4)
def _label_table(topic: bool) -> npt.NDArray[np.float64]:
    """Return P(label | source, tier) with shape (sources, tiers, labels).

    The intercepts are calibrated so that, under the reference source and tier
    mix, the label marginal equals the target mix exactly.
    """
    target = _TOPIC_LABEL_TARGET if topic else _LABEL_TARGET
    effects = _SOURCE_EFFECT[:, None, :] + _TIER_EFFECT[None, :, :]
    weights = _SOURCE_P[:, None] * _TIER_P[None, :]
    intercept = np.log(target)
    for _ in range(200):
        probs = _softmax(intercept + effects)
        marginal = np.einsum("st,stk->k", weights, probs)
        intercept = intercept + np.log(target / marginal)
    table: npt.NDArray[np.float64] = _softmax(intercept + effects)
    return table


@lru_cache(maxsize=1)
def _error_pool() -> npt.NDArray[np.object_]:
    rng = np.random.default_rng(20240101)
    codes = [f"E{c}" for c in rng.choice(np.arange(1000, 10000), size=40, replace=False)]
    return np.array(list(_ERROR_NAMES) + codes, dtype=object)


@lru_cache(maxsize=1)
def _customer_pool() -> npt.NDArray[np.object_]:
    return np.array([f"{f} {la}" for f in _FIRST_NAMES for la in _LAST_NAMES], dtype=object)


@lru_cache(maxsize=1)
def _log_corpus() -> tuple[str, npt.NDArray[np.int64]]:
    """Build a deterministic ~250 kB log / stack-trace corpus and its line offsets."""
    rng = np.random.default_rng(7)
    errors = _error_pool()
    loggers = (
        "com.acme.sync.Worker",
        "com.acme.billing.InvoiceService",
        "com.acme.api.RequestHandler",
        "com.acme.db.ConnectionPool",
        "app.workers.export",
        "app.auth.session",
        "nginx.access",
        "kube.scheduler",
    )
    levels = ("INFO", "INFO", "INFO", "WARN", "ERROR", "DEBUG")
    frames = (
        "\tat com.acme.sync.Worker.run(Worker.java:{n})",
        "\tat com.acme.db.ConnectionPool.acquire(ConnectionPool.java:{n})",
        "\tat java.base/java.lang.Thread.run(Thread.java:{n})",
        "\tat org.springframework.web.servlet.FrameworkServlet.service(FrameworkServlet.java:{n})",
        '  File "/srv/app/workers/export.py", line {n}, in run',
        '  File "/usr/lib/python3.11/site-packages/sqlalchemy/engine/base.py", line {n}, in _exec',
        "    at Object.handler (/var/task/index.js:{n}:17)",
        "    at processTicksAndRejections (node:internal/process/task_queues:{n}:5)",
    )
    lines: list[str] = []
    total = 0
    t0 = np.datetime64("2024-01-01T00:00:00", "ms")
    step = 0
    while total < 250_000:
        kind = rng.random()
        if kind < 0.6:
            step += int(rng.integers(1, 5000))
            ts = np.datetime_as_string(t0 + np.timedelta64(step, "ms"), unit="ms")
            line = (
                f"{ts}Z {levels[rng.integers(len(levels))]} [worker-{rng.integers(1, 17)}] "
                f"{loggers[rng.integers(len(loggers))]} - "
                f"request_id={rng.integers(16**8):08x} latency_ms={rng.integers(1, 30000)} "
                f"status={errors[rng.integers(len(errors))]}"
            )
        elif kind < 0.95:
            line = frames[rng.integers(len(frames))].replace("{n}", str(rng.integers(10, 900)))
        else:
            line = f"Caused by: {errors[rng.integers(len(errors))]}: operation failed after retries"
        lines.append(line)
        total += len(line) + 1
    corpus = "\n".join(lines)
    offsets = np.cumsum([0] + [len(line) + 1 for line in lines[:-1]]).astype(np.int64)
    return corpus, offsets


def _pick(pool: npt.NDArray[np.object_], idx: npt.NDArray[np.int64]) -> list[str]:
    out: list[str] = pool[idx].tolist()
    return out


def _choose(
    rng: np.random.Generator, n: int, probs: npt.NDArray[np.float64]
) -> npt.NDArray[np.int64]:
    """Vectorised categorical draw with one probability vector for all rows."""
    cum = np.cumsum(probs)
    out: npt.NDArray[np.int64] = np.minimum(
        np.searchsorted(cum / cum[-1], rng.random(n), side="right"), len(probs) - 1
    ).astype(np.int64)
    return out


def _choose_rows(rng: np.random.Generator, probs: npt.NDArray[np.float64]) -> npt.NDArray[np.int64]:
    """Vectorised categorical draw with one probability vector per row."""
    cum = np.cumsum(probs, axis=1)
    u = rng.random((probs.shape[0], 1)) * cum[:, -1:]
    out: npt.NDArray[np.int64] = np.minimum((u >= cum).sum(axis=1), probs.shape[1] - 1)
    return out.astype(np.int64)


def _neighbour(
    rng: np.random.Generator, labels: npt.NDArray[np.int64], p: float
) -> npt.NDArray[np.int64]:
    """Move a fraction ``p`` of labels to an adjacent urgency level."""
    n = labels.shape[0]
    move = rng.random(n) < p
    step = np.where(rng.random(n) < 0.5, -1, 1)
    moved = labels + step
    moved = np.where(moved < 0, 1, moved)
    moved = np.where(moved > len(LABELS) - 1, len(LABELS) - 2, moved)
    out: npt.NDArray[np.int64] = np.where(move, moved, labels).astype(np.int64)
    return out


def _by_label(
    rng: np.random.Generator,
    pools: list[npt.NDArray[np.object_]],
    labels: npt.NDArray[np.int64],
) -> npt.NDArray[np.object_]:
    """Pick one template per row from the pool of that row's label."""
    out = np.empty(labels.shape[0], dtype=object)
    for k, pool in enumerate(pools):
        mask = labels == k
        out[mask] = pool[rng.integers(0, len(pool), int(mask.sum()))]
    return out


def _typo(text: str, r1: float, r2: float, r3: float) -> str:
    """Introduce one deterministic typo given three uniform numbers in [0, 1)."""
    if len(text) < 4:
        return text
    i = int(r1 * (len(text) - 2))
    ch = text[i]
    if not ch.isalpha():
        j = text.find(" ", i)
        i = j + 1 if 0 <= j < len(text) - 2 else i
        ch = text[i]
    if r2 < 0.3:  # swap with the next character
        return text[:i] + text[i + 1] + ch + text[i + 2 :]
    if r2 < 0.55:  # drop
        return text[:i] + text[i + 1 :]
    if r2 < 0.75:  # double
        return text[:i] + ch + text[i:]
    near = _KEYBOARD_NEIGHBOURS.get(ch.lower())
    if not near:
        return text[:i] + text[i + 1 :]
    return text[:i] + near[int(r3 * len(near))] + text[i + 1 :]


def _apply_typos(rng: np.random.Generator, texts: list[str], p: float, max_typos: int) -> list[str]:
    n = len(texts)
    count = np.where(rng.random(n) < p, rng.integers(1, max_typos + 1, n), 0)
    rows = np.flatnonzero(count)
    rand = rng.random((rows.shape[0], max_typos, 3))
    for r, row in enumerate(rows.tolist()):
        text = texts[row]
        for k in range(int(count[row])):
            text = _typo(text, float(rand[r, k, 0]), float(rand[r, k, 1]), float(rand[r, k, 2]))
        # A typo must never create drift vocabulary (e.g. "so" -> "sso").
        if _TOPIC_RE.search(text) is None or _TOPIC_RE.search(texts[row]) is not None:
            texts[row] = text
    return texts


def _to_utc_naive(start: datetime | None) -> np.datetime64:
    if start is None:
        start = _DEFAULT_START
    if start.tzinfo is not None:
        start = start.astimezone(UTC).replace(tzinfo=None)
    return np.datetime64(start.replace(microsecond=0), "s")


def _derive_seed(seed: int, stream: int) -> int:
    return int(np.random.SeedSequence(seed, spawn_key=(stream,)).generate_state(1, np.uint64)[0])


# --------------------------------------------------------------------------- #
# Public API
# --------------------------------------------------------------------------- #
def generate_tickets(
    rows: int,
    *,
    seed: int = 0,
    drift: str = "none",
    start: datetime | None = None,
    id_prefix: str = "T",
) -> pd.DataFrame:
    """Generate a batch of synthetic, labelled support tickets.

    Args:
        rows: Number of tickets to generate (``>= 0``).
        seed: Non-negative seed of the random generator; the same arguments always
            produce an identical frame.
        drift: One of :data:`DRIFT_SCENARIOS`. ``"none"`` draws from the reference
            distribution, ``"source"`` shifts the channel mix (about +28 points
            to chat/api), ``"tier"`` shifts the tier mix (about +28 points to
            Free/Platinum), ``"topic"`` turns about 35 % of the tickets into an
            outage wave about :data:`TOPIC_KEYWORDS` with a more urgent label mix,
            and ``"all"`` combines the three.
        start: Time the batch starts at; tickets are created strictly after it
            with strictly increasing, second-resolution timestamps (about two
            minutes apart on average). Naive datetimes are read as UTC. Defaults
            to 2024-01-01T00:00:00Z.
        id_prefix: Prefix of ``ticket_id``. Ids look like ``"{id_prefix}-{token}-{i}"``
            where ``token`` is a hex digest of ``seed`` and ``i`` the 1-based,
            zero-padded row number, so batches with different seeds or prefixes
            never collide.

    Returns:
        A frame with the columns of :data:`COLUMNS`: ``ticket_id``, ``created_at``
        (ISO 8601 UTC string such as ``"2024-01-01T00:02:13Z"``), ``title``,
        ``description`` (may be empty), ``source`` (one of :data:`SOURCES`),
        ``customer_tier`` (one of :data:`TIERS`) and ``label_urgency`` (one of
        :data:`LABELS`).

    Raises:
        ValueError: If ``rows`` or ``seed`` is negative or ``drift`` is unknown.
    """
    if rows < 0:
        raise ValueError(f"rows must be >= 0, got {rows}")
    if seed < 0:
        raise ValueError(f"seed must be >= 0, got {seed}")
    if drift not in DRIFT_SCENARIOS:
        raise ValueError(f"unknown drift {drift!r}; expected one of {DRIFT_SCENARIOS}")
    n = int(rows)
    rng = np.random.default_rng(seed)

    # --- structured columns and labels ------------------------------------- #
    source_p = _SOURCE_P_DRIFT if drift in ("source", "all") else _SOURCE_P
    tier_p = _TIER_P_DRIFT if drift in ("tier", "all") else _TIER_P
    source = _choose(rng, n, source_p)
    tier = _choose(rng, n, tier_p)
    topic_share = _TOPIC_SHARE if drift in ("topic", "all") else 0.0
    is_topic = rng.random(n) < topic_share
    label_probs = np.where(
        is_topic[:, None], _label_table(True)[source, tier], _label_table(False)[source, tier]
    )
    true_label = _choose_rows(rng, label_probs)

    # Annotation noise: mostly an adjacent level, sometimes any other level.
    noisy = rng.random(n) < _LABEL_NOISE
    label = _neighbour(rng, true_label, 1.0)
    far = rng.random(n) < 0.3
    other = (true_label + rng.integers(1, len(LABELS), n)) % len(LABELS)
    label = np.where(noisy, np.where(far, other, label), true_label).astype(np.int64)

    # --- slot values ------------------------------------------------------- #
    errors = _error_pool()
    customers = _customer_pool()
    version = [
        f"{a}.{b}.{c}"
        for a, b, c in zip(
            rng.integers(2, 6, n).tolist(),
            rng.integers(0, 20, n).tolist(),
            rng.integers(0, 10, n).tolist(),
            strict=True,
        )
    ]
    slot_cols: list[list[str]] = [
        _pick(np.array(_PRODUCTS, dtype=object), rng.integers(0, len(_PRODUCTS), n)),
        _pick(np.array(_FEATURES, dtype=object), rng.integers(0, len(_FEATURES), n)),
        _pick(errors, rng.integers(0, len(errors), n)),
        _pick(customers, rng.integers(0, len(customers), n)),
        _pick(np.array(_COMPANIES, dtype=object), rng.integers(0, len(_COMPANIES), n)),
        np.maximum(rng.geometric(0.03, n), 2).astype(str).tolist(),
        rng.integers(2, 100, n).astype(str).tolist(),
        (5 * rng.integers(1, 49, n)).astype(str).tolist(),
        version,
        [f"INV-{v:06d}" for v in rng.integers(0, 1_000_000, n).tolist()],
        _pick(np.array(_ENVS, dtype=object), rng.integers(0, len(_ENVS), n)),
    ]
    slots = list(zip(*slot_cols, strict=True)) if n else []

    # --- titles ------------------------------------------------------------ #
    title_label = _neighbour(rng, true_label, _NEIGHBOUR_TITLE)
    title_tpl = _by_label(rng, _C_TITLES, title_label)
    if is_topic.any():
        topic_idx = np.flatnonzero(is_topic)
        topic_label = true_label[topic_idx]
        title_tpl[topic_idx] = _by_label(rng, _C_TOPIC_TITLES, topic_label)
    titles = [t.format(*s) for t, s in zip(title_tpl.tolist(), slots, strict=True)]
    variant = rng.random(n)
    pre = _pick(_C_TITLE_PREFIXES, rng.integers(0, len(_C_TITLE_PREFIXES), n))
    suf = _pick(_C_TITLE_SUFFIXES, rng.integers(0, len(_C_TITLE_SUFFIXES), n))
    for i in np.flatnonzero(variant < 0.25).tolist():
        v = variant[i]
        t = titles[i]
        if v < 0.07:
            t = pre[i].format(*slots[i]) + t
        elif v < 0.14:
            t = t.rstrip("?!.") + suf[i]
        elif v < 0.21:
            t = t.lower()
        elif v < 0.225:
            t = t.upper()
        else:
            t = t[:1].lower() + t[1:]
        titles[i] = t
    titles = _apply_typos(rng, titles, _P_TYPO_TITLE, 1)

    # --- descriptions ------------------------------------------------------ #
    core_label = _neighbour(rng, true_label, _NEIGHBOUR_CORE)
    core_tpl = _by_label(rng, _C_CORES, core_label)
    if is_topic.any():
        topic_idx = np.flatnonzero(is_topic)
        core_tpl[topic_idx] = _by_label(rng, _C_TOPIC_CORES, true_label[topic_idx])
    impact_label = _neighbour(rng, true_label, _NEIGHBOUR_IMPACT)
    impact_tpl = _by_label(rng, _C_IMPACTS, impact_label)
    impact_tpl[rng.random(n) >= _P_IMPACT] = ""

    def optional(pool: npt.NDArray[np.object_], p: float) -> npt.NDArray[np.object_]:
        picked = pool[rng.integers(0, len(pool), n)]
        picked[rng.random(n) >= p] = ""
        return picked

    greeting = optional(_C_GREETINGS, 0.55)
    prefix = np.empty(n, dtype=object)
    prefix_pick = rng.integers(0, 3, n)
    for k, pool in enumerate(_C_SOURCE_PREFIXES):
        mask = source == k
        prefix[mask] = pool[prefix_pick[mask]]
    prefix[rng.random(n) >= 0.4] = ""
    detail = optional(_C_DETAILS, 0.5)
    filler1 = optional(_C_FILLERS, 0.5)
    filler2 = optional(_C_FILLERS, 0.2)
    signoff = optional(_C_SIGNOFFS, 0.45)
    chat = source == SOURCES.index("chat")
    greeting[chat & (rng.random(n) < 0.7)] = ""
    signoff[chat & (rng.random(n) < 0.8)] = ""

    # Shuffle the order of the body sentences a little.
    swap = rng.random(n) < 0.35
    first = np.where(swap, impact_tpl, core_tpl)
    second = np.where(swap, core_tpl, impact_tpl)
    body_templates = zip(
        prefix.tolist(),
        greeting.tolist(),
        first.tolist(),
        second.tolist(),
        filler1.tolist(),
        detail.tolist(),
        filler2.tolist(),
        strict=True,
    )
    bodies = [
        " ".join([p for p in parts if p]).format(*s)
        for parts, s in zip(body_templates, slots, strict=True)
    ]
    bodies = _apply_typos(rng, bodies, _P_TYPO_DESC, 3)
    signoffs = [t.format(*s) if t else "" for t, s in zip(signoff.tolist(), slots, strict=True)]
    descriptions = [b + "\n\n" + so if so else b for b, so in zip(bodies, signoffs, strict=True)]
    lower = (chat & (rng.random(n) < 0.5)).nonzero()[0].tolist()
    for i in lower:
        descriptions[i] = descriptions[i].lower()

    # Very long descriptions (pasted logs) and empty ones.
    long_rows = np.flatnonzero(rng.random(n) < _P_LONG_BY_LABEL[true_label])
    if long_rows.size:
        corpus, offsets = _log_corpus()
        lengths = rng.integers(5_000, 49_001, long_rows.size)
        max_line = int(np.searchsorted(offsets, len(corpus) - 51_000))
        starts = offsets[rng.integers(0, max_line, long_rows.size)]
        headers = rng.integers(0, len(_LONG_HEADERS), long_rows.size)
        for row, s, length, h in zip(
            long_rows.tolist(), starts.tolist(), lengths.tolist(), headers.tolist(), strict=True
        ):
            end = corpus.find("\n", s + length)
            log = corpus[s : end if end >= 0 else len(corpus)]
            descriptions[row] = f"{descriptions[row]}\n\n{_LONG_HEADERS[h]}\n{log}"
    empty = rng.random(n) < _P_EMPTY
    if long_rows.size:
        empty[long_rows] = False
    for i in np.flatnonzero(empty).tolist():
        descriptions[i] = ""

    # --- ids and timestamps ------------------------------------------------ #
    gaps = 1 + np.floor(rng.exponential(_MEAN_GAP_S - 0.5, n)).astype(np.int64)
    times = _to_utc_naive(start) + np.cumsum(gaps).astype("timedelta64[s]")
    created_at = np.datetime_as_string(times, unit="s", timezone="UTC").tolist() if n else []
    token = f"{np.random.SeedSequence(seed).generate_state(1)[0]:08x}"
    width = max(7, len(str(n)))
    ticket_ids = [f"{id_prefix}-{token}-{i:0{width}d}" for i in range(1, n + 1)]

    label_names = np.array(LABELS, dtype=object)
    return pd.DataFrame(
        {
            "ticket_id": ticket_ids,
            "created_at": created_at,
            "title": titles,
            "description": descriptions,
            "source": np.array(SOURCES, dtype=object)[source],
            "customer_tier": np.array(TIERS, dtype=object)[tier],
            "label_urgency": label_names[label],
        },
        columns=list(COLUMNS),
    )


def generate_dataset(
    rows: int = 3000,
    new_rows: int = 1000,
    *,
    drift: str = "none",
    seed: int = 0,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Generate a reference batch and a later, possibly drifted, new batch.

    The two batches use different seeds derived from ``seed``; reference ids
    start with ``"R-"`` and new ids with ``"N-"``. The new batch starts right
    after the last reference ticket, so every new ``created_at`` is later than
    every reference one.

    Args:
        rows: Number of reference tickets (always drawn without drift).
        new_rows: Number of new tickets.
        drift: Drift scenario applied to the new batch only, one of
            :data:`DRIFT_SCENARIOS`.
        seed: Non-negative base seed.

    Returns:
        ``(reference, new)`` frames with the columns of :data:`COLUMNS`.

    Raises:
        ValueError: If a size or the seed is negative or ``drift`` is unknown.
    """
    if drift not in DRIFT_SCENARIOS:
        raise ValueError(f"unknown drift {drift!r}; expected one of {DRIFT_SCENARIOS}")
    if seed < 0:
        raise ValueError(f"seed must be >= 0, got {seed}")
    reference = generate_tickets(rows, seed=_derive_seed(seed, 0), drift="none", id_prefix="R")
    if len(reference):
        last = pd.Timestamp(reference["created_at"].iloc[-1]).to_pydatetime()
    else:
        last = _DEFAULT_START
    new = generate_tickets(
        new_rows, seed=_derive_seed(seed, 1), drift=drift, start=last, id_prefix="N"
    )
    return reference, new
