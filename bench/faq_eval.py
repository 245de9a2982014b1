"""How well the FAQ matcher answers real questions, on the example FAQ folder.

    python bench/faq_eval.py

Ranks each labelled question below against templates/faq and prints precision@1 on the
questions the FAQ covers (the best suggestion is the right topic) and the share of
questions it does not cover that still get a suggestion, then every miss. Exits 1 below
the target: precision@1 >= 0.8 and at most 10% wrong suggestions on uncovered questions.
"""

from __future__ import annotations

import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from mailbridge.core.faq import FaqIndex, parse_entry, rank_mail  # noqa: E402

FAQ_DIR = REPO / "templates" / "faq"
MIN_PRECISION = 0.8
MAX_WRONG_UNCOVERED = 0.10

# (question, language, topic): topic is the FAQ file name without its "-it"/"-en" ending,
# None when no entry answers the question.
QUESTIONS: list[tuple[str, str, str | None]] = [
    # close-account
    ("Vorrei estinguere il mio conto corrente, come devo fare?", "it", "close-account"),
    ("Non uso più la vostra banca e voglio chiudere tutto", "it", "close-account"),
    ("Come posso recedere dal contratto del conto?", "it", "close-account"),
    ("I'd like to shut down my account for good", "en", "close-account"),
    ("How can I terminate my banking relationship with you?", "en", "close-account"),
    ("Please delete my account, I am moving to another bank", "en", "close-account"),
    # reset-password
    ("Non riesco più ad entrare nell'app, ho scordato le credenziali", "it", "reset-password"),
    ("Come recupero l'accesso se non ricordo la password?", "it", "reset-password"),
    ("I can't log in, I don't remember my password", "en", "reset-password"),
    ("I'm locked out of my account, how do I reset my login?", "en", "reset-password"),
    # change-address
    ("Mi sono trasferito, come aggiorno la residenza?", "it", "change-address"),
    ("Devo modificare dove mi spedite i pacchi", "it", "change-address"),
    ("I moved house last month, how do I update my details?", "en", "change-address"),
    ("Can I ship my orders to my office instead of home?", "en", "change-address"),
    # card-blocked
    ("Mi hanno rubato il portafoglio con il bancomat dentro", "it", "card-blocked"),
    ("Ho sbagliato il PIN tre volte e ora non funziona più", "it", "card-blocked"),
    ("Ho smarrito la carta di credito, cosa faccio?", "it", "card-blocked"),
    ("My debit card was stolen yesterday, what should I do?", "en", "card-blocked"),
    ("I entered the wrong PIN three times and my card stopped working", "en", "card-blocked"),
    ("I think I lost my card on the train", "en", "card-blocked"),
    # refund
    ("Ho rispedito il pacco due settimane fa ma non ho ancora visto i soldi", "it", "refund"),
    ("Dopo quanti giorni mi riaccreditate l'importo del reso?", "it", "refund"),
    ("I sent the parcel back but I haven't had my money back yet", "en", "refund"),
    ("How long does a reimbursement take to show on my card?", "en", "refund"),
    # return-item
    ("Le scarpe sono della taglia sbagliata, posso renderle?", "it", "return-item"),
    ("L'articolo è arrivato difettoso, come lo rimando indietro?", "it", "return-item"),
    ("The jacket doesn't fit, can I send it back?", "en", "return-item"),
    ("The blender arrived damaged, how do I get a prepaid label?", "en", "return-item"),
    # delivery-times
    ("Quanto ci mette ad arrivare un pacco in Germania?", "it", "delivery-times"),
    ("Il mio ordine non è ancora arrivato, il corriere è in ritardo", "it", "delivery-times"),
    ("How many days does shipping take to Italy?", "en", "delivery-times"),
    ("My package still hasn't arrived, where is it? I need the tracking", "en", "delivery-times"),
    # invoice-copy
    ("Mi serve la ricevuta dell'acquisto per la garanzia", "it", "invoice-copy"),
    ("Potete intestare la fattura alla mia azienda con partita IVA?", "it", "invoice-copy"),
    ("Where can I download a receipt for my purchase?", "en", "invoice-copy"),
    ("I need a VAT bill for my company for last month's order", "en", "invoice-copy"),
    # change-iban
    ("Ho aperto un nuovo conto, dove inserisco le nuove coordinate bancarie?", "it", "change-iban"),
    ("Come sposto lo stipendio e le domiciliazioni su un'altra banca?", "it", "change-iban"),
    ("I have new bank details, where do I update them for refunds?", "en", "change-iban"),
    ("How do I move my direct debits to a different account number?", "en", "change-iban"),
    # two-factor
    ("Ho cambiato telefono e non mi arriva più il codice via SMS", "it", "two-factor"),
    ("Come attivo la verifica in due passaggi con l'OTP?", "it", "two-factor"),
    ("I got a new phone and no longer receive the verification code", "en", "two-factor"),
    ("How do I set up 2FA with an authenticator app?", "en", "two-factor"),
    # cancel-order
    ("Ho ordinato per sbaglio, posso annullare l'acquisto?", "it", "cancel-order"),
    ("Vorrei disdire l'ordine di ieri prima che parta", "it", "cancel-order"),
    ("I changed my mind, please cancel my purchase from this morning", "en", "cancel-order"),
    ("Can I stop an order before it ships?", "en", "cancel-order"),
    # transfer-fees
    ("Quanto costa mandare soldi negli Stati Uniti?", "it", "transfer-fees"),
    ("Che commissioni ci sono per un bonifico in dollari?", "it", "transfer-fees"),
    ("How much do you charge to wire money abroad?", "en", "transfer-fees"),
    ("What does a SWIFT payment to the UK cost, and which exchange rate?", "en", "transfer-fees"),
    # not covered
    ("Quali sono gli orari di apertura della filiale di Milano?", "it", None),
    ("Offrite mutui per la prima casa?", "it", None),
    ("Vorrei aprire un conto cointestato con mia moglie", "it", None),
    ("Avete lavoro disponibile nel vostro magazzino?", "it", None),
    ("Posso pagare a rate con Klarna?", "it", None),
    ("Il sito è lentissimo oggi, avete problemi tecnici?", "it", None),
    ("Quanto rende il vostro conto deposito vincolato?", "it", None),
    ("Vendete anche elettrodomestici da incasso?", "it", None),
    ("Do you offer student loans or mortgages?", "en", None),
    ("What are your branch opening hours on Saturday?", "en", None),
    ("Can I open a joint savings account for my children?", "en", None),
    ("Are you hiring customer service staff?", "en", None),
    ("Do you have a loyalty programme with points?", "en", None),
    ("Is the black dress available in size 42?", "en", None),
    ("What interest rate do you pay on savings?", "en", None),
    ("Can I invest in stocks and ETFs through your app?", "en", None),
    ("Your website looks great, keep up the good work", "en", None),
    ("Do you sponsor local football clubs?", "en", None),
]


def topic(file: str) -> str:
    return file.rsplit("-", 1)[0]


def main() -> int:
    index = FaqIndex.build(
        parse_entry(p.name.removesuffix(".md"), p.read_text(encoding="utf-8"))
        for p in sorted(FAQ_DIR.glob("*.md"))
    )
    covered = [q for q in QUESTIONS if q[2] is not None]
    uncovered = [q for q in QUESTIONS if q[2] is None]
    hits = wrong = 0
    misses: list[str] = []
    for question, language, expected in QUESTIONS:
        matches = rank_mail(index, "", question, language)  # as a mail is ranked
        best = matches[0] if matches else None
        got = topic(best.entry.file) if best else None
        if expected is not None and got == expected:
            hits += 1
        elif expected is None and got is not None:
            wrong += 1
        if got != expected:
            score = f"{best.score:.2f}" if best else "-"
            misses.append(f"  [{language}] {question!r}: expected {expected}, got {got} ({score})")
    precision = hits / len(covered)
    wrong_rate = wrong / len(uncovered)
    print(f"{len(QUESTIONS)} questions, {len(index.entries)} FAQ entries")
    print(f"precision@1 on {len(covered)} covered questions: {precision:.2f}")
    print(f"wrong suggestions on {len(uncovered)} uncovered questions: {wrong_rate:.0%}")
    if misses:
        print("misses:")
        print("\n".join(misses))
    ok = precision >= MIN_PRECISION and wrong_rate <= MAX_WRONG_UNCOVERED
    print("target met" if ok else "BELOW TARGET")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
