"""The development account the emulator serves unless told otherwise, like Azurite's devstoreaccount1.

Apart from the rest so that what only needs its name and key (the pytest plugin, which runs in the pytest
process) does not import the emulator.
"""

DEFAULT_ACCOUNT_NAME = 'devbatchaccount1'
# A fixed, published key, like Azurite's devstoreaccount1: it protects nothing but
# makes clients sign their requests exactly as they do against Azure.
DEFAULT_ACCOUNT_KEY = 'QmF0Y2hFbXVsYXRvckxvY2FsRGV2ZWxvcG1lbnRLZXlOb3RBU2VjcmV0MDAwMDAwMDAwMDAwMDAwMDAwMDAwMDA9PQ=='
