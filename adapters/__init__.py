"""Chain adapters: everything that knows how a particular kind of chain works.

The relay core (`relay/`) sees only role protocols; each subpackage here implements them for
one chain kind.
"""
