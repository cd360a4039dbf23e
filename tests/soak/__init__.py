"""The kill harness: seeded SIGKILLs and crash points under concurrent uploads, checked against a ledger."""
