"""Paraphrased customer questions for judging a paraphrase-aware FAQ matcher.

    python bench/faq_paraphrase.py    # checks the sets below and prints their sizes

Two labelled sets, in the shape of bench/faq_eval.py's QUESTIONS, over templates/faq:

- TUNING: one Italian and one English question per topic, plus questions no entry answers.
  Look at these while building and tuning a matcher.
- HELD_OUT: at least two questions per topic and language, plus questions that sound close
  to an entry but are not answered by it. Only report results on these: never read them to
  tune a matcher, or its score on them no longer says how it does on mail it has not seen.

A covered question shares no content-word stem with its topic's entries: `terms(question,
language)` has nothing in common with `terms(title + keywords + body, language)` of the
Italian entry nor of the English one, so word overlap alone cannot find the answer.
`check()` enforces this, the sizes, and that no question repeats across these sets and
bench/faq_eval.py.
"""

from __future__ import annotations

import sys
from collections import Counter
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench.faq_eval import QUESTIONS as EVAL_QUESTIONS  # noqa: E402
from mailbridge.core.faq import FaqEntry, parse_entry, terms  # noqa: E402

FAQ_DIR = REPO / "templates" / "faq"
LANGUAGES = ("it", "en")
MIN_WORDS, MAX_WORDS = 5, 25
HELD_OUT_MIN_PER_TOPIC = 2  # per topic and language
HELD_OUT_MIN_PER_LANGUAGE = 32
UNCOVERED = {"TUNING": 4, "HELD_OUT": 10}  # per language

Question = tuple[str, str, str | None]  # (question, language, topic or None)


def _asked(topic: str | None, it: list[str], en: list[str]) -> list[Question]:
    """The questions labelled with their language and topic (None: no entry answers them)."""
    return [(q, language, topic) for language, asked in (("it", it), ("en", en)) for q in asked]


# ruff: noqa: E501 - each question stays whole on one line, to read and grep
TUNING: list[Question] = [
    *_asked(
        "cancel-order",
        it=[
            "Ho cliccato compra per errore stamattina, potete bloccare tutto prima che esca dal magazzino?",
        ],
        en=[
            "I clicked buy twice by accident earlier, can you scrap the second one before it goes out?",
        ],
    ),
    *_asked(
        "card-blocked",
        it=[
            "Mi hanno scippato la borsa in metro e c'era dentro la Visa, che faccio?",
        ],
        en=[
            "Someone pinched my wallet on the bus and my Visa was in it, what now?",
        ],
    ),
    *_asked(
        "change-address",
        it=[
            "Adesso abito a Torino, come faccio a far arrivare i pacchi nella casa nuova?",
        ],
        en=[
            "We relocated to Leeds last week, how do I get parcels sent to our flat there instead?",
        ],
    ),
    *_asked(
        "change-iban",
        it=[
            "Sono passato a Fineco: dove indico gli estremi per farmi pagare la busta paga lì?",
        ],
        en=[
            "My wages should land in my Monzo from now on instead of Barclays, where do I put that?",
        ],
    ),
    *_asked(
        "close-account",
        it=[
            "Basta, me ne vado: come interrompo definitivamente il rapporto con voi e mi riprendo i risparmi?",
        ],
        en=[
            "I'm done with you guys, how do I end the relationship for good and take my savings elsewhere?",
        ],
    ),
    *_asked(
        "delivery-times",
        it=[
            "Ho comprato una lampada lunedì, in quanto si riceve di solito a Napoli?",
        ],
        en=[
            "Bought a lamp on Monday and it still isn't here, how long does it normally take to reach Milan?",
        ],
    ),
    *_asked(
        "invoice-copy",
        it=[
            "Il commercialista mi chiede il giustificativo della spesa per il portatile, dove lo trovo?",
        ],
        en=[
            "My accountant wants paperwork for the laptop I bought through the business, where can I find it?",
        ],
    ),
    *_asked(
        "refund",
        it=[
            "La giacca ve l'ho rimandata martedì scorso, quando mi tornano i quattrini?",
        ],
        en=[
            "You got the jacket I posted to you last Tuesday, so when does the cash land in my account?",
        ],
    ),
    *_asked(
        "reset-password",
        it=[
            "Non mi ricordo più la parola chiave dell'app e ora resto fuori, che faccio?",
        ],
        en=[
            "My mind's gone blank on the secret word for the app and now it won't let me in",
        ],
    ),
    *_asked(
        "return-item",
        it=[
            "Le sneakers sono piccole per mio figlio, come ve le rimando per averle più grandi?",
        ],
        en=[
            "The trainers are too small for my son, how do I get them to you and swap for bigger ones?",
        ],
    ),
    *_asked(
        "transfer-fees",
        it=[
            "Quanto mi tocca spendere per saldare l'affitto al padrone di casa in Svizzera in franchi?",
        ],
        en=[
            "What will it set me back to pay my landlord in Switzerland in francs?",
        ],
    ),
    *_asked(
        "two-factor",
        it=[
            "Ho preso un cellulare diverso e il messaggino con le cifre per confermare non arriva più",
        ],
        en=[
            "I switched to a Pixel and the one-time digits you message me never show up anymore",
        ],
    ),
    # not covered
    *_asked(
        None,
        it=[
            "Avete un negozio fisico a Firenze dove provare i vestiti?",
            "Quanto costa il canone mensile del conto premium?",
            "Posso pagare in contrassegno quando arriva il corriere?",
            "Fate sconti per gli studenti universitari sugli ordini online?",
        ],
        en=[
            "Can I pay cash to the courier on delivery?",
            "Do you offer gift wrapping for birthday presents?",
            "What's the monthly fee for the premium account?",
            "Is there a student discount on online orders?",
        ],
    ),
]

HELD_OUT: list[Question] = [
    *_asked(
        "cancel-order",
        it=[
            "Ho preso due volte lo stesso paio di cuffie, una la potete eliminare prima che me la mandiate?",
            "Ci ho ripensato, non mi serve più quella roba comprata ieri sera: si può fermare?",
            "Ho trovato lo stesso divano a meno altrove, come mi tiro indietro dalla compera di stamattina?",
        ],
        en=[
            "I accidentally paid for the same headphones twice, can one of them be scrapped before dispatch?",
            "Found the sofa cheaper elsewhere, can I back out of yesterday's buy before you send it?",
            "My kid went on a spree with my phone last night, please void everything he bought before it leaves",
        ],
    ),
    *_asked(
        "card-blocked",
        it=[
            "Ho digitato tre volte un codice segreto non corretto allo sportello e adesso la tessera non passa più",
            "Non trovo più il portafoglio da ieri sera, temo di averlo lasciato in taxi con la Mastercard",
            "Al supermercato la cassa dice che il pagamento è negato, come mai la mia prepagata è ferma?",
        ],
        en=[
            "I mistyped my secret number at the cash machine a few times and now it won't take my Amex",
            "Left my purse in a taxi last night with my Mastercard inside, can someone make sure nobody uses it?",
            "My Maestro gets rejected at every till since this morning, is there a hold on it?",
        ],
    ),
    *_asked(
        "change-address",
        it=[
            "Dal mese prossimo vivo in un'altra città, dove metto la via e il civico giusti?",
            "Le mie consegne devono andare in ufficio e non più a casa dei miei, si può sistemare?",
            "Ho lasciato l'appartamento di Bologna, il postino non mi troverà più lì: come sistemo?",
        ],
        en=[
            "I'm not living in Bristol any more, how do I fix where you send my stuff?",
            "My street and postcode on file are out of date since we relocated, how do I correct them?",
            "Packages should go to my work from now on, not my parents' place",
        ],
    ),
    *_asked(
        "change-iban",
        it=[
            "Vorrei che luce e gas venissero pagate dal mio libretto postale e non più da qui, come procedo?",
            "Dopo la fusione della mia banca ho un codice IT diverso, dove lo inserisco così i soldi arrivano lì?",
            "Passo a Intesa il mese prossimo, cosa serve perché rata del mutuo e affitto continuino a essere pagati?",
        ],
        en=[
            "Where do I put my Revolut sort code so that any money you owe me goes there rather than HSBC?",
            "I want my gym and phone bills to come out of my Nationwide instead of my Lloyds one, how?",
            "After the merger my lender says my IT60 code is different, where do I enter it so my pay arrives?",
        ],
    ),
    *_asked(
        "close-account",
        it=[
            "Mio padre non usa più i vostri servizi da anni, vorremmo eliminare la sua posizione del tutto",
            "Sono stufo delle vostre spese, da febbraio non voglio più essere vostro cliente: come si procede?",
            "Vado a vivere in Australia per sempre: come faccio a non lasciare nulla di aperto da voi?",
        ],
        en=[
            "My late mother was with you for forty years, what do we do to wind up everything in her name?",
            "Not happy with your service at all, I want to quit being your customer, what's the process?",
            "Emigrating to Canada next month, how do I wrap everything up with you so nothing stays active?",
        ],
    ),
    *_asked(
        "delivery-times",
        it=[
            "Sono passate due settimane e della mia roba nemmeno l'ombra, dov'è finita?",
            "Se compro oggi, riesco ad avere la merce a Lione per sabato?",
            "C'è un codice per seguire dove si trova la scatola che mi avete mandato?",
        ],
        en=[
            "It's been two weeks and my stuff is nowhere to be seen, what's going on?",
            "If I buy today, will it get to me in Lyon before the weekend?",
            "Is there a code so I can follow where the box you sent me is right now?",
        ],
    ),
    *_asked(
        "invoice-copy",
        it=[
            "Per il rimborso spese aziendali mi serve un pezzo di carta che dimostri quanto ho pagato",
            "La TV si è rotta dopo pochi mesi e l'assistenza vuole un attestato di quando l'ho comprata: dove lo recupero?",
            "Ho una ditta individuale: mi servono le carte contabili dell'ultima spesa per portarla in detrazione",
        ],
        en=[
            "My employer reimburses expenses but needs something showing what I paid for the headset",
            "The TV packed up after a few months and the repair shop wants to see when I bought it, where's that?",
            "I'm self-employed and need the accounts paperwork for last week's spend so I can claim it",
        ],
    ),
    *_asked(
        "refund",
        it=[
            "Il corriere ha ritirato la scatola una settimana fa ma sul mio estratto non vedo ancora nulla",
            "Mi avete scritto che l'articolo rispedito è stato accettato, in quanto tempo rientrano i miei euro?",
            "Quando mi ridate quello che ho speso per le scarpe rimandate indietro?",
        ],
        en=[
            "The courier collected the box a week ago but my statement still shows nothing",
            "You wrote that the jeans I sent were accepted, how long before I see those forty quid again?",
            "When do I see what I paid for the shoes that I posted to you?",
        ],
    ),
    *_asked(
        "reset-password",
        it=[
            "Ho cambiato la combinazione segreta mesi fa e adesso non me la ricordo più, come rientro?",
            "L'app continua a dirmi che i dati non sono corretti, ma la mail è giusta: credo di aver sbagliato la chiave",
            "Ho perso il foglietto dove mi ero segnato la chiave del vostro sito e non riesco più a rientrare",
        ],
        en=[
            "I changed my passcode months ago and have no idea what it is now, how do I get back in?",
            "Your site keeps telling me my details are incorrect, I'm pretty sure I've muddled up the secret phrase",
            "My keychain got wiped and I've no clue what I use to get into your website",
        ],
    ),
    *_asked(
        "return-item",
        it=[
            "Il frullatore è arrivato con il coperchio crepato, come ve lo faccio riavere?",
            "Ho ricevuto un maglione blu invece di quello verde, che faccio per mandarlo indietro?",
            "Il vestito non mi piace per niente dal vivo, entro quanto posso ridarvelo?",
        ],
        en=[
            "The box came without the charger and the screen has a crack, how do I ship it to you?",
            "You sent me a blue jumper but I picked the green one, what now?",
            "Don't love the dress now I've seen it in person, how long do I have to change my mind and post it to you?",
        ],
    ),
    *_asked(
        "transfer-fees",
        it=[
            "Mia figlia studia a Londra, quanto ci rimetto se le giro delle sterline ogni mese?",
            "Devo saldare un fornitore cinese in yuan: quanto mi prendete per l'operazione?",
            "Per girare duecento a mio cugino a Madrid c'è qualche spesa?",
        ],
        en=[
            "My daughter studies in London, what do you take off if I pay her rent in pounds every month?",
            "I have to settle a supplier in China in yuan, what's your cut on that?",
            "Is it gratis to pay 200 to my cousin in Madrid or do you take something?",
        ],
    ),
    *_asked(
        "two-factor",
        it=[
            "Mi hanno rubato lo smartphone e senza quello non riesco a confermare i bonifici, aiuto",
            "Come si imposta il doppio passaggio di conferma quando entro nel sito?",
            "Il messaggio con le cifre per entrare arriva ancora su una SIM che ho disdetto, come lo dirotto su quella attuale?",
        ],
        en=[
            "My mobile was nicked and now I can't authorise transfers without it",
            "How do I turn on the extra step where I confirm logins with a one-time key?",
            "The confirmation digits still go to a SIM I got rid of, how do I point them at my current one?",
        ],
    ),
    # not covered, though each sounds close to an entry
    *_asked(
        None,
        it=[
            "Posso modificare la taglia nell'ordine prima che venga spedito?",
            "Quanto costa farsi fare una carta sostitutiva dopo averla persa?",
            "Come faccio ad aprire un conto corrente da voi?",
            "Posso aggiungere un secondo indirizzo di spedizione per l'ufficio?",
            "Posso scegliere la consegna espressa pagando un supplemento?",
            "Invece del rimborso posso avere un buono da spendere sul sito?",
            "Come cambio l'indirizzo email con cui faccio il login?",
            "Posso disattivare l'autenticazione a due fattori, mi dà fastidio?",
            "Qual è il limite giornaliero per i bonifici dall'app?",
            "Posso avere un secondo IBAN sullo stesso conto?",
        ],
        en=[
            "Can I change the colour of the sofa on my order before it ships?",
            "What fee do you charge for a card replacement?",
            "How do I open an account with you?",
            "Can I add a second delivery address for my office?",
            "Can I pick the parcel up myself from your warehouse?",
            "Can I get store credit instead of a refund?",
            "How do I change the email address I log in with?",
            "Can I turn off two-factor authentication, it annoys me?",
            "What is the daily limit for transfers in the app?",
            "Can I close just my credit card and keep the account?",
        ],
    ),
]


def topic_of(file: str) -> str:
    return file.rsplit("-", 1)[0]


def _entries() -> dict[str, list[FaqEntry]]:
    by_topic: dict[str, list[FaqEntry]] = {}
    for path in sorted(FAQ_DIR.glob("*.md")):
        name = path.name.removesuffix(".md")
        entry = parse_entry(name, path.read_text(encoding="utf-8"))
        by_topic.setdefault(topic_of(name), []).append(entry)
    return by_topic


def _shared_stems(question: str, language: str, entries: list[FaqEntry]) -> set[str]:
    asked = set(terms(question, language))
    shared: set[str] = set()
    for entry in entries:
        text = " ".join((entry.title, *entry.keywords, entry.body))
        shared |= asked & set(terms(text, language))
    return shared


def _check_shape(name: str, questions: list[Question], topics: set[str]) -> None:
    for question, language, topic in questions:
        assert language in LANGUAGES, f"{name}: {question!r}: language {language!r}"
        assert topic is None or topic in topics, f"{name}: {question!r}: no topic {topic!r}"
        words = len(question.split())
        assert MIN_WORDS <= words <= MAX_WORDS, f"{name}: {question!r}: {words} words"


def _check_counts(name: str, questions: list[Question], topics: set[str]) -> None:
    counts = Counter((language, topic) for _, language, topic in questions)
    for language in LANGUAGES:
        uncovered, wanted = counts[language, None], UNCOVERED[name]
        assert uncovered == wanted, f"{name}: {uncovered} uncovered [{language}], not {wanted}"
        per_topic = {topic: counts[language, topic] for topic in sorted(topics)}
        if name == "TUNING":
            low = high = 1
        else:  # spread evenly: no topic more than one question ahead of another
            low, high = HELD_OUT_MIN_PER_TOPIC, min(per_topic.values()) + 1
        for topic, count in per_topic.items():
            assert low <= count <= high, f"{name}: {count} [{language}] questions on {topic}"
        total = sum(per_topic.values())
        if name == "HELD_OUT":
            assert total >= HELD_OUT_MIN_PER_LANGUAGE, f"{name}: {total} covered [{language}]"


def check() -> None:
    """AssertionError naming the first question that breaks a rule of the module docstring."""
    by_topic = _entries()
    topics = set(by_topic)
    seen: dict[str, str] = {
        " ".join(q.casefold().split()): "faq_eval" for q, _, _ in EVAL_QUESTIONS
    }
    for name, questions in (("TUNING", TUNING), ("HELD_OUT", HELD_OUT)):
        _check_shape(name, questions, topics)
        _check_counts(name, questions, topics)
        for question, language, topic in questions:
            key = " ".join(question.casefold().split())
            assert key not in seen, f"{name}: {question!r} repeats a question of {seen[key]}"
            seen[key] = name
            if topic is None:
                continue
            shared = _shared_stems(question, language, by_topic[topic])
            assert not shared, f"{name}: {question!r} shares {sorted(shared)} with {topic}"


def main() -> int:
    check()
    for name, questions in (("TUNING", TUNING), ("HELD_OUT", HELD_OUT)):
        counts = Counter((language, topic is not None) for _, language, topic in questions)
        sizes = ", ".join(
            f"{language}: {counts[language, True]} covered + {counts[language, False]} uncovered"
            for language in LANGUAGES
        )
        print(f"{name}: {len(questions)} questions ({sizes})")
    print("check passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
