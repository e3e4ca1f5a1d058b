"""The perpetual-futures exchange application (modelled on dYdX v4).

Modules, bottom up: ``payloads`` (transaction structs), ``errors`` (codes 200-299), ``units``
(integer money/price arithmetic), ``keys`` (state layout), ``records`` (stored structs),
``market`` (parameters), ``ledger`` (subaccounts, funding settlement, margin), ``book`` (order
book storage), ``matching`` (orders, fills), ``oracle``, ``funding``, ``liquidation``
(liquidations, insurance fund, deleveraging), ``app`` (the ``Application``), ``genesis``,
``queries``, ``vectors`` and ``commands``.
"""
