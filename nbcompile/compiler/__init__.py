"""The compiler: network config, channel split, the plan IR, lowering, naming, rendering through
the Jinja template, and the driver that writes files. Depends on ``space``."""
