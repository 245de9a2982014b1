"""A concept lexicon for FAQ matching (`[faq] semantic = "lexicon"`): customer-service
words of Italian and English grouped by what they mean, so "shut down my profile",
"estinguere il conto" and "close your account" meet on the same concepts even when they
share no word. Each line is one concept: its name, then its words in either language;
`a+b` is a phrase, its words next to each other once stop words are gone. Words are
written folded (lower case, no accents) and are stemmed like the text they meet.

Written from the vocabulary of support mail, not from any one FAQ: an entry about
something not listed here is matched by its words, as without the lexicon.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

from mailbridge.core.faq_terms import (
    STEMMERS,
    STOP_WORDS,
    content_words,
    fold,
    languages_of,
    stem,
)

LEXICON = """
account: account accounts profile profilo conto conti rapporto relationship membership
  iscrizione abbonamento subscription registrazione registration utenza
close: close closing closure terminate termination cancel+account delete+account delete
  deletion erase deactivate deactivation shut+down unsubscribe quit leave leaving
  end+relationship chiudere chiusura chiudo estinguere estinzione recedere recesso
  cancellare cancellazione eliminare eliminazione disattivare disattivazione interrompere
  andarmene abbandonare lasciare
bank: bank banks banking banca banche bancario istituto fineco monzo barclays revolut
  hsbc lloyds natwest santander intesa unicredit bbva n26 ing
card: card cards visa mastercard amex maestro bancomat debit+card credit+card carta carte
  prepagata postepay contactless
steal: stolen steal stole theft thief thieves pinched nicked robbed robbery mugged
  pickpocket pickpocketed swiped snatched rubata rubato rubati rubare furto ladro ladri
  scippato scippata scippo borseggio borseggiato borseggiatore derubato derubata
lose: lost lose losing misplaced mislaid persa perso perdere smarrita smarrito
  smarrimento smarrire
wallet: wallet purse handbag bag backpack portafoglio portafogli borsa borsetta zaino
block: block blocked blocking freeze frozen disable disabled suspend unblock lock+card
  stop+card bloccare bloccata bloccato blocco blocca sospendere congelare sbloccare
pin: pin pin+code codice+pin
declined: declined rejected refused rifiutata rifiutato respinta respinto negata
password: password passwords passcode passphrase secret+word login+details credentials
  credenziali parola+chiave parola+ordine chiave+accesso pwd
forget: forgot forget forgotten remember blank scordato scordata scordare dimenticato
  dimenticata dimenticare ricordo ricordare ricordarmi memoria
access: access login logon signin locked lockout accedere accesso entrare entro
  loggarmi loggare autenticarmi
reset: reset recover recovery restore new+password reimpostare reimposta
  reimpostazione recuperare recupero ripristinare ripristino
address: address addresses home house flat apartment residence domicile street postcode
  indirizzo indirizzi casa abitazione appartamento residenza domicilio
move_home: moved move moving relocated relocate relocation trasferito trasferita
  trasferirmi trasloco traslocato traslocare abito abitare
change: change changing update updating modify edit amend switch cambiare cambio
  modificare modifica aggiornare aggiornamento variare variazione
order: order orders ordered purchase purchased bought buy buying checkout acquisto
  acquisti acquistato comprato comprare compra ordine ordini ordinato ordinazione
cancel_order: cancel cancelled canceled cancellation undo scrap revoke call+off
  annullare annullamento annulla annullato disdire disdetta stornare revocare
mistake: mistake mistaken accident accidentally error wrongly sbaglio errore
  erroneamente
ship: ship shipping shipped shipment dispatch dispatched courier carrier dhl ups gls brt
  bartolini sda fedex tnt warehouse magazzino spedire spedizione spedito spedita spediti
  corriere
parcel: parcel package packet box delivery deliveries deliver delivered pacco pacchi
  pacchetto scatola collo consegna consegne consegnare consegnato
arrive: arrive arrives arrived arrival reach reached received receive arrivare arrivato
  arrivata arriva arrivano arrivi arrivo ricevere ricevuto ricevo riceve ricevi ricevono
wait_time: long days weeks giorni settimane tempo tempi ritardo late delay delayed
  waiting attesa aspetto aspettando tracking tracciamento
invoice: invoice invoices receipt receipts bill billing paperwork vat tax fattura fatture
  fatturazione ricevuta ricevute scontrino giustificativo partita+iva iva
  documento+fiscale commercialista accountant accounting contabilita
copy: copy duplicate download reprint copia duplicato scaricare ristampa pdf
business: business company firm professional freelance freelancer self+employed azienda
  ditta societa professionista impresa
refund: refund refunds refunded reimburse reimbursement repay repaid money+back rimborso
  rimborsi rimborsare rimborsato riaccredito riaccreditare riaccreditato restituzione
money: money cash funds dosh quid bucks amount sum soldi denaro quattrini importo somma
  contanti euro euros
return: return returns returned send+back sent+back give+back rimandare rimandato
  rimandata rimando rispedire rispedito restituire reso resi indietro
exchange: exchange swap replacement sostituzione scambiare cambio+taglia different+size
  bigger smaller
size_fit: size sizes fit fits small big tight loose large taglia taglie misura piccolo
  piccola piccole piccoli grande grandi stretto stretta largo larga
damaged: damaged broken faulty defective cracked smashed dented scratched difettoso
  difettosa rotto rotta danneggiato danneggiata guasto ammaccato graffiato
item: item product article goods articolo prodotto oggetto merce
transfer: transfer transfers wire wiring remit remittance swift sepa bonifico bonifici
  trasferimento trasferire send+money mandare+soldi inviare+soldi
pay: pay paying payment payments pagare pagamento pagamenti pagato saldare versare
abroad: abroad international overseas foreign currency currencies exchange+rate dollars
  francs pounds yen estero estera internazionale valuta valute dollari franchi sterline
cost: cost costs fee fees charge charges price pricing commission expensive cheap
  set+back costo costa costi commissione commissioni spesa spese spendere prezzo tariffa
  caro
iban: iban bank+details account+number sort+code coordinates coordinate+bancarie
  coordinate estremi+bancari estremi numero+conto bic
salary: salary wages wage paycheck payslip payroll pension stipendio busta+paga pensione
direct_debit: direct+debit direct+debits standing+order mandate domiciliazione
  domiciliazioni addebito addebiti rid sdd
two_factor: mfa otp one+time verification verify authenticator authentication
  two+factor verifica autenticazione doppia+autenticazione token
code: code codes digits codice codici cifre
sms: sms text texts text+message message messages messaggio messaggino messaggi
  notifica notification
phone: phone mobile cellphone smartphone iphone android pixel samsung handset sim
  telefono cellulare telefonino
new_device: new+phone changed+phone switched+phone different+phone nuovo+telefono
  cambiato+telefono telefono+nuovo cellulare+nuovo cellulare+diverso
app: app application website site online portal applicazione sito home+banking
"""


def _parse(text: str) -> dict[str, tuple[str, ...]]:
    concepts: dict[str, tuple[str, ...]] = {}
    name = ""
    for line in text.splitlines():
        if not line.strip():
            continue
        if not line.startswith(" "):
            name, _, words = line.partition(":")
            name = name.strip()
            concepts[name] = ()
        else:
            words = line
        concepts[name] += tuple(words.split())
    return concepts


CONCEPTS: dict[str, tuple[str, ...]] = _parse(LEXICON)


PREFIX = "~"  # a concept's term: "~card", never a stem (stems have no "~")
Key = tuple[str, tuple[str, ...]]  # (language, the stems of a word or phrase)


@dataclass(frozen=True)
class Lexicon:
    """Concepts by the stems that name them, in each stemmer's language; and by the word
    itself where two words of different concepts share a stem ("domicilio", an address,
    and "domiciliazione", a direct debit, are both "domicil")."""

    by_stems: dict[Key, frozenset[str]]
    by_word: dict[str, frozenset[str]]
    longest: int  # words in the longest phrase

    @classmethod
    def build(cls, concepts: dict[str, tuple[str, ...]]) -> Lexicon:
        found: dict[Key, set[str]] = {}
        single: dict[Key, dict[str, set[str]]] = {}  # a word's stem: its words' concepts
        for name, entries in concepts.items():
            for entry in entries:
                parts = [w for w in (fold(part) for part in entry.split("+")) if w]
                words = [w for w in parts if w not in STOP_WORDS]
                if len(words) < min(len(parts), 2):
                    continue  # a phrase that is one word without its stop words says less
                for language in STEMMERS:
                    key = (language, tuple(stem(w, language) for w in words))
                    if len(words) > 1:
                        found.setdefault(key, set()).add(PREFIX + name)
                    else:
                        single.setdefault(key, {}).setdefault(words[0], set()).add(PREFIX + name)
        by_word: dict[str, set[str]] = {}
        for key, meanings in single.items():
            named = set().union(*meanings.values())
            if len(meanings) > 1 and any(meant != named for meant in meanings.values()):
                for word, meant in meanings.items():
                    by_word.setdefault(word, set()).update(meant)
            else:
                found.setdefault(key, set()).update(named)
        longest = max((len(stems) for _, stems in found), default=1)
        return cls(
            {k: frozenset(v) for k, v in found.items()},
            {k: frozenset(v) for k, v in by_word.items()},
            longest,
        )

    def units(
        self, text: str, language: str | None, *, every: bool = False
    ) -> list[tuple[list[str], set[str]]]:
        """Each content word of text: its stems, and the concepts it is part of: those of
        the longest phrase (or word) at it, reading left to right; with `every`, those of
        every phrase and word it is part of (for entries, whose wording is the operator's).
        Linear in the text: at most `longest` look-ups per word."""
        words = content_words(text)
        languages = languages_of(language)
        stems = [sorted({stem(w, lang) for lang in languages}) for w in words]
        by_language = {lang: [stem(w, lang) for w in words] for lang in languages}
        concepts: list[set[str]] = [set() for _ in words]
        for lang, sequence in by_language.items():
            start = 0
            while start < len(sequence):  # the longest phrase at each word, then after it
                for length in range(min(self.longest, len(sequence) - start), 0, -1):
                    named = self.by_stems.get((lang, tuple(sequence[start : start + length])))
                    if length == 1:
                        named = self.by_word.get(words[start], named)
                    if named:
                        for position in range(start, start + length):
                            concepts[position].update(named)
                        if not every:
                            start += length
                            break
                else:
                    start += 1
                    continue
                if every:
                    start += 1
        return list(zip(stems, concepts, strict=True))

    def entry_terms(self, text: str, language: str | None) -> list[str]:
        """An entry's terms: every word's stems and every concept it is part of."""
        out: list[str] = []
        for stems, concepts in self.units(text, language, every=True):
            out.extend(stems)
            out.extend(sorted(concepts))
        return out

    def question_terms(self, text: str, language: str | None) -> list[str]:
        """A question's terms: a word's concepts in place of the word, where it has some
        (the customer's word is one way of saying them), else its stems."""
        out: list[str] = []
        for stems, concepts in self.units(text, language):
            out.extend(sorted(concepts) if concepts else stems)
        return out


@lru_cache(maxsize=1)
def shipped() -> Lexicon:
    """The lexicon above, built once."""
    return Lexicon.build(CONCEPTS)
