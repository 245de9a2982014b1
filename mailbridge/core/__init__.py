"""The pure core: parsing, classification, threading decisions, SLA arithmetic, the
acknowledgement policy, and the states of the database's state columns as types.

Nothing here performs IO or reads the clock, nor imports any other part of mailbridge;
tests/test_core_is_pure.py and tests/test_layers.py keep it that way.
"""
