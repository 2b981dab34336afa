"""mooncake: Python bindings of mooncake-c, a C implementation of Mooncake.

Modules:
  mooncake.engine  TransferEngine, TransferNotify, TransferOpcode (the
                   same names, argument orders and return conventions as
                   upstream Mooncake's mooncake.engine).
"""
