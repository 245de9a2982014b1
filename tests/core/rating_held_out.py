"""Held-out replies to a resolution mail, written before the classifier was tuned and never
used to tune it: `tests/core/test_rating.py` reports the classifier's precision on them.
Each entry: (the customer's own words, the rating they give: "good", "bad" or None when the
reply is no rating at all)."""

from __future__ import annotations

HELD_OUT: list[tuple[str, str | None]] = [
    ("Perfetto, adesso funziona tutto. Grazie!", "good"),
    ("Sì, risolto.", "good"),
    ("Tutto ok ora, grazie dell'aiuto", "good"),
    ("Confermo, il problema è risolto", "good"),
    ("Great, that fixed it. Thanks a lot!", "good"),
    ("Yes it works now, cheers", "good"),
    ("All sorted, thank you.", "good"),
    ("Issue resolved, many thanks", "good"),
    ("Funziona!", "good"),
    ("Yep, solved.", "good"),
    ("No, purtroppo non funziona ancora.", "bad"),
    ("Il problema non è stato risolto.", "bad"),
    ("Ancora lo stesso errore di prima.", "bad"),
    ("Non risolto: la carta è ancora bloccata", "bad"),
    ("Nope, still broken.", "bad"),
    ("It still doesn't work, same error as before", "bad"),
    ("This is not fixed at all", "bad"),
    ("Unfortunately the problem persists.", "bad"),
    ("No, the issue is not resolved", "bad"),
    ("Still not working for me", "bad"),
    ("Ok grazie", None),
    ("Thanks for letting me know", None),
    ("Can you send me the invoice as well?", None),
    ("Quando arriva il pacco?", None),
    ("Buongiorno, vorrei sapere lo stato del mio ordine 5521.", None),
    ("Please also update my billing address to Via Roma 1, Milano.", None),
    ("Is it solved on your side too?", None),
    ("Ricevuto.", None),
    (
        "Thanks. The printer issue is solved but now the scanner does not work, which is a "
        "different problem: when I press scan it shows error 42 and nothing happens. I tried "
        "restarting it twice and reinstalling the driver from your website, but the error is "
        "still there every single time I try.",
        None,
    ),
    ("Hello, I'd like to order two more cables.", None),
]
