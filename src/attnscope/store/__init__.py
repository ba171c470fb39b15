"""Store: the runs database, array files, provenance and signatures (coming with the runs store)."""
