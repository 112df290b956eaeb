"""Alarms with Aodh's semantics: rules over the store's measures, states, actions, history.

- :mod:`.model` parses and serialises alarms in Aodh's v2 representation (pure).
- :mod:`.states` decides a state from a window of points (pure).
- :mod:`.store` keeps alarms and their history in the index's SQLite file.
- :mod:`.series` reads what rules need from the RRD files, each metric once per round.
- :mod:`.evaluator` runs one evaluation round; :mod:`.actions` notifies without blocking it.
- :mod:`.process` is the supervised evaluator process.
"""
