"""`mailbridge demo`: the real daemon on embedded servers. It needs the `demo` extra."""

# Imported by the demo's servers and not installed without the extra (pymap brings the
# other two).
EXTRA_MODULES = frozenset({"pymap", "aiosmtpd", "proxyprotocol", "pysasl"})
INSTALL = "pip install 'mailbridge[demo]'"
