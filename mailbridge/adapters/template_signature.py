"""A brand's signature in its mails: where a template places it itself, and where it is
added at the end because the template does not mention it.

The signature is an operator's template (`[[mailbox]] signature`), rendered in the same
sandbox and with the same values as the mail it signs (adapters/templates.py); here it is
only text to place.
"""

from __future__ import annotations

import html
import re
from collections.abc import Callable

from jinja2 import TemplateNotFound, TemplateSyntaxError, meta, nodes

SIGNATURE_KEY = "signature"
SIGNATURE_NAME = "<signature>.txt.j2"  # its loader name: no file of a directory has it
_BODY_END = re.compile(r"</body\s*>", re.IGNORECASE)


def places_signature(
    loader_name: str, parse: Callable[[str], nodes.Template], seen: frozenset[str] = frozenset()
) -> bool:
    """True when the template, or a partial, layout or macro file it names, uses `signature`:
    it puts the signature where it wants, and nothing is added."""
    if loader_name in seen:
        return False
    try:
        tree = parse(loader_name)
    except (TemplateNotFound, TemplateSyntaxError):  # reported by the template's own check
        return False
    if SIGNATURE_KEY in meta.find_undeclared_variables(tree):
        return True
    # Whatever it pulls in by a fixed name: a partial, the layout it extends, macros.
    for ref in tree.find_all((nodes.Include, nodes.Extends, nodes.Import, nodes.FromImport)):
        target = getattr(ref, "template", None)
        if isinstance(target, nodes.Const) and places_signature(
            str(target.value), parse, seen | {loader_name}
        ):
            return True
    return False


def sign_text(body: str, signature: str) -> str:
    """The text body with the signature after the "-- " line mail clients know."""
    if not signature.strip():
        return body
    return f"{body.rstrip()}\n\n-- \n{signature.strip(chr(10))}\n"


def sign_html(page: str, signature: str) -> str:
    """The HTML body with the signature, escaped, as the last paragraph of its body."""
    if not signature.strip():
        return page
    block = (
        '<p class="signature" style="white-space: pre-wrap">'
        f"{html.escape(signature.strip(chr(10)))}</p>\n"
    )
    ends = list(_BODY_END.finditer(page))
    if not ends:
        return page.rstrip("\n") + "\n" + block
    at = ends[-1].start()
    return page[:at] + block + page[at:]
