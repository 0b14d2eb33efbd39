"""The client for people: names in, records out. ``ape console`` exposes these methods as its
helpers (``ape_console_extras.py``); each takes accounts, instruments and tokens by name and
amounts in human units, answers with a record of ``offchain.sdk.records``, and refuses bad input
with an ``InputError`` of one line (the problem, then the fix) before anything is sent.

    desk = Console(client, ape.accounts)
    desk.deposit("TEST::4", "USDC", 10_000)     # approves the engine, then deposits
    desk.margin_of("TEST::4")                    # equity, IM, MM, health, worst scenarios
"""

from __future__ import annotations

import difflib
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from eth_utils import is_address, to_checksum_address

from offchain.fixed_point import MAX_PRICE, MAX_SIZE, WAD
from offchain.margin import Kind
from offchain.scenarios import PRESETS
from offchain.sdk.client import Client, EscapeHatch
from offchain.sdk.records import (
    Authorisation,
    Balances,
    Holding,
    InputError,
    Instrument,
    LiquidationPreview,
    LiquidationStatus,
    MarginOutcome,
    MarginReport,
    Position,
    TradePreview,
    TradeRecord,
    UnderlyingRisk,
    WithdrawPreview,
    positions,
    to_token_units,
    to_wad,
    units,
    usd,
)
from offchain.sdk.roles import ROLE_GUARDIAN, ROLE_KEEPER, ROLE_VENUE

__all__ = ["Console"]

ACCOUNT_HINT = (
    "give a 0x address, an account object, TEST::<n> or an alias from `ape accounts list`"
)


def _suggest(word: str, names: Sequence[str]) -> str:
    close = difflib.get_close_matches(word, names, n=1, cutoff=0.5)
    return f"did you mean {close[0]}? " if close else ""


def _utc(ts: int) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


class Console:
    """``Client`` in human units. ``accounts`` is Ape's account manager (``ape.accounts``): it
    resolves ``TEST::<n>`` and aliases, and signs; without it only addresses and account
    objects are accepted."""

    def __init__(self, client: Client, accounts: Any = None) -> None:
        self.client = client
        self.accounts = accounts
        self._instruments: dict[str, Instrument] | None = None
        self._cash_symbol: str | None = None

    # ------------------------------------------------------------------ names

    def address(self, who: Any, role: str = "account") -> str:
        """The checksummed address of ``who``: an account object, a 0x address, ``TEST::<n>``
        or an alias."""
        if hasattr(who, "address") and not isinstance(who, str):
            return str(who.address)
        if not isinstance(who, str):
            raise InputError(
                f"{role} must be an account, not {type(who).__name__} {who!r}: {ACCOUNT_HINT}"
            )
        if who.lower().startswith("0x"):
            if not is_address(who):
                raise InputError(
                    f"{role} {who!r} is not an address (40 hex digits after 0x): {ACCOUNT_HINT}"
                )
            return to_checksum_address(who)
        return str(self.signer(who, role).address)

    def signer(self, who: Any, role: str = "account") -> Any:
        """An Ape account that can sign for ``who``."""
        if hasattr(who, "sign_transaction"):
            return who
        if not isinstance(who, str):
            raise InputError(
                f"{role} must be an account, not {type(who).__name__} {who!r}: {ACCOUNT_HINT}"
            )
        if self.accounts is None:
            raise InputError(f"{role} {who!r} cannot sign here: pass an Ape account object")
        if who.upper().startswith("TEST::"):
            n = who[6:]
            count = len(self.accounts.test_accounts)
            if not n.isdigit() or int(n) >= count:
                raise InputError(
                    f"{role} {who!r} is not a test account: give TEST::0 .. TEST::{count - 1}"
                )
            return self.accounts.test_accounts[int(n)]
        if who.lower().startswith("0x"):
            address = self.address(who, role)
            if address not in self.accounts:
                raise InputError(
                    f"{role} {address} has no key here: load it with "
                    f"`ape accounts import <alias>` and pass the alias"
                )
            return self.accounts[address]
        aliases = sorted(self.accounts.aliases)
        if who not in aliases:
            raise InputError(f"unknown {role} {who!r}: {_suggest(who, aliases)}{ACCOUNT_HINT}")
        return self.accounts.load(who)

    def _listed(self) -> dict[str, Instrument]:
        if self._instruments is None:
            names = self.client.underlying_names
            out = {}
            for m in self.client.listed_instruments():
                out[m.name(names)] = Instrument(
                    name=m.name(names),
                    id=m.id,
                    underlying=names.get(m.underlying, str(m.underlying)),
                    kind=m.kind.name.lower(),
                    strike=usd(m.strike) if m.kind.is_option else None,
                    # a perp never expires (its id's expiry is not a date)
                    expiry=datetime.fromtimestamp(m.expiry, UTC) if m.expires else None,
                )
            self._instruments = out
        return self._instruments

    def instrument(self, what: Any) -> Instrument:
        """A listed instrument by name (``BTC-20270326-F``), id or ``Instrument`` record."""
        listed = self._listed()
        if isinstance(what, Instrument):
            return what
        if isinstance(what, int) and not isinstance(what, bool):
            for ins in listed.values():
                if ins.id == what:
                    return ins
            raise InputError(f"no instrument has id {what}: instruments() lists them")
        if not isinstance(what, str):
            raise InputError(
                f"instrument must be a name, not {type(what).__name__} {what!r}: "
                "instruments() lists them"
            )
        if what not in listed:
            self._instruments = None  # listed since the console started?
            listed = self._listed()
        if what in listed:
            return listed[what]
        raise InputError(
            f"unknown instrument {what!r}: {_suggest(what, list(listed))}instruments() lists them"
        )

    def instruments(
        self, underlying: str | None = None, kind: str | None = None
    ) -> tuple[Instrument, ...]:
        """Listed instruments, optionally of one underlying and kind (future, call, put), by
        expiry then name."""
        names = sorted(self.client.deployment.underlyings)
        if underlying is not None and underlying not in names:
            raise InputError(f"unknown underlying {underlying!r}: one of {', '.join(names)}")
        kinds = [k.name.lower() for k in Kind]
        if kind is not None and kind not in kinds:
            raise InputError(f"unknown kind {kind!r}: one of {', '.join(kinds)}")
        found = [
            i
            for i in self._listed().values()
            if (underlying is None or i.underlying == underlying)
            and (kind is None or i.kind == kind)
        ]
        return tuple(sorted(found, key=lambda i: (i.expiry is None, i.expiry or 0, i.name)))

    def cash_symbol(self) -> str:
        if self._cash_symbol is None:
            self._cash_symbol = str(self.client.cash.symbol())
        return self._cash_symbol

    def token(self, symbol: Any) -> tuple[str, Any, int]:
        """``(symbol, token contract, decimals)`` of the settlement token or a collateral."""
        cash = self.cash_symbol()
        symbols = [cash, *self.client.tokens]
        if not isinstance(symbol, str):
            raise InputError(
                f"token must be a symbol, not {type(symbol).__name__} {symbol!r}: "
                f"one of {', '.join(symbols)}"
            )
        for s in symbols:
            if s.upper() == symbol.upper() or (symbol.lower() == "cash" and s == cash):
                if s == cash:
                    return s, self.client.cash, self._cash_decimals()
                decimals = self.client.assets()[self.client.tokens[s].address][2]
                return s, self.client.tokens[s], decimals
        raise InputError(
            f"unknown token {symbol!r}: {_suggest(symbol, symbols)}one of {', '.join(symbols)}"
        )

    def _cash_decimals(self) -> int:
        return 18 - (len(str(int(self.client.engine.cash_scale()))) - 1)

    # ------------------------------------------------------------------ reads

    def balances_of(self, account: Any) -> Balances:
        """Cash (USD) and collateral (token amounts) ``account`` holds in the engine."""
        address = self.address(account)
        held = []
        by_address = {t.address: s for s, t in self.client.tokens.items()}
        for token, (_, _, decimals) in sorted(self.client.assets().items(), key=lambda a: a[1][0]):
            amount = int(self.client.engine.collateral(token, address))
            if amount:
                held.append(Holding(by_address[token], units(amount, decimals)))
        return Balances(address, usd(int(self.client.engine.cash(address))), tuple(held))

    def positions_of(self, account: Any) -> tuple[Position, ...]:
        names = {i.id: i.name for i in self._listed().values()}
        return positions(
            (names.get(i, str(i)), q)
            for i, q in self.client.positions(self.address(account)).items()
        )

    def roles_of(self, who: Any) -> tuple[str, ...]:
        """The roles ``who`` holds: ``keeper`` (on RiskOracle), ``venue`` and ``guardian`` (on
        EngineAdmin)."""
        address = self.address(who)
        held = []
        if self.client.oracle.has_role(address, ROLE_KEEPER):
            held.append("keeper")
        for name, bit in (("venue", ROLE_VENUE), ("guardian", ROLE_GUARDIAN)):
            if self.client.engine_admin.has_role(address, bit):
                held.append(name)
        return tuple(held)

    def authorisation(self, account: Any, venue: Any) -> Authorisation:
        a, v = self.address(account), self.address(venue, "venue")
        return Authorisation(
            a,
            v,
            bool(self.client.engine_admin.authorised(a, v)),
            bool(self.client.engine_admin.has_role(v, ROLE_VENUE)),
        )

    def margin_of(self, account: Any) -> MarginReport:
        """Equity, IM, MM and health (USD), positions, the worst scenario per underlying and the
        off-chain reference's equity and MM."""
        address = self.address(account)
        c = self.client
        state = c.account_state(address)
        market = c.market_int()
        ref = market.account_margin(c.account_int(address, market))
        worst = []
        for r in c.worst_scenarios(address):
            u = int(r.underlying)
            grid = PRESETS[c.grid_name(u)]
            s = int(r.worst_scenario)
            worst.append(
                UnderlyingRisk(
                    underlying=c.underlying_names.get(u, str(u)),
                    scenario=s,
                    label=grid.scenarios[s].label if s < len(grid) else str(s),
                    loss=usd(int(r.worst_loss)),
                    pad=usd(int(r.pad)),
                    short_option_minimum=usd(int(r.som)),
                    risk=usd(int(r.risk)),
                )
            )
        return MarginReport(
            account=address,
            equity=usd(state.equity),
            initial_margin=usd(state.initial_margin),
            maintenance_margin=usd(state.maintenance_margin),
            pending_charge=usd(state.pending_charge),
            fresh=state.fresh,
            positions=self.positions_of(address),
            worst=tuple(worst),
            reference_equity=usd(ref.equity),
            reference_maintenance_margin=usd(ref.maintenance_margin),
        )

    def trade_preview(self, account: Any, instrument: Any, size: Any, price: Any) -> TradePreview:
        """``account`` after trading ``size`` contracts (> 0 buys, < 0 sells) at ``price`` USD."""
        return self._trade_preview(
            self.address(account), self.instrument(instrument), self._size(size), self._price(price)
        )

    def _trade_preview(self, address: str, ins: Instrument, q: int, p: int) -> TradePreview:
        if ins.expiry and ins.expiry.timestamp() <= self.client.chain_manager.blocks.head.timestamp:
            raise InputError(f"{ins.name} has expired: pick a live one from instruments()")
        eq, im, mm, _, code = self.client.views.trade_preview(address, ins.id, q, p)
        return TradePreview(
            address,
            ins.name,
            usd(q),
            usd(p),
            usd(int(eq)),
            usd(int(im)),
            usd(int(mm)),
            MarginOutcome(int(code)),
        )

    def withdraw_preview(self, account: Any, token: Any, amount: Any) -> WithdrawPreview:
        """``account`` after withdrawing ``amount`` of ``token`` (its symbol; human units)."""
        address = self.address(account)
        symbol, contract, decimals = self.token(token)
        n = self._amount(amount, decimals, symbol)
        eq, im, mm, _, code = self.client.views.withdraw_preview(address, contract, n)
        return WithdrawPreview(
            address,
            symbol,
            units(n, decimals),
            usd(int(eq)),
            usd(int(im)),
            usd(int(mm)),
            MarginOutcome(int(code)),
        )

    def liquidation_preview(self, account: Any, max_fraction: Any = 1) -> LiquidationPreview:
        """What ``Liquidator.liquidate(account, max_fraction)`` would do now."""
        if self.client.liquidation_views is None:
            raise InputError(
                "this deployment has no LiquidationViews: redeploy with "
                "`ape run deploy` (it adds the Liquidator and its views)"
            )
        address = self.address(account)
        cap = to_wad(max_fraction, "max_fraction", "0.5")
        if not 0 < cap <= WAD:
            raise InputError(f"max_fraction must be in (0, 1], not {max_fraction!r}: give e.g. 0.5")
        pv = self.client.liquidation_views.liquidation_preview(address, cap)
        names = {i.id: i.name for i in self._listed().values()}
        held = self._held_in_vault_order(address)
        return LiquidationPreview(
            account=address,
            status=LiquidationStatus(int(pv.status)),
            fraction=usd(int(pv.fraction)),
            taken=positions(
                (names.get(int(i), str(int(i))), int(q))
                for i, q in zip(pv.ids, pv.taken, strict=True)
            ),
            position_cash=usd(int(pv.position_cash)),
            penalty=usd(int(pv.penalty)),
            penalty_to_liquidator=usd(int(pv.penalty_to_liquidator)),
            penalty_to_fund=usd(int(pv.penalty_to_fund)),
            collateral_sold=tuple(
                Holding(symbol, units(int(n), decimals))
                for (symbol, decimals), n in zip(held, pv.collateral_sold, strict=False)
            ),
            collateral_paid=usd(int(pv.collateral_paid)),
            bad_debt=usd(int(pv.bad_debt)),
            pending_charge=usd(int(pv.pending_charge)),
        )

    def _held_in_vault_order(self, address: str) -> list[tuple[str, int]]:
        """``(symbol, decimals)`` of the assets ``address`` holds, in the engine's asset-index
        order (the order of a liquidation's ``collateral_sold``)."""
        mask = int(self.client.engine.asset_mask(address))
        by_address = {t.address: s for s, t in self.client.tokens.items()}
        return [
            (by_address[token], decimals)
            for token, (index, _, decimals) in sorted(
                self.client.assets().items(), key=lambda a: a[1][0]
            )
            if mask >> index & 1
        ]

    # ------------------------------------------------------------------ sends

    def deposit(self, account: Any, token: Any, amount: Any) -> Balances:
        """Approve the engine for ``amount`` of ``token`` if needed, deposit it, return the
        account's balances."""
        sender = self.signer(account)
        symbol, contract, decimals = self.token(token)
        n = self._amount(amount, decimals, symbol)
        have = int(contract.balanceOf(sender))
        if have < n:
            held, wanted = (
                Holding(symbol, units(have, decimals)),
                Holding(symbol, units(n, decimals)),
            )
            raise InputError(f"{sender.address} holds {held}, fewer than {wanted}: fund it first")
        if int(contract.allowance(sender, self.client.engine)) < n:
            contract.approve(self.client.engine, n, sender=sender)
        self.client.engine.deposit(contract, n, sender=sender)
        return self.balances_of(sender)

    def withdraw(self, account: Any, token: Any, amount: Any) -> Balances:
        """Withdraw ``amount`` of ``token`` if the engine allows it (else the reason, one line)."""
        sender = self.signer(account)
        preview = self.withdraw_preview(sender, token, amount)
        if not preview.allowed:
            raise InputError(
                f"withdrawal refused: {preview.outcome.name} ({preview.outcome.meaning})"
            )
        symbol, contract, decimals = self.token(token)
        self.client.engine.withdraw(contract, self._amount(amount, decimals, symbol), sender=sender)
        return self.balances_of(sender)

    def escape_hatch(self) -> EscapeHatch:
        """The escape hatch: the last post, the escape delay, when anyone may wind down, and
        whether the system is wound down (every position then settles at its last mark)."""
        return self.client.escape_hatch()

    def wind_down(self, account: Any) -> EscapeHatch:
        """Wind the system down (``RiskOracle.wind_down``, open to anyone) once no post has
        landed for longer than the escape delay: trading stops for good, every position settles
        at its last mark, every account can then settle and withdraw."""
        sender = self.signer(account)
        hatch = self.escape_hatch()
        if hatch.wound_down:
            raise InputError("the system is already wound down: settle and withdraw instead")
        now = int(self.client.chain_manager.blocks.head.timestamp)
        if hatch.opens_at is None or hatch.opens_at > now + 1:
            when = "after the first post" if hatch.opens_at is None else _utc(hatch.opens_at)
            raise InputError(
                f"wind-down refused: the keeper posted within the escape delay "
                f"({hatch.escape_delay} s); anyone may wind down {when}"
            )
        self.client.wind_down(sender)
        return self.escape_hatch()

    def authorise_venue(self, account: Any, venue: Any, allowed: bool = True) -> Authorisation:
        """``account`` allows (or, with ``allowed=False``, stops) ``venue`` booking its trades."""
        sender = self.signer(account)
        if not isinstance(allowed, bool):
            raise InputError(f"allowed must be True or False, not {allowed!r}")
        v = self.address(venue, "venue")
        self.client.engine_admin.authorise_venue(v, allowed, sender=sender)
        return self.authorisation(sender, v)

    def trade(
        self, venue: Any, buyer: Any, seller: Any, instrument: Any, size: Any, price: Any
    ) -> TradeRecord:
        """Book a trade as ``venue``: ``buyer`` goes long ``size`` (> 0) contracts of
        ``instrument`` from ``seller`` at ``price`` USD. Checked first: the venue's role, both
        authorisations and both sides' margin, each refusal one line."""
        sender = self.signer(venue, "venue")
        b, s = self.address(buyer, "buyer"), self.address(seller, "seller")
        if b == s:
            raise InputError("buyer and seller are the same account: give two accounts")
        q = self._size(size)
        if q <= 0:
            raise InputError(
                f"size must be > 0 (the buyer goes long), not {size!r}: swap "
                "buyer and seller to sell"
            )
        if not self.client.engine_admin.has_role(sender, ROLE_VENUE):
            raise InputError(
                f"{sender.address} does not hold the venue role: the admin grants it "
                "with engine_admin.grant_role(venue, ROLE_VENUE, sender=admin)"
            )
        for side, who in (("buyer", b), ("seller", s)):
            if not self.client.engine_admin.authorised(who, sender):
                raise InputError(
                    f"{side} {who} has not authorised venue {sender.address}: the "
                    f"{side} calls authorise_venue({side}, venue)"
                )
        ins = self.instrument(instrument)
        p = self._price(price)
        for side, who, signed in (("buyer", b, q), ("seller", s, -q)):
            preview = self._trade_preview(who, ins, signed, p)
            if not preview.allowed:
                raise InputError(
                    f"trade refused for the {side} {who}: {preview.outcome.name} "
                    f"({preview.outcome.meaning})"
                )
        receipt = self.client.engine.trade(b, s, ins.id, q, p, sender=sender)
        return TradeRecord(sender.address, b, s, ins.name, usd(q), usd(p), str(receipt.txn_hash))

    # ------------------------------------------------------------------ input numbers

    @staticmethod
    def _size(size: Any) -> int:
        q = to_wad(size, "size", "1.5 (contracts; negative sells)")
        if q == 0:
            raise InputError("size must not be 0: give contracts, e.g. 1.5 (negative sells)")
        if abs(q) > MAX_SIZE:
            raise InputError(f"size {size!r} is beyond 1e12 contracts: give a smaller size")
        return q

    @staticmethod
    def _price(price: Any) -> int:
        p = to_wad(price, "price", "60000 (USD per contract)")
        if p < 0:
            raise InputError(f"price must be >= 0, not {price!r}: give USD per contract")
        if p >= MAX_PRICE:
            raise InputError(f"price {price!r} is beyond 2**96 WAD: give USD per contract")
        return p

    @staticmethod
    def _amount(amount: Any, decimals: int, symbol: str) -> int:
        n = to_token_units(amount, decimals, "amount", f"10000 ({symbol})")
        if n <= 0:
            raise InputError(f"amount must be > 0, not {amount!r}: give {symbol}, e.g. 10000")
        return n
