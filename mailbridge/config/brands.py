"""The identity each mailbox answers its customers under (a brand): the From, the company
name, the default language, the envelope sender and the domain of its Message-IDs, each
taken from the `[[mailbox]]` table when it sets one, else from [smtp], [templates] and
[tickets] as before there were brands.

Pure: values from the configuration, nothing read or written.
"""

from __future__ import annotations

from dataclasses import dataclass
from email.utils import parseaddr

from mailbridge.config.loading import Config
from mailbridge.config.mail import MailboxConfig
from mailbridge.core.message import Address

__all__ = ["Brand", "brand_of", "house_brand"]


@dataclass(frozen=True, slots=True)
class Brand:
    """How mail to a customer of one mailbox is signed and sent."""

    sender: Address  # the From header
    company: str  # the templates' company_name
    language: str  # replies in it when the customer's language has no templates
    bounce_address: str  # the envelope sender, before VERP makes it one per mail
    message_id_domain: str

    @property
    def loop_token(self) -> str:
        """The X-Loop value of its mail, by which the mail is known when it comes back."""
        return f"mailbridge@{self.message_id_domain}"


def _address(value: str) -> Address:
    name, address = parseaddr(value)
    return Address(name, address.lower())


def house_brand(config: Config) -> Brand:
    """[smtp] and [templates] as they are: staff mail, and mailboxes without a brand."""
    sender = _address(config.smtp.from_)
    return Brand(
        sender=sender,
        company=config.templates.company,
        language=config.templates.language,
        bounce_address=(config.smtp.bounce_address or sender.address).lower(),
        message_id_domain=_message_id_domain(config, sender),
    )


def brand_of(config: Config, mailbox: MailboxConfig) -> Brand:
    """The brand of `mailbox`: its own keys over the house brand.

    A mailbox with its own `from` gets its bounces at its own `address` unless it names a
    `bounce_address`: the envelope sender then follows its domain, and bounces come back
    to a folder mailbridge watches. Without `from` it sends exactly as the house does.
    """
    house = house_brand(config)
    sender = _address(mailbox.from_) if mailbox.from_ else house.sender
    if mailbox.bounce_address:
        bounce = mailbox.bounce_address.lower()
    elif mailbox.from_:
        bounce = mailbox.address.lower()
    else:
        bounce = house.bounce_address
    return Brand(
        sender=sender,
        company=mailbox.company or house.company,
        language=mailbox.language or house.language,
        bounce_address=bounce,
        message_id_domain=_message_id_domain(config, sender),
    )


def _message_id_domain(config: Config, sender: Address) -> str:
    return config.tickets.message_id_domain or sender.address.rpartition("@")[2]
