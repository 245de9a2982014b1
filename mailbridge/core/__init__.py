"""The pure core: parsing, classification, threading decisions and SLA arithmetic.

Nothing here performs IO or reads the clock; a test keeps it that way.
"""
