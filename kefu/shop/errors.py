"""The errors of the shop's data-access interface.

Every `ShopRepository` raises `ShopUnavailable` for any failure of its
storage (server down, pool exhausted, deadline passed, a value the storage
refuses): the actions answer it with one polite apology, whatever the cause.
`StateConflict` means a change was refused because the row moved on.
"""

from __future__ import annotations


class ShopUnavailable(RuntimeError):
    """The shop's data cannot be read or written right now; the message is
    one line for the operator's log, never shown to a customer."""


class StateConflict(RuntimeError):
    """A change was refused because the row is no longer in an allowed state."""
