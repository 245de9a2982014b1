"""The shipped unhappy-customer rule set on sample mails, Italian and English: what each one
matches, and that ordinary questions (closing an account, a loss report, a refund policy
asked about in passing is still a refund) are left alone."""

from __future__ import annotations

import tomllib
from datetime import timedelta

import pytest

from mailbridge.adapters.templates import default_templates_dir
from mailbridge.core.rules import Facts, Rule, compile_rules, evaluate

pytestmark = pytest.mark.unit

RULES_FILE = default_templates_dir() / "rules" / "unhappy-customers.toml"


@pytest.fixture(scope="module")
def rules() -> tuple[Rule, ...]:
    return compile_rules(tomllib.loads(RULES_FILE.read_text(encoding="utf-8"))["rule"])


UNHAPPY = [
    # (subject, body, the rules that must match)
    ("Reclamo formale", "Con la presente sporgo reclamo per il bonifico sparito.", {"complaint"}),
    (
        "Servizio",
        "Il vostro servizio è vergognoso, sono tre giorni che la carta non va.",
        {"complaint"},
    ),
    ("Carta bloccata", "Sono stufa di aspettare. È inaccettabile!", {"complaint"}),
    ("Ordine 5521", "Sono molto deluso: il pacco è arrivato rotto.", {"complaint"}),
    ("Complaint", "I want to make a formal complaint about your branch staff.", {"complaint"}),
    (
        "Card declined again",
        "This is unacceptable. Terrible service from start to end.",
        {"complaint"},
    ),
    ("Order 88", "I'm fed up with the delays and very disappointed.", {"complaint"}),
    ("Reso", "Voglio il rimborso completo dell'ordine 4411.", {"refund"}),
    ("Addebito doppio", "Rivoglio i miei soldi: mi avete addebitato due volte.", {"refund"}),
    ("Refund please", "Please refund the double charge on my card.", {"refund"}),
    ("Broken kettle", "I want my money back, the kettle broke after a day.", {"refund"}),
    ("Conto", "Se non risolvete entro domani cambio banca.", {"churn-risk"}),
    ("Basta", "Non sarò più vostro cliente dopo questa storia.", {"churn-risk"}),
    ("Fees", "If this fee is not removed I am going to close my account.", {"churn-risk"}),
    ("Fees again", "I will take my business elsewhere, this is the last straw.", {"churn-risk"}),
    ("Sollecito", "È la terza volta che scrivo per lo stesso problema.", {"chaser"}),
    ("Ancora?", "Ancora nessuna risposta alla mia mail di lunedì.", {"chaser"}),
    ("Re: transfer", "Still no answer to my question from last week.", {"chaser"}),
    ("Third email", "This is the third time I'm writing about the same payment.", {"chaser"}),
    ("Bonifico", "Mi rivolgerò a un avvocato se il bonifico non torna.", {"legal"}),
    ("Conto bloccato", "Farò un esposto all'Arbitro Bancario Finanziario.", {"legal"}),
    ("Account frozen", "My solicitor will be in touch; I am considering legal action.", {"legal"}),
    ("Charges", "I will report you to the ombudsman and get a refund.", {"legal", "refund"}),
]

CONTENT = [
    ("Chiudere il conto", "Come posso chiudere il mio conto corrente?"),
    ("Close my account", "Hello, how do I close my account? I am moving abroad."),
    ("Carta smarrita", "Ho fatto denuncia di smarrimento, come blocco la carta?"),
    ("Orari", "A che ora apre la filiale di via Roma il sabato?"),
    ("Bonifico estero", "Quanto costa un bonifico verso la Germania?"),
    ("Password", "I forgot my online banking password, can you help?"),
    ("Delivery", "When will my order 7781 arrive? Thank you!"),
    ("Grazie", "Grazie mille, tutto risolto. Servizio ottimo."),
    ("New card", "Could you send me a new debit card? Mine expires next month."),
    ("Mutuo", "Vorrei informazioni sul mutuo a tasso fisso."),
    ("Address change", "I have moved: my new address is 4 Elm Street, Leeds."),
    ("Estratto conto", "Mi servirebbe l'estratto conto del 2025 per il commercialista."),
]


@pytest.mark.parametrize(
    ("subject", "body", "expected"), UNHAPPY, ids=[f"{s}:{b[:25]}" for s, b, _ in UNHAPPY]
)
def test_unhappy_mails_match_their_rules_and_raise_priority(
    rules: tuple[Rule, ...],
    subject: str,
    body: str,
    expected: set[str],
) -> None:
    decision = evaluate(rules, Facts(subject=subject, body=body))
    assert set(decision.actions.tags) == {"unhappy", *expected}
    assert decision.actions.priority in ("high", "urgent")
    assert decision.actions.respond_within is not None
    assert decision.actions.respond_within <= timedelta(hours=4)


@pytest.mark.parametrize(("subject", "body"), CONTENT, ids=[s for s, _ in CONTENT])
def test_ordinary_questions_match_nothing(rules: tuple[Rule, ...], subject: str, body: str) -> None:
    assert evaluate(rules, Facts(subject=subject, body=body)).matched == ()


def test_a_legal_threat_is_urgent_and_wants_an_answer_within_two_hours(
    rules: tuple[Rule, ...],
) -> None:
    decision = evaluate(rules, Facts(body="Il mio avvocato vi contatterà. Che vergogna."))
    assert decision.matched == ("unhappy: complaint", "unhappy: legal threat")
    assert decision.actions.priority == "urgent"
    assert decision.actions.respond_within == timedelta(hours=2)


def test_a_third_unanswered_follow_up_is_a_chaser_whatever_it_says(
    rules: tuple[Rule, ...],
) -> None:
    polite = Facts(body="Buongiorno, avete novità?", is_followup=True)
    assert evaluate(rules, polite).matched == ()
    third = Facts(body="Buongiorno, avete novità?", is_followup=True, customer_mails_unanswered=3)
    assert evaluate(rules, third).matched == ("unhappy: repeated chaser",)
